"""wsjds.stages.masks, wsjds.artifacts.mask_store and `wsjds masks`: RLE, BB / ELL baselines, class maps, the store,
and the run -> merge -> export -> evaluate chain on a tiny synthetic dataset."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wsjds.cli import main as cli
from wsjds.crf import CRFParams
from wsjds.data.coco import COCODataset
from wsjds.data.synthetic import SYNTH_CLASSES, SynthConfig, generate_dataset
from wsjds.artifacts.detections import DetectionWriter
from wsjds.artifacts.hdf5 import HDF5FormatError
from wsjds.artifacts.mask_store import (MaskStore, MaskWriter, decode_rle, encode_rle, rle_object,
                              to_coco_segm_results)
from wsjds.stages.masks import (MaskConfig, MaskParams, box_mask, box_window, class_probabilities, crf_class_maps,
                         crf_unary, cut_to_box, ellipse_mask, threshold_class_maps, write_masks)
from wsjds.model.wsjds import build_model, weights_spec
from wsjds.artifacts.shards import merge_shards
from wsjds.stages.train import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

TINY_MODEL = {"backbone": "vgg_c5d", "trainable_stages": 0, "trunk_lr_mult": 1.0, "widths": [4, 4, 8, 8, 8], "fc_dim": 16, "weights": "scratch", "freeze_backbone": False,
              "roi_size": 3, "dropout": 0.5, "score_boost": False, "aspp_rates": [1, 2], "aspp_hidden": 8,
              "group_norm": 0}
SCRATCH = {"path": None, "channel_order": "RGB", "scale": 1, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
PARAMS = MaskParams(scale=64, max_side=128, flip=False, threshold=0.5, crf=CRFParams(iterations=3))


def _tiny_model(num_classes: int, segmentation: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(TINY_MODEL, weights_spec(SCRATCH, with_file=False), num_classes, segmentation).eval()


# --- RLE ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 48), (3, 200)])
def test_rle_round_trip_is_exact(shape):
    rng = np.random.default_rng(sum(shape))
    for mask in (rng.random(shape) > 0.5, np.zeros(shape, bool), np.ones(shape, bool)):
        counts = encode_rle(mask)
        assert isinstance(counts, bytes)
        np.testing.assert_array_equal(decode_rle(counts, shape[1], shape[0]), mask)
        obj = rle_object(counts, shape[1], shape[0])
        assert obj["size"] == list(shape) and isinstance(obj["counts"], str)
        np.testing.assert_array_equal(decode_rle(obj["counts"], shape[1], shape[0]), mask)


# --- BB and ELL ----------------------------------------------------------------------------------

def test_bb_mask_area_is_the_integer_box_area():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x1, y1 = rng.integers(0, 40, 2)
        w, h = rng.integers(1, 60, 2)
        box = np.array([x1, y1, x1 + w, y1 + h], np.float32)
        mask = box_mask(box, 120, 110)
        assert mask.sum() == w * h
        assert mask[y1, x1] and mask[y1 + h - 1, x1 + w - 1] and not mask[y1 + h - 1, x1 + w]


def test_bb_mask_is_clipped_to_the_image_and_uses_pixel_centres():
    assert box_mask(np.array([-5, -5, 10, 4], np.float32), 8, 6).sum() == 8 * 4
    # column centres 0.5, 1.5, 2.5 lie in [0.4, 2.6); of the row centres only 1.5 lies in [0.6, 2.4)
    assert box_window(np.array([0.4, 0.6, 2.6, 2.4]), 10, 10) == (0, 1, 3, 2)
    assert box_mask(np.array([3, 3, 3, 9], np.float32), 10, 10).sum() == 0      # zero width: empty


def test_ell_mask_area_is_pi_w_h_over_4():
    """Pixels counted by centre differ from the ellipse's area only in cells its boundary crosses; each
    quadrant arc is monotone, so it crosses at most (a + 1) + (b + 1) + 1 cells: |N - area| <=
    2 (w + h) + 12. On boxes of 50+ px the lattice errors largely cancel: within 1 %."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        w, h = rng.uniform(3, 150, 2)
        x1, y1 = rng.uniform(0, 40, 2)
        box = np.array([x1, y1, x1 + w, y1 + h])
        count = int(ellipse_mask(box, 200, 200).sum())
        area = math.pi * w * h / 4
        assert abs(count - area) <= 2 * (w + h) + 12
        if min(w, h) >= 50:
            assert abs(count - area) <= 0.01 * area
    mask = ellipse_mask(np.array([0, 0, 40, 20]), 40, 20)
    assert mask[10, 20] and not mask[0, 0] and not mask[19, 39]        # centre in, corners out
    np.testing.assert_array_equal(mask, mask[:, ::-1])                  # symmetric
    np.testing.assert_array_equal(mask, mask[::-1])
    assert not (ellipse_mask(np.array([0, 0, 40, 20]), 60, 60) & ~box_mask(np.array([0, 0, 40, 20]), 60, 60)).any()


