"""The `snakemake --report` items: per-class precision/recall from the evaluation code, the paper's
VOC2007 numbers, the metrics table page, the PR-curve grid and the Fig. 4-style figure, and the
workflow helpers that wire them into rules/report.smk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from wsjds.cli import main as cli
from wsjds.data.classes import SYNTH_CLASSES, VOC_CLASSES
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.data.voc import VOCDataset
from wsjds.evaluation import (FlatDetections, GroundTruth, evaluate_voc_map,
                              precision_recall)
from wsjds.model.wsjds import build_model, weights_spec
from wsjds.proposals.store import ProposalWriter
from wsjds.report import paper
from wsjds.report.figure4 import Figure4Settings, Figure4Style, figure4, seed_image
from wsjds.report.pr_curves import PRFigureStyle, plot_pr_curves
from wsjds.report.tables import format_percent, metrics_table, render_metrics_html
from wsjds.stages.train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from wsjds.workflow.report import metrics_flags, metrics_inputs, paper_method, report_settings, report_targets
from wsjds.workflow.targets import default_targets

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
# Rounding: each printed class value is within 0.05 of its true value, and so is the printed mean.
PRINTED_ROUNDING = 0.05 + 0.05

TINY_MODEL = {"backbone": "vgg_c5d", "trainable_stages": 0, "trunk_lr_mult": 1.0, "widths": [4, 4, 8, 8, 8], "fc_dim": 16, "weights": "scratch", "freeze_backbone": False,
              "roi_size": 3, "dropout": 0.5, "score_boost": False, "aspp_rates": [1, 2], "aspp_hidden": 8,
              "group_norm": 0}
SCRATCH = {"path": None, "channel_order": "RGB", "scale": 1, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
NUM_PROPOSALS = 30


# --- precision / recall ------------------------------------------------------------------------

def _one_image_case():
    """Class a: ground truth A, B and a difficult D; five ranked detections: A (TP), A again
    (duplicate: FP), D (difficult: neither), a miss (FP), B (TP). Class b: no ground truth, one
    detection. Class c: ground truth, no detection."""
    gt = GroundTruth(image_ids=("img",), classes=("a", "b", "c"), image_index=np.zeros(4, np.int64),
                     boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [0, 0, 8, 8]], np.float32),
                     labels=np.array([0, 0, 0, 2]), difficult=np.array([False, False, True, False]))
    boxes = [[20, 20, 30, 30], [0, 0, 10, 10], [60, 60, 70, 70], [0, 0, 10, 9], [40, 40, 50, 50], [0, 0, 5, 5]]
    scores = [0.5, 0.9, 0.6, 0.8, 0.7, 0.4]              # input order differs from the ranking on purpose
    dets = FlatDetections.from_lists(("img",), np.zeros(6), boxes, scores, [0, 0, 0, 0, 0, 1])
    return gt, dets


def test_precision_recall_matches_a_hand_computed_ranking():
    gt, dets = _one_image_case()
    curves = precision_recall(gt, dets)
    a = curves["a"]
    # ranked: TP, FP (duplicate), difficult (no count), FP, TP -> TP 1 1 1 1 2, FP 0 1 1 2 2 over npos = 2
    np.testing.assert_allclose(a.scores, [0.9, 0.8, 0.7, 0.6, 0.5])
    np.testing.assert_allclose(a.recall, [0.5, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(a.precision, [1.0, 0.5, 0.5, 1 / 3, 0.5])
    assert a.num_positives == 2
    b, c = curves["b"], curves["c"]
    assert b.num_positives == 0 and b.recall.tolist() == [0.0] and b.precision.tolist() == [0.0]
    assert c.num_positives == 1 and c.recall.size == 0 and c.precision.size == 0
    # The metric is computed from the same curves: 11-point AP (0.0 .. 0.5 at precision 1, 0.6 .. 1.0 at
    # 0.5) = 8.5 / 11; area under the envelope = 0.5 x 1 + 0.5 x 0.5.
    assert evaluate_voc_map(gt, dets, use_07_metric=True).per_class == pytest.approx(
        {"a": 8.5 / 11, "b": None, "c": 0.0})
    assert evaluate_voc_map(gt, dets, use_07_metric=False).per_class["a"] == pytest.approx(0.75)


def test_precision_recall_rejects_detections_of_another_image_list():
    gt, dets = _one_image_case()
    other = FlatDetections.from_lists(("other",), dets.image_index, dets.boxes, dets.scores, dets.labels)
    with pytest.raises(ValueError, match="different image lists"):
        precision_recall(gt, other)


def test_pr_curve_grid_has_the_configured_layout_and_the_metric_s_ap(tmp_path):
    gt, dets = _one_image_case()
    style = PRFigureStyle(columns=2, panel_inches=1.5, dpi=40)
    aps = plot_pr_curves(gt, dets, tmp_path / "pr.png", style, use_07_metric=True, title="tiny")
    assert aps["a"] == pytest.approx(8.5 / 11) and np.isnan(aps["b"]) and aps["c"] == 0.0
    with Image.open(tmp_path / "pr.png") as png:                     # 3 classes in 2 columns: 2 rows
        assert png.size == (2 * 1.5 * 40, 2 * 1.5 * 40)


# --- the paper's numbers -----------------------------------------------------------------------

def test_paper_columns_hold_the_printed_numbers():
    assert paper.TABLE1_WSOD_AP["wsjds"].mean == 45.6 and paper.TABLE2_FRCNN_AP["wsjds"].mean == 52.5
    assert paper.TABLE3_WSOD_CORLOC["wsjds"].mean == 64.5 and paper.TABLE1_WSOD_AP["wsddn"].mean == 36.9
    wsjds = paper.TABLE1_WSOD_AP["wsjds"].per_class()
    assert (wsjds["aeroplane"], wsjds["chair"], wsjds["tvmonitor"]) == pytest.approx((0.520, 0.130, 0.297))
    frcnn = paper.TABLE2_FRCNN_AP["wsjds"].per_class()
    assert (frcnn["bus"], frcnn["horse"], frcnn["tvmonitor"]) == pytest.approx((0.741, 0.393, 0.574))
    assert paper.TABLE3_WSOD_CORLOC["wsjds"].per_class()["motorbike"] == pytest.approx(0.840)
    assert paper.TABLE1_WSOD_AP["seg2det"].per_class()["person"] == pytest.approx(0.305)


@pytest.mark.parametrize("column", [*paper.TABLE1_WSOD_AP.values(), *paper.TABLE2_FRCNN_AP.values(),
                                    *paper.TABLE3_WSOD_CORLOC.values()], ids=lambda c: f"{c.source}")
def test_paper_means_equal_the_mean_of_the_classes_within_rounding(column):
    assert len(column.values) == len(VOC_CLASSES)
    assert abs(sum(column.values) / len(column.values) - column.mean) <= PRINTED_ROUNDING


def test_the_paper_has_the_full_method_s_columns_only_where_it_printed_them():
    full = paper.paper_reference("wsjds")
    assert full.wsod_ap and full.frcnn_ap and full.wsod_corloc
    baseline = paper.paper_reference("wsddn")
    assert baseline.wsod_ap.label == "WSDDN*" and baseline.frcnn_ap is None and baseline.wsod_corloc is None


# --- the metrics table -------------------------------------------------------------------------

def _metrics(metric: str, per_class: dict, **details) -> dict:
    defined = [v for v in per_class.values() if v is not None]
    return {"metric": metric, "per_class": per_class, "mean": sum(defined) / len(defined), **details}


def _voc_metrics(base: float, step: float, metric: str = "map") -> dict:
    return _metrics(metric, {name: round(base + step * k, 4) for k, name in enumerate(VOC_CLASSES)},
                    split="test", num_images=4952, use_07_metric=True, iou_threshold=0.5)


def _row(page: str, name: str) -> list[str]:
    match = re.search(rf"<tr(?: class=\"mean\")?><th>{re.escape(name)}</th>(.*?)</tr>", page)
    assert match, f"no row {name!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))


def test_metrics_table_puts_ours_beside_the_paper_on_voc07(tmp_path):
    files = {"wsod_map": _voc_metrics(0.10, 0.01), "frcnn_map": _voc_metrics(0.20, 0.01),
             "wsod_corloc": _voc_metrics(0.30, 0.01, "corloc") | {"definition": "authors", "split": "trainval"}}
    for key, data in files.items():
        (tmp_path / f"{key}.json").write_text(json.dumps(data))
    out = tmp_path / "metrics.html"
    assert cli(["report", "metrics-table", "--title", "voc07 / wsjds", "--wsod-map", str(tmp_path / "wsod_map.json"),
                "--frcnn-map", str(tmp_path / "frcnn_map.json"), "--wsod-corloc", str(tmp_path / "wsod_corloc.json"),
                "--paper-method", "wsjds", "--out", str(out)]) == 0
    page = out.read_text()
    # columns: WSOD AP, paper, Fast R-CNN AP, paper, CorLoc, paper
    assert _row(page, "aeroplane") == ["10.0", "52.0", "20.0", "64.8", "30.0", "82.9"]
    assert _row(page, "tvmonitor") == ["29.0", "29.7", "39.0", "57.4", "49.0", "43.5"]
    assert _row(page, "mean (mAP, CorLoc)") == ["19.5", "45.6", "29.5", "52.5", "39.5", "64.5"]
    assert "Table 2, row WS-JDS FRCNN" in page and "11-point interpolated AP" in page
    assert "authors definition on split trainval" in page


def test_metrics_table_without_paper_shows_undefined_classes_and_instance_segmentation():
    per_class = {"ring": 0.5, "star": None, "cross": 0.25, "beetle": 0.0, "fish": 0.125, "kite": 1.0}
    table = metrics_table("synth / wsjds", _metrics("map", per_class), _metrics("corloc", per_class),
                          _metrics("map", per_class))
    assert [c.label for c in table.columns] == ["WSOD AP", "Fast R-CNN AP", "WSOD CorLoc"]
    page = render_metrics_html(table, {"AP_b": 0.031, "AP_r": {"crf": 0.0123, "bb": 0.5}, "num_images": 80,
                                       "unavailable": {}})
    assert _row(page, "star") == ["–", "–", "–"] and _row(page, "fish") == ["12.5"] * 3
    assert _row(page, "mean (mAP, CorLoc)") == ["37.5"] * 3
    assert "<td>3.1</td>" in page and "<td>1.2</td>" in page and "<td>50.0</td>" in page
    assert format_percent(None) == "–" and format_percent(0.4567) == "45.7"


def test_metrics_table_rows_follow_the_dataset_s_class_order():
    """Metrics JSONs store per_class with sorted keys; their `classes` list keeps the dataset's order."""
    stored = {name: 0.1 * (k + 1) for k, name in enumerate(sorted(SYNTH_CLASSES))}
    metrics = _metrics("map", stored, classes=list(SYNTH_CLASSES))
    table = metrics_table("synth / wsjds", metrics, _metrics("corloc", stored))
    assert table.classes == SYNTH_CLASSES != tuple(sorted(SYNTH_CLASSES))
    page = render_metrics_html(table)
    rows = re.findall(r"<tr><th>(\w+)</th><td", page)
    assert rows == list(SYNTH_CLASSES)
    assert _row(page, "ring") == [format_percent(stored["ring"])] * 2


