"""The Table 1 ablation: seed-suffixed run names (``wsjds-seed12``) reach the training settings, the
``ablation`` section names configured methods, the summary's mean / std / per-seed values and the
paper's claimed differences from metrics JSONs in ``wsjds evaluate voc``'s format, the figure and
the CLI."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image

from workflow_plan import REPO
from wsjds import workflow as wf
from wsjds.cli import main as cli
from wsjds.data.errors import DatasetError
from wsjds.evaluation.result import MetricResult, mean_of_defined
from wsjds.io import write_json
from wsjds.report import paper
from wsjds.report.ablation import AblationRun, ablation_summary, plot_ablation, statistics
from wsjds.train import settings_hash

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
CLASSES = ("ring", "star")

# Hand-computed: wsddn mAP 0.10 / 0.20 / 0.30 -> mean 0.20, sample std 0.10; wsjds 0.30 / 0.35 / 0.55 ->
# mean 0.40, std sqrt((0.01 + 0.0025 + 0.0225) / 2); wsjds's Fast R-CNN 0.10 above its WSOD mAP at every seed.
SEEDS = (11, 12, 13)
WSOD_MAP = {"wsddn": (0.10, 0.20, 0.30), "wsjds": (0.30, 0.35, 0.55)}
CORLOC = {"wsddn": (0.20, 0.20, 0.26), "wsjds": (0.40, 0.50, 0.60)}
FRCNN_MAP = {"wsjds": (0.40, 0.45, 0.65)}


def _metrics_file(path: Path, metric: str, mean: float, split: str) -> Path:
    """A metrics JSON as `wsjds evaluate voc` writes it: two classes around ``mean``."""
    per_class = {"ring": mean - 0.05, "star": mean + 0.05}
    assert mean_of_defined(list(per_class.values())) == pytest.approx(mean)
    result = MetricResult(metric, per_class, mean, {"num_images": 4, "iou_threshold": 0.5})
    write_json(path, {**result.to_json(), "root": "results/synth/dataset", "split": split,
                      "detections": "d.h5", "classes": list(CLASSES)})
    return path


def _runs(tmp_path: Path, methods=("wsddn", "wsjds"), seeds=SEEDS) -> list[AblationRun]:
    runs = []
    for method in methods:
        for k, seed in enumerate(seeds):
            base = tmp_path / f"{method}-seed{seed}"
            frcnn = None
            if method in FRCNN_MAP:
                frcnn = _metrics_file(base / "frcnn/metrics/test_map.json", "map", FRCNN_MAP[method][k], "test")
            runs.append(AblationRun(method, seed, _metrics_file(base / "metrics/test_map.json", "map",
                                                                WSOD_MAP[method][k], "test"),
                                    _metrics_file(base / "metrics/trainval_corloc.json", "corloc",
                                                  CORLOC[method][k], "trainval"), frcnn))
    return runs


# --- run names with a seed ---------------------------------------------------------------------

@pytest.mark.parametrize("name, parsed", [("wsjds", ("wsjds", None)), ("wsjds-seed12", ("wsjds", 12)),
                                          ("det2seg-seed0", ("det2seg", 0)), ("wsddn-seed1234", ("wsddn", 1234))])
def test_parse_method_reads_the_seed_suffix(name, parsed):
    assert wf.parse_method(name) == parsed
    assert wf.method_run_name(*parsed) == name


@pytest.mark.parametrize("name", ["", "wsjds-seed", "wsjds-seed012", "wsjds-seed-1", "wsjds-12", "wsjds_seed12",
                                  "wsjds-seed12x", "WSJDS", "wsjds/frcnn", "wsjds-seed1-seed2"])
def test_parse_method_rejects_other_names_saying_what_a_name_looks_like(name):
    with pytest.raises(ValueError, match=r"bad method name .*METHOD-seedN"):
        wf.parse_method(name)


def test_the_wildcards_take_configured_methods_with_a_seed_only():
    method, run = re.compile(wf.method_wildcard(CONFIG)), re.compile(wf.run_wildcard(CONFIG))
    assert all(method.fullmatch(n) for n in ("wsjds", "wsjds-seed12", "parallel-seed0"))
    assert not any(method.fullmatch(n) for n in ("wsjds-seed012", "foo-seed1", "wsjds-seed", "wsjds/frcnn"))
    assert run.fullmatch("wsjds-seed12/frcnn") and run.fullmatch("wsddn") and not run.fullmatch("wsjds/frcnn/x")
    with pytest.raises(ValueError, match="'foo' .* is not among methods"):
        wf.method_entry(CONFIG, "foo-seed1")


def test_a_seed_suffix_is_the_training_seed_of_the_wsod_and_fast_rcnn_runs():
    plain, seeded = wf.run_settings(CONFIG, "synth", "wsjds"), wf.run_settings(CONFIG, "synth", "wsjds-seed12")
    recipe = CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]
    assert plain["training"]["seed"] == recipe["seed"] != 12 and seeded["training"]["seed"] == 12
    assert seeded["method_name"] == "wsjds-seed12" and seeded["method"] == CONFIG["methods"]["wsjds"]
    assert {k: v for k, v in seeded["training"].items() if k != "seed"} == \
           {k: v for k, v in plain["training"].items() if k != "seed"}
    assert settings_hash(seeded) != settings_hash(plain)
    assert settings_hash(seeded) != settings_hash(wf.run_settings(CONFIG, "synth", "wsjds-seed13"))
    frcnn, frcnn_seeded = (wf.run_settings(CONFIG, "synth", f"{m}/frcnn") for m in ("wsjds", "wsjds-seed12"))
    frcnn_recipe = CONFIG["training"][CONFIG["frcnn"][CONFIG["datasets"]["synth"]["frcnn"]]["training"]]
    assert frcnn["training"]["seed"] == frcnn_recipe["seed"] and frcnn_seeded["training"]["seed"] == 12
    assert frcnn_seeded["method_name"] == "wsjds-seed12" and settings_hash(frcnn_seeded) != settings_hash(frcnn)
    assert CONFIG["training"][CONFIG["datasets"]["synth"]["training"]]["seed"] == recipe["seed"]   # config untouched


# --- config checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(methods=["wsddn", "wsjdss"]), r"ablation.methods \['wsjdss'\] are not among methods"),
    (lambda a: a.update(frcnn_methods=["parallel"], methods=["wsddn", "wsjds"]),
     r"ablation.frcnn_methods \['parallel'\] are not among ablation.methods"),
    (lambda a: a.update(seeds=[11, 12, 11]), r"ablation.seeds repeats \[11\]"),
])
def test_check_references_rejects_a_bad_ablation(mutate, message):
    wf.check_references(CONFIG)
    config = copy.deepcopy(CONFIG)
    mutate(config["ablation"])
    with pytest.raises(ValueError, match=message):
        wf.check_references(config)


# --- the summary -------------------------------------------------------------------------------

def test_summary_holds_hand_computed_means_stds_and_per_seed_values(tmp_path):
    summary = ablation_summary("synth", SEEDS, _runs(tmp_path), "abc123")
    assert (summary["dataset"], summary["seeds"], summary["config_hash"]) == ("synth", list(SEEDS), "abc123")
    assert list(summary["methods"]) == ["wsddn", "wsjds"]
    wsddn, wsjds = summary["methods"]["wsddn"], summary["methods"]["wsjds"]
    assert wsddn["wsod_map"]["mean"] == pytest.approx(0.20) and wsddn["wsod_map"]["std"] == pytest.approx(0.10)
    assert wsddn["wsod_map"]["per_seed"] == {"11": pytest.approx(0.10), "12": pytest.approx(0.20),
                                             "13": pytest.approx(0.30)}
    assert wsddn["wsod_corloc"]["mean"] == pytest.approx(0.22)
    assert wsddn["wsod_corloc"]["std"] == pytest.approx(math.sqrt((0.0004 + 0.0004 + 0.0016) / 2))
    assert wsjds["wsod_map"]["mean"] == pytest.approx(0.40)
    assert wsjds["wsod_map"]["std"] == pytest.approx(math.sqrt((0.01 + 0.0025 + 0.0225) / 2))
    assert wsjds["frcnn_map"]["mean"] == pytest.approx(0.50) and "frcnn_map" not in wsddn
    # the paper's VOC2007 means, as fractions: Table 1 for every method, Tables 2 and 3 for WS-JDS only
    assert wsddn["paper"]["wsod_map"] == pytest.approx(0.369) and wsddn["paper"]["frcnn_map"] is None
    assert wsjds["paper"]["wsod_map"] == pytest.approx(0.456) and wsjds["paper"]["frcnn_map"] == pytest.approx(0.525)
    assert wsjds["paper"]["wsod_corloc"] == pytest.approx(0.645) and wsjds["paper"]["label"] == "WS-JDS"
    # the paper's claims on our numbers, seed by seed: 0.20, 0.15, 0.25 and 0.10 at every seed
    gain = summary["differences"]["wsjds_minus_wsddn_wsod_map"]
    assert gain["mean"] == pytest.approx(0.20) and gain["std"] == pytest.approx(0.05)
    assert gain["per_seed"] == {"11": pytest.approx(0.20), "12": pytest.approx(0.15), "13": pytest.approx(0.25)}
    assert gain["paper"] == pytest.approx((45.6 - 36.9) / 100)
    retrain = summary["differences"]["wsjds_frcnn_minus_wsod_map"]
    assert retrain["mean"] == pytest.approx(0.10) and retrain["std"] == pytest.approx(0.0, abs=1e-12)
    assert retrain["paper"] == pytest.approx(0.069)
    assert json.loads(json.dumps(summary)) == summary                      # plain JSON


def test_one_seed_has_no_std_and_a_missing_method_no_difference(tmp_path):
    summary = ablation_summary("synth", [12], _runs(tmp_path, methods=("wsjds",), seeds=(12,)), "h")
    assert summary["methods"]["wsjds"]["wsod_map"] == {"mean": pytest.approx(0.30), "std": None,
                                                       "per_seed": {"12": pytest.approx(0.30)}}
    assert list(summary["differences"]) == ["wsjds_frcnn_minus_wsod_map"]      # no wsddn to compare with
    assert statistics([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_summary_bad_input_names_the_file_or_the_run(tmp_path):
    runs = _runs(tmp_path)
    with pytest.raises(ValueError, match=r"'wsddn' has runs of seeds \[11, 12, 13\], expected .*\[11, 12\]"):
        ablation_summary("synth", [11, 12], runs, "h")
    swapped = [AblationRun(r.method, r.seed, r.wsod_corloc, r.wsod_map, r.frcnn_map) for r in runs]
    with pytest.raises(DatasetError, match=r"wsddn-seed11/metrics/trainval_corloc.json.*expected 'map'"):
        ablation_summary("synth", SEEDS, swapped, "h")
    runs[0].wsod_map.unlink()
    with pytest.raises(DatasetError, match=r"wsddn-seed11/metrics/test_map.json.*does not exist"):
        ablation_summary("synth", SEEDS, runs, "h")


def test_plot_is_a_png_of_three_panels_of_the_configured_size(tmp_path):
    summary = ablation_summary("synth", SEEDS, _runs(tmp_path), "h")
    for show_paper in (False, True):
        out = tmp_path / f"ablation_{show_paper}.png"
        plot_ablation(summary, out, panel_inches=2.0, dpi=40, title="tiny", show_paper=show_paper)
        with Image.open(out) as png:
            assert png.format == "PNG" and png.size == (3 * 2.0 * 40, 2.0 * 40)


def test_cli_writes_the_summary_and_the_plot(tmp_path, caplog):
    runs = _runs(tmp_path)
    args = ["report", "ablation", "--dataset", "synth", "--config-hash", "h", "--seeds", *map(str, SEEDS)]
    for run in runs:
        args += ["--run", run.method, str(run.seed), str(run.wsod_map), str(run.wsod_corloc),
                 *([str(run.frcnn_map)] if run.frcnn_map else [])]
    args += ["--panel-inches", "2", "--dpi", "30", "--out-json", str(tmp_path / "a.json"),
             "--out-plot", str(tmp_path / "a.png")]
    assert cli(args) == 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(
        ablation_summary("synth", SEEDS, runs, "h")))
    with Image.open(tmp_path / "a.png") as png:
        assert png.size == (180, 60)
    with pytest.raises(SystemExit, match="--run takes METHOD SEED WSOD_MAP CORLOC"):
        cli(args[:args.index("--run")] + ["--run", "wsddn", "11", "m.json"] + args[args.index("--panel-inches"):])
    (tmp_path / "wsjds-seed12/metrics/test_map.json").write_text("{")
    assert cli(args) == 2 and "not valid JSON" in caplog.text


def test_the_paper_s_claims_are_read_off_its_tables():
    assert paper.TABLE1_WSOD_AP["wsjds"].mean - paper.TABLE1_WSOD_AP["wsddn"].mean == pytest.approx(8.7)
    assert paper.TABLE2_FRCNN_AP["wsjds"].mean - paper.TABLE1_WSOD_AP["wsjds"].mean == pytest.approx(6.9)