def test_cut_to_box_keeps_the_class_map_inside_the_box_only():
    class_map = np.ones((10, 12), bool)
    class_map[:, 0] = False
    cut = cut_to_box(class_map, np.array([0, 2, 4, 5], np.float32))
    assert cut.sum() == 3 * 3 and cut[2:5, 1:4].all() and not cut[:, 0].any()


# --- class maps ----------------------------------------------------------------------------------

def test_crf_unary_is_minus_log_softmax_of_background_and_class_probabilities():
    rng = np.random.default_rng(2)
    probs = rng.random((3, 5, 6)).astype(np.float32)
    unary = crf_unary(probs, [0, 2], 1e-4)
    stacked = torch.from_numpy(np.concatenate([1 - probs.max(axis=0, keepdims=True), probs[[0, 2]]]))
    expected = (-torch.log_softmax(stacked.double(), dim=0)).clamp_min(1e-4).float().numpy()
    assert unary.shape == (3, 5, 6)
    np.testing.assert_allclose(unary, expected, rtol=1e-6)


def test_class_maps_with_and_without_crf():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    probs = np.zeros((3, 20, 30), np.float32)
    probs[1, :, 15:] = 0.9
    maps = threshold_class_maps(probs, [1, 1, 2], 0.5)
    assert sorted(maps) == [1, 2] and maps[1].sum() == 20 * 15 and maps[2].sum() == 0
    for labels in ("all", "detected"):
        refined = crf_class_maps(image, probs, [1, 2], MaskParams(64, 128, False, 0.5, labels))
        assert sorted(refined) == [1, 2] and refined[1].dtype == bool and refined[1].shape == (20, 30)
        assert refined[1][:, 20:].all() and not refined[2].any()
    assert crf_class_maps(image, probs, [], PARAMS) == {}


def test_class_probabilities_at_the_image_size():
    model = _tiny_model(3)
    image = np.random.default_rng(4).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    probs = class_probabilities(model, image, PARAMS, torch.device("cpu"))
    assert probs.shape == (3, 37, 53) and probs.dtype == np.float32
    assert 0 < probs.min() and probs.max() < 1
    flipped = class_probabilities(model, image, MaskParams(64, 128, True, 0.5), torch.device("cpu"))
    assert flipped.shape == probs.shape and not np.array_equal(flipped, probs)
    with pytest.raises(ValueError, match="no segmentation branch"):
        class_probabilities(_tiny_model(3, segmentation=False), image, PARAMS, torch.device("cpu"))


# --- config ----------------------------------------------------------------------------------------

def test_mask_config_resolves_dataset_overrides_and_round_trips_through_the_settings_file(repo_root):
    from wsjds import workflow as wf

    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    voc = MaskConfig.from_config(config["masks"], "voc07")
    synth = MaskConfig.from_config(config["masks"], "synth")
    assert (voc.params.scale, voc.shards) == (688, 16) and (synth.params.scale, synth.shards) == (208, 2)
    assert voc.params.crf == CRFParams() and voc.params.threshold == 0.5
    assert voc.variants == ("crf", "nocrf", "bb", "ell")
    settings = json.loads(json.dumps(wf.mask_settings(config, "synth")))     # as rule mask_settings writes it
    assert MaskParams.from_json(settings["masks"]) == synth.params
    assert type(synth.params.crf.reference_side) is float and type(synth.params.crf.iterations) is int  # YAML's 500
    assert (synth.params.max_side, synth.params.flip, synth.params.crf.iterations, synth.params.unary_floor) == \
        (320, False, 10, 1e-4)


# --- store ----------------------------------------------------------------------------------------

def _write_store(path: Path, variant: str = "bb") -> None:
    boxes = np.array([[0, 0, 4, 3], [2, 1, 6, 5]], np.float32)
    with MaskWriter(path, dataset="synth", split="test", classes=("a", "b"), source="test",
                    parameters={"variant": variant}) as w:
        w.append("000001", 8, 6, boxes, [0.9, 0.5], [0, 1], [encode_rle(box_mask(b, 8, 6)) for b in boxes])
        w.append("000002", 8, 6, np.zeros((0, 4)), [], [], [])