def test_metrics_table_bad_input_names_the_file(tmp_path, caplog):
    good = tmp_path / "map.json"
    good.write_text(json.dumps(_metrics("map", {"ring": 0.5})))
    broken = tmp_path / "corloc.json"
    broken.write_text(json.dumps({"metric": "corloc", "mean": 0.5}))
    args = ["report", "metrics-table", "--title", "t", "--wsod-map", str(good), "--wsod-corloc", str(broken),
            "--out", str(tmp_path / "m.html")]
    assert cli(args) == 2
    assert str(broken) in caplog.text and "per_class" in caplog.text
    broken.write_text(json.dumps(_metrics("map", {"ring": 0.5})))       # the wrong metric
    assert cli(args) == 2 and "expected 'corloc'" in caplog.text
    broken.write_text(json.dumps(_metrics("corloc", {"star": 0.5})))     # other classes
    assert cli(args) == 2 and "differ" in caplog.text
    assert not (tmp_path / "m.html").exists()
    with pytest.raises(SystemExit, match="--paper-method"):
        cli([*args, "--paper-method", "nope"])


# --- the Fig. 4 figure -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    """A 3-image synthetic test split with random proposals."""
    root = tmp_path_factory.mktemp("report")
    generate_dataset(root / "dataset", SynthConfig(num_trainval=2, num_test=3, min_side=64, max_side=80))
    source = VOCDataset(root / "dataset", "test", SYNTH_CLASSES)
    rng = np.random.default_rng(0)
    with ProposalWriter(root / "test.h5", dataset="tiny", split="test", source="random", parameters={}) as writer:
        for image_id in source.ids:
            width, height = source.image_size(image_id)
            corner = rng.uniform(0, 0.6, (NUM_PROPOSALS, 2)) * [width, height]
            boxes = np.concatenate([corner, corner + rng.uniform(0.2, 0.4, (NUM_PROPOSALS, 2)) * [width, height]], 1)
            boxes = np.minimum(boxes, [width, height, width, height]).astype(np.float32)
            writer.append(image_id, width, height, boxes, np.zeros(NUM_PROPOSALS, np.float32))
    return root, source


def _tiny_model(segmentation: bool):
    torch.manual_seed(0)
    return build_model(TINY_MODEL, weights_spec(SCRATCH, with_file=False), len(SYNTH_CLASSES), segmentation).eval()


SETTINGS = Figure4Settings(scale=64, max_side=96, max_proposals=20, map_min_score=0.0, tau=0.0, seed_fg=0.1,
                           seed_bg=0.005)


def test_figure4_writes_a_grid_of_the_expected_size_and_consistent_steps(tiny_split, tmp_path):
    root, source = tiny_split
    ids = source.ids[:2]
    style = Figure4Style(panel_inches=1.0, dpi=50)
    steps = figure4(_tiny_model(True), source, root / "test.h5", ids, SYNTH_CLASSES, SETTINGS, style,
                    tmp_path / "fig4.png")
    with Image.open(tmp_path / "fig4.png") as png:          # 2 images x 4 rows of 1 inch at 50 dpi
        assert png.size == (2 * 50, 4 * 50)
    for step, image_id in zip(steps, ids):
        labels = source.image_labels(image_id)
        h, w = step.image.shape[:2]
        assert min(h, w) == SETTINGS.scale and step.maps.shape == step.seeds.shape == (len(SYNTH_CLASSES), h, w)
        assert step.segmentation.shape == (h, w) and step.segmentation.max() <= len(SYNTH_CLASSES)
        absent = labels < 0.5
        assert not step.maps[absent].any() and not step.seeds[absent].any()   # absent classes: background
        present = np.flatnonzero(~absent)
        assert np.allclose(step.maps[present].reshape(len(present), -1).max(axis=1), 1.0)   # max-normalised
        assert set(np.unique(step.seeds)) <= {0.0, 0.5, 1.0}
        np.testing.assert_array_equal(step.seeds[present] == 1.0, step.maps[present] >= SETTINGS.seed_fg)
        colours = seed_image(step.seeds, labels)
        assert colours.shape == (h, w, 3)