def test_store_round_trip_and_same_bytes(tmp_path):
    _write_store(tmp_path / "a.h5")
    _write_store(tmp_path / "b.h5")
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.h5", "b.h5")]
    assert digest[0] == digest[1]
    with MaskStore.open(tmp_path / "a.h5", dataset="synth", split="test") as store:
        assert store.variant == "bb" and store.image_ids == ("000001", "000002")
        masks = store["000001"]
        assert len(masks) == 2 and masks.mask(1).sum() == 16 and masks.mask(0).shape == (6, 8)
        assert len(store["000002"]) == 0
    with pytest.raises(HDF5FormatError, match="format"):
        from wsjds.artifacts.detections import DetectionStore
        DetectionStore.open(tmp_path / "a.h5")


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="variant"):
        MaskWriter(tmp_path / "x.h5", dataset="d", split="s", classes=("a",), source="t", parameters={})
    with pytest.raises(ValueError, match="2 detections"):
        with MaskWriter(tmp_path / "x.h5", dataset="d", split="s", classes=("a",), source="t",
                        parameters={"variant": "bb"}) as w:
            w.append("1", 4, 4, np.zeros((2, 4)), [1, 1], [0, 0], [b"0"])
    assert not (tmp_path / "x.h5").exists()


def test_export_standard_and_package_forms(tmp_path):
    _write_store(tmp_path / "m.h5")
    with MaskStore.open(tmp_path / "m.h5") as store:
        assert to_coco_segm_results(store, tmp_path / "std.json", [3, 7], [1, 2]) == 2
        assert to_coco_segm_results(store, tmp_path / "pkg.json") == 2
        with pytest.raises(ValueError, match="not in the annotation file"):
            to_coco_segm_results(store, tmp_path / "bad.json", [3, 7], [5])
    std = json.loads((tmp_path / "std.json").read_text())
    pkg = json.loads((tmp_path / "pkg.json").read_text())
    assert [e["image_id"] for e in std] == [1, 1] and [e["category_id"] for e in std] == [3, 7]
    assert [e["image_id"] for e in pkg] == ["000001"] * 2 and [e["category_id"] for e in pkg] == [0, 1]
    assert std[1]["bbox"] == [2.0, 1.0, 4.0, 4.0] and std[1]["segmentation"]["size"] == [6, 8]