def test_figure4_seeds_follow_training_s_gate(tiny_split, tmp_path):
    """Above every image score, tau makes each labelled class uncertain everywhere; the shown maps keep
    their own gate."""
    root, source = tiny_split
    gated = Figure4Settings(**{**SETTINGS.__dict__, "tau": 1.01})
    steps = figure4(_tiny_model(True), source, root / "test.h5", source.ids[:1], SYNTH_CLASSES, gated,
                    Figure4Style(2.4, 30), tmp_path / "gated.png")
    present = source.image_labels(source.ids[0]) > 0.5
    assert (steps[0].seeds[present] == 0.5).all() and steps[0].maps[present].max() == pytest.approx(1.0)


def test_figure4_without_segmentation_branch_draws_image_and_map_only(tiny_split, tmp_path):
    root, source = tiny_split
    steps = figure4(_tiny_model(False), source, root / "test.h5", source.ids[:3], SYNTH_CLASSES, SETTINGS,
                    Figure4Style(panel_inches=1.0, dpi=40), tmp_path / "wsddn.png", seeds=False)
    assert all(step.segmentation is None for step in steps)
    with Image.open(tmp_path / "wsddn.png") as png:
        assert png.size == (3 * 40, 2 * 40)


def test_figure4_command_rebuilds_the_run_and_refuses_fast_rcnn_settings(tiny_split, tmp_path, caplog):
    root, source = tiny_split
    settings = {"dataset": {"name": "tiny", "kind": "synthetic", "root": str(root / "dataset"), "split": "trainval",
                            "include_difficult_labels": False},
                "classes": list(SYNTH_CLASSES), "method_name": "wsjds",
                "method": {"segmentation": True, "det_to_seg": True, "seg_to_det": True},
                "model": TINY_MODEL, "weights": SCRATCH, "cgl": CONFIG["cgl"], "training": {"max_proposals": 20}}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "model": _tiny_model(True).state_dict()}, tmp_path / "round1.pt")
    args = ["report", "figure4", "--settings", str(tmp_path / "settings.json"), "--checkpoint",
            str(tmp_path / "round1.pt"), "--proposals", str(root / "test.h5"), "--split", "test", "--images", "5",
            "--scale", "64", "--max-side", "96", "--map-min-score", "0", "--panel-inches", "1", "--dpi", "30",
            "--out", str(tmp_path / "fig.png")]
    assert cli(args) == 0
    with Image.open(tmp_path / "fig.png") as png:         # the split has 3 images: all of them
        assert png.size == (3 * 30, 4 * 30)
    (tmp_path / "frcnn.json").write_text(json.dumps({**settings, "frcnn": {}}))
    args[args.index(str(tmp_path / "settings.json"))] = str(tmp_path / "frcnn.json")
    assert cli(args) == 2 and "frcnn.json" in caplog.text


# --- the workflow's wiring ---------------------------------------------------------------------

def test_paper_columns_go_to_voc07_only():
    assert paper_method(CONFIG, "voc07", "wsjds") == "wsjds"
    assert paper_method(CONFIG, "voc07", "det2seg") == "det2seg"
    assert paper_method(CONFIG, "voc07", "wsjds-seed12") == "wsjds"      # a seed's run: the method's columns
    assert paper_method(CONFIG, "voc12", "wsjds") is None and paper_method(CONFIG, "synth", "wsjds") is None
    assert "--paper-method wsjds" in metrics_flags(CONFIG, "voc07", "wsjds")
    assert "--paper-method" not in metrics_flags(CONFIG, "synth", "wsjds")


def test_report_items_are_default_targets_with_their_inputs():
    targets = default_targets(CONFIG)
    assert set(report_targets(CONFIG, "synth")) <= set(targets)
    assert "results/synth/wsjds/report/figure4_test.png" in targets
    assert metrics_inputs(CONFIG, "synth", "wsjds")["instance_seg"] == "results/synth/wsjds/metrics/instance_seg.json"
    assert "instance_seg" not in metrics_inputs(CONFIG, "voc07", "wsjds")
    figure4 = report_settings(CONFIG, "synth")["report"]["figure4"]
    assert figure4["images"] == CONFIG["report"]["figure4"]["images"]
    assert figure4["scale"] == CONFIG["masks"]["datasets"]["synth"]["scale"]      # the masks stage's test scale
    assert figure4["dpi"] == CONFIG["report"]["dpi"]