# --- the command chain on a tiny synthetic dataset ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A 4-image synthetic test split, detections = its ground-truth boxes, and an untrained tiny model
    with its run settings in the checkpoint, and the mask settings file."""
    root = tmp_path_factory.mktemp("masks")
    generate_dataset(root / "dataset", SynthConfig(num_trainval=2, num_test=4, min_side=64, max_side=96))
    coco = COCODataset(root / "dataset" / "annotations" / "instances_test.json")
    with DetectionWriter(root / "detections.h5", dataset="tiny", split="test", classes=SYNTH_CLASSES,
                         source="ground truth", parameters={}) as writer:
        for image_id in sorted(coco.ids, key=int):
            ann = coco.annotation(image_id)
            scores = np.linspace(1.0, 0.5, len(ann.labels), dtype=np.float32)
            writer.append(f"{int(image_id):06d}", ann.width, ann.height, ann.boxes, scores, ann.labels)
    dataset = {"name": "tiny", "kind": "synthetic", "root": str(root / "dataset"), "include_difficult_labels": False}
    run_settings = {"dataset": {**dataset, "split": "trainval"}, "classes": list(SYNTH_CLASSES), "method_name": "wsjds",
                    "method": {"segmentation": True, "det_to_seg": True, "seg_to_det": True},
                    "model": TINY_MODEL, "weights": SCRATCH}
    mask_settings = {"dataset": dataset, "classes": list(SYNTH_CLASSES), "masks": PARAMS.to_json()}
    (root / "mask_settings.json").write_text(json.dumps(mask_settings))
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "settings": json.dumps(run_settings),
                "model": _tiny_model(len(SYNTH_CLASSES)).state_dict()}, root / "round1.pt")
    return root


def _run_flags(root: Path, shard: str) -> list[str]:
    return ["masks", "run", "--detections", str(root / "detections.h5"), "--split", "test", "--shard", shard,
            "--settings", str(root / "mask_settings.json"), "--checkpoint", str(root / "round1.pt"), "--no-progress"]


def test_run_merge_export_evaluate(tiny_run):
    root = tiny_run
    variants = ("crf", "nocrf", "bb", "ell")
    for k in range(2):
        outs = [a for v in variants for a in (f"--{v}-out", str(root / f"{v}.{k}.h5"))]
        assert cli(_run_flags(root, f"{k}/2") + outs) == 0
    annotations = root / "dataset" / "annotations" / "instances_test.json"
    for v in variants:
        assert cli(["masks", "merge", "--detections", str(root / "detections.h5"), "--out", str(root / f"{v}.h5"),
                    str(root / f"{v}.1.h5"), str(root / f"{v}.0.h5")]) == 0
        assert cli(["masks", "export", "--masks", str(root / f"{v}.h5"), "--annotations", str(annotations),
                    "--coco-json", str(root / f"{v}.json")]) == 0
    with MaskStore.open(root / "crf.h5") as crf, MaskStore.open(root / "bb.h5") as bb:
        assert crf.image_ids == bb.image_ids == ("000003", "000004", "000005", "000006")
        assert crf.parameters["scale"] == 64 and crf.parameters["variant"] == "crf"
        for image_id in crf.image_ids:
            a, b = crf[image_id], bb[image_id]
            np.testing.assert_array_equal(a.boxes, b.boxes)
            for k in range(len(a)):   # a class map cut to the box never leaves the box
                assert not (a.mask(k) & ~b.mask(k)).any()
    out = root / "instance_seg.json"
    assert cli(["masks", "evaluate", "--annotations", str(annotations), "--out", str(out),
                *[f"--variant={v}={root / f'{v}.json'}" for v in variants]]) == 0
    result = json.loads(out.read_text())
    assert result["AP_b"] == pytest.approx(1.0)          # the detections are the ground-truth boxes
    assert set(result["AP_r"]) == set(variants)
    assert 0 < result["AP_r"]["bb"] < 1 and result["masks"]["ell"]["stats"]["AP50"] is not None


def test_merge_names_missing_images(tiny_run, tmp_path):
    root = tiny_run
    assert cli(["masks", "run", "--detections", str(root / "detections.h5"), "--split", "test", "--shard", "0/2",
                "--bb-out", str(tmp_path / "bb.0.h5"), "--no-progress"]) == 0
    assert cli(["masks", "merge", "--detections", str(root / "detections.h5"), "--out", str(tmp_path / "bb.h5"),
                str(tmp_path / "bb.0.h5")]) == 2
    assert not (tmp_path / "bb.h5").exists()
    with pytest.raises(ValueError, match=r"missing: \['000005', '000006'\]"):
        merge_shards(MaskStore, [tmp_path / "bb.0.h5"], tmp_path / "bb.h5", ("000003", "000004", "000005", "000006"),
                     dataset="tiny", split="test")


def test_detect_and_masks_refuse_settings_that_do_not_fit_the_checkpoint(tiny_run, tmp_path, caplog):
    """A settings file from an older wsjds (no section the job needs) or of other classes than the run
    the checkpoint holds stops the job with exit code 2, naming the file, before any image is read."""
    mask_settings = json.loads((tiny_run / "mask_settings.json").read_text())
    old = tmp_path / "old_mask_settings.json"
    old.write_text(json.dumps({k: v for k, v in mask_settings.items() if k != "masks"}))
    assert cli(["masks", "run", "--detections", str(tiny_run / "detections.h5"), "--split", "test",
                "--settings", str(old), "--checkpoint", str(tiny_run / "round1.pt"),
                "--crf-out", str(tmp_path / "c.h5"), "--no-progress"]) == 2
    assert "no 'masks' section" in caplog.text and "old_mask_settings.json" in caplog.text
    inference = {"scales": [64], "max_side": 96, "flip": False, "max_proposals": 10, "nms_iou": 0.3,
                 "max_detections": 10, "score_threshold": 0}

    def detect(settings: dict) -> int:
        path = tmp_path / "detect_settings.json"
        path.write_text(json.dumps(settings))
        return cli(["detect", "run", "--settings", str(path), "--checkpoint", str(tiny_run / "round1.pt"),
                    "--proposals", str(tmp_path / "none.h5"), "--split", "test", "--out", str(tmp_path / "d.h5"),
                    "--device", "cpu", "--no-progress"])

    caplog.clear()
    assert detect({"dataset": mask_settings["dataset"], "classes": list(SYNTH_CLASSES)}) == 2
    assert "no 'inference' section" in caplog.text
    caplog.clear()
    assert detect({"dataset": mask_settings["dataset"], "classes": list(SYNTH_CLASSES)[::-1],
                   "inference": inference}) == 2
    assert "trained on classes" in caplog.text and "round1.pt" in caplog.text
    assert not (tmp_path / "c.h5").exists() and not (tmp_path / "d.h5").exists()


def test_model_variants_need_the_model(tiny_run, tmp_path):
    from wsjds.artifacts.detections import DetectionStore

    with DetectionStore.open(tiny_run / "detections.h5") as dets:
        with pytest.raises(ValueError, match="need the mask parameters"):
            write_masks(dets.image_ids, dets, {"crf": tmp_path / "c.h5"}, dataset="tiny", split="test")
    with pytest.raises(SystemExit, match="--settings"):
        cli(["masks", "run", "--detections", str(tiny_run / "detections.h5"), "--split", "test",
             "--crf-out", str(tmp_path / "c.h5")])


def test_box_baselines_on_rectangles_score_as_expected(tmp_path):
    """Rectangular ground truth and detections on it: BB masks are exact (AP^r = 1); the inscribed
    ellipse covers pi / 4 = 0.785 of the box, so it matches at IoU 0.50..0.75 and not 0.80..0.95
    (AP^r = 6 / 10)."""
    from wsjds.commands.masks import evaluate_instance_segmentation

    boxes = {1: [[4, 4, 64, 44], [70, 10, 110, 90]], 2: [[10, 50, 90, 100]]}
    images, annotations = [], []
    for image_id, image_boxes in boxes.items():
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": 120, "height": 110})
        for box in image_boxes:
            rle = rle_object(encode_rle(box_mask(np.array(box), 120, 110)), 120, 110)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "area": float((box[2] - box[0]) * (box[3] - box[1])), "segmentation": rle})
    gt = tmp_path / "instances.json"
    gt.write_text(json.dumps({"images": images, "annotations": annotations,
                              "categories": [{"id": 1, "name": "thing"}]}))
    with DetectionWriter(tmp_path / "d.h5", dataset="r", split="s", classes=("thing",), source="t",
                         parameters={}) as w:
        for image_id, image_boxes in boxes.items():
            w.append(str(image_id), 120, 110, np.array(image_boxes), np.ones(len(image_boxes)),
                     np.zeros(len(image_boxes), np.int64))
    for variant in ("bb", "ell"):
        assert cli(["masks", "run", "--detections", str(tmp_path / "d.h5"), "--split", "s",
                    f"--{variant}-out", str(tmp_path / f"{variant}.h5"), "--no-progress"]) == 0
        with MaskStore.open(tmp_path / f"{variant}.h5") as store:
            to_coco_segm_results(store, tmp_path / f"{variant}.json", [1], [1, 2])
    result = evaluate_instance_segmentation(gt, {v: tmp_path / f"{v}.json" for v in ("bb", "ell")})
    assert result["AP_r"]["bb"] == pytest.approx(1.0) and result["AP_b"] == pytest.approx(1.0)
    assert result["AP_r"]["ell"] == pytest.approx(0.6)


# --- the workflow ------------------------------------------------------------------------------------

def _dry_run(workdir: Path, *targets: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    repo = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(repo / "config.yaml"), "--workflow-profile", "none",
                           "-n", "--printshellcmds", *targets], capture_output=True, text=True, env=env, cwd=workdir)


def test_workflow_plans_masks_per_method_and_only_where_masks_are_scored(tmp_path):
    result = _dry_run(tmp_path, "results/synth/wsjds/metrics/instance_seg.json",
                      "results/synth/wsddn/metrics/instance_seg.json")
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("Job stats:")[1].split("total")[0]
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    assert jobs["masks_model_shard"] == 2 and jobs["masks_merge"] == 2        # wsjds only: synth has 2 shards
    assert jobs["masks_box_baseline"] == 4 and jobs["masks_export"] == 6 and jobs["instance_seg_metric"] == 2
    assert "--unavailable crf nocrf" in result.stdout                         # wsddn: box baselines only
    refused = _dry_run(tmp_path, "results/synth/wsddn/masks/test.crf.h5")
    assert refused.returncode != 0 and "has no segmentation branch" in refused.stdout + refused.stderr
    voc = _dry_run(tmp_path, "results/voc07/wsjds/metrics/instance_seg.json")
    assert voc.returncode != 0 and "No rule to produce" in voc.stdout + voc.stderr
