"""VOC AP: hand-built devkit cases, an independent loop implementation on the real sample, readers, CLI, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from wsjds.boxes import xyxy_to_xywh
from wsjds.cli import main
from wsjds.data import VOC_CLASSES, VOCDataset
from wsjds.errors import ArtifactError
from wsjds.artifacts.detections import DetectionWriter, ProposalScoresWriter, to_voc_comp4, DetectionStore
from wsjds.evaluation import (FlatDetections, GroundTruth, average_precision, evaluate_voc_map,
                              load_voc_ground_truth, match_detections, read_detections)
from wsjds.evaluation import ground_truth as ground_truth_module

CLASSES = ("a", "b", "c")


def make_gt(objects, image_ids=("img0", "img1")):
    """objects: (image index, label, box, difficult)."""
    return GroundTruth(
        image_ids=tuple(image_ids), classes=CLASSES,
        image_index=np.array([o[0] for o in objects], np.int64),
        boxes=np.array([o[2] for o in objects], np.float32).reshape(-1, 4),
        labels=np.array([o[1] for o in objects], np.int64),
        difficult=np.array([o[3] for o in objects], bool))


def make_dets(gt, dets):
    """dets: (image index, label, box, score)."""
    return FlatDetections.from_lists(gt.image_ids, [d[0] for d in dets], [d[2] for d in dets],
                                     [d[3] for d in dets], [d[1] for d in dets])


BOX_A = (10, 10, 50, 50)
BOX_B = (100, 100, 150, 140)
FAR = (300, 300, 320, 320)


# --- hand-built devkit cases ---------------------------------------------------------------------

def test_detection_on_difficult_object_is_neither_tp_nor_fp():
    gt = make_gt([(0, 0, BOX_A, False), (0, 0, BOX_B, True)])
    with_difficult_hit = make_dets(gt, [(0, 0, BOX_B, 0.9), (0, 0, BOX_B, 0.85), (0, 0, BOX_A, 0.8)])
    tp, fp, order = match_detections(gt, with_difficult_hit)
    assert order.tolist() == [0, 1, 2]
    assert tp.tolist() == [False, False, True] and fp.tolist() == [False, False, False]
    for use07 in (True, False):
        result = evaluate_voc_map(gt, with_difficult_hit, use07)
        assert result.per_class["a"] == pytest.approx(1.0)
        assert result.details["num_positives"]["a"] == 1  # npos counts non-difficult boxes only
        alone = evaluate_voc_map(gt, make_dets(gt, [(0, 0, BOX_A, 0.8)]), use07)
        assert alone.per_class["a"] == result.per_class["a"]
    # the same box not difficult: now a real positive, and the detections count
    plain = make_gt([(0, 0, BOX_A, False), (0, 0, BOX_B, False)])
    tp, fp, _ = match_detections(plain, make_dets(plain, [(0, 0, BOX_B, 0.9), (0, 0, BOX_B, 0.85), (0, 0, BOX_A, 0.8)]))
    assert tp.tolist() == [True, False, True] and fp.tolist() == [False, True, False]


def test_duplicate_detection_is_a_false_positive():
    gt = make_gt([(0, 0, BOX_A, False)])
    shifted = (12, 11, 52, 50)  # IoU with BOX_A > 0.5
    dets = make_dets(gt, [(0, 0, BOX_A, 0.9), (0, 0, shifted, 0.8)])
    tp, fp, _ = match_detections(gt, dets)
    assert tp.tolist() == [True, False] and fp.tolist() == [False, True]
    # a later true positive of another object after the duplicate lowers precision at that recall
    gt2 = make_gt([(0, 0, BOX_A, False), (1, 0, BOX_A, False)])
    dets2 = make_dets(gt2, [(0, 0, BOX_A, 0.9), (0, 0, shifted, 0.8), (1, 0, BOX_A, 0.7)])
    result = evaluate_voc_map(gt2, dets2, use_07_metric=False)
    assert result.per_class["a"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_iou_must_exceed_the_threshold_and_class_and_image_must_match():
    gt = make_gt([(0, 0, (0, 0, 10, 10), False)])
    half = (0, 0, 10, 5)  # IoU exactly 0.5: not a match (devkit: ovmax > 0.5)
    tp, fp, _ = match_detections(gt, make_dets(gt, [(0, 0, half, 0.9), (0, 1, (0, 0, 10, 10), 0.8),
                                                    (1, 0, (0, 0, 10, 10), 0.7)]))
    assert not tp.any() and fp.all()


def test_external_json_boxes_are_matched_in_float64_as_the_devkit_does(tmp_path):
    gt = make_gt([(0, 0, (0, 0, 100, 100), False), (1, 0, (0, 0, 100, 100), False)])
    # IoU 0.5 + 1e-8 on img0 (a match) and 0.5 - 1e-8 on img1 (none). In float32 both heights round
    # to 50.0, IoU exactly 0.5, neither matches.
    entries = [{"image_id": "img0", "category_id": 0, "bbox": [0, 0, 100, 50.000001], "score": 0.9},
               {"image_id": "img1", "category_id": 0, "bbox": [0, 0, 100, 49.999999], "score": 0.8}]
    assert np.float32(50.000001) == np.float32(49.999999) == 50.0
    path = tmp_path / "external.json"
    path.write_text(json.dumps(entries))
    dets = read_detections(path, gt.image_ids, CLASSES)
    tp, fp, order = match_detections(gt, dets)
    assert tp[order == 0].all() and fp[order == 1].all()
    # recall 0.5 at precision 1: the 11-point AP counts 6 points of 11 (recall 0, 0.1, ..., 0.5)
    assert evaluate_voc_map(gt, dets, True).per_class["a"] == pytest.approx(6 / 11, abs=1e-12)


def test_07_and_10_metrics_on_a_known_precision_recall_curve():
    # 4 positives in 4 images; ranked detections: TP FP TP FP FP TP
    # recall 1/4 1/4 2/4 2/4 2/4 3/4, precision 1 1/2 2/3 1/2 2/5 1/2
    gt = make_gt([(i, 0, BOX_A, False) for i in range(4)], image_ids=[f"i{i}" for i in range(4)])
    dets = make_dets(gt, [(0, 0, BOX_A, 0.9), (0, 0, FAR, 0.8), (1, 0, BOX_A, 0.7), (1, 0, FAR, 0.6),
                          (2, 0, FAR, 0.5), (2, 0, BOX_A, 0.4)])
    # 11-point: t = 0, .1, .2 -> 1; t = .3, .4, .5 -> 2/3; t = .6, .7 -> 1/2; t = .8, .9, 1 -> 0
    assert evaluate_voc_map(gt, dets, True).per_class["a"] == pytest.approx(6 / 11, abs=1e-12)
    # area: 1/4 * 1 + 1/4 * 2/3 + 1/4 * 1/2 (envelope), 0 beyond recall 3/4
    assert evaluate_voc_map(gt, dets, False).per_class["a"] == pytest.approx(13 / 24, abs=1e-12)
    recall = np.array([1, 1, 2, 2, 2, 3]) / 4
    precision = np.array([1, 1 / 2, 2 / 3, 1 / 2, 2 / 5, 1 / 2])
    assert average_precision(recall, precision, True) == pytest.approx(6 / 11, abs=1e-12)
    assert average_precision(recall, precision, False) == pytest.approx(13 / 24, abs=1e-12)
    assert average_precision(np.zeros(0), np.zeros(0), True) == 0.0
    assert average_precision(np.zeros(0), np.zeros(0), False) == 0.0


def test_class_without_positives_is_none_and_left_out_of_the_mean():
    gt = make_gt([(0, 0, BOX_A, False), (0, 1, BOX_B, True)])  # b only difficult, c absent
    result = evaluate_voc_map(gt, make_dets(gt, [(0, 0, BOX_A, 0.9), (0, 2, FAR, 0.5)]), True)
    assert result.per_class == {"a": 1.0, "b": None, "c": None}
    assert result.mean == 1.0
    assert result.details["classes_without_ground_truth"] == ["b", "c"]
    payload = result.to_json()
    assert json.loads(json.dumps(payload))["per_class"]["b"] is None
    empty = evaluate_voc_map(make_gt([]), FlatDetections.empty(("img0", "img1")), True)
    assert empty.mean is None


def test_equal_scores_keep_input_order():
    gt = make_gt([(0, 0, (0, 0, 10, 10), False)])
    worse, better = (0, 0, 10, 7), (0, 0, 10, 9.5)  # IoU 0.7 and 0.95: both match the same box
    tp, _, order = match_detections(gt, make_dets(gt, [(0, 0, worse, 0.5), (0, 0, better, 0.5)]))
    assert order.tolist() == [0, 1] and tp.tolist() == [True, False]
    tp, _, order = match_detections(gt, make_dets(gt, [(0, 0, better, 0.5), (0, 0, worse, 0.5)]))
    assert order.tolist() == [0, 1] and tp.tolist() == [True, False]


def test_argmax_takes_the_best_box_even_if_already_matched():
    # devkit: the detection is compared with its *best* box only; if that one is taken it is a FP even
    # when another unmatched box overlaps > 0.5
    big, inner = (0, 0, 100, 100), (0, 0, 100, 80)  # IoU 0.8
    gt = make_gt([(0, 0, big, False), (0, 0, inner, False)])
    tp, fp, _ = match_detections(gt, make_dets(gt, [(0, 0, big, 0.9), (0, 0, (0, 0, 100, 98), 0.8)]))
    assert tp.tolist() == [True, False] and fp.tolist() == [False, True]


# --- independent reference on the real sample ------------------------------------------------------

def reference_voc_ap(annotations, detections, classes, use_07_metric, ovthresh=0.5):
    """Straight transcription of the devkit definition: per class, loop over ranked detections.

    annotations: {image_id: Annotation}; detections: list of (image_id, label, score, box xyxy package).
    Boxes are converted to the devkit's 1-based inclusive pixels and overlaps use its "+1" areas.
    """
    aps = {}
    for c, name in enumerate(classes):
        recs, npos = {}, 0
        for image_id, ann in annotations.items():
            keep = ann.labels == c
            bbgt = [(b[0] + 1, b[1] + 1, b[2], b[3]) for b in ann.boxes[keep].astype(np.float64)]
            diff = [bool(d) for d in ann.difficult[keep]]
            recs[image_id] = {"bbox": bbgt, "difficult": diff, "det": [False] * len(bbgt)}
            npos += sum(1 for d in diff if not d)
        mine = sorted([d for d in detections if d[1] == c], key=lambda d: -d[2])  # sorted() is stable
        tp, fp = [], []
        for image_id, _, _, box in mine:
            r = recs[image_id]
            bb = (float(box[0]) + 1, float(box[1]) + 1, float(box[2]), float(box[3]))
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(r["bbox"]):
                iw = max(min(g[2], bb[2]) - max(g[0], bb[0]) + 1.0, 0.0)
                ih = max(min(g[3], bb[3]) - max(g[1], bb[1]) + 1.0, 0.0)
                inter = iw * ih
                union = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                         + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0) - inter)
                ov = inter / union
                if ov > ovmax:
                    ovmax, jmax = ov, j
            if ovmax > ovthresh:
                if r["difficult"][jmax]:
                    tp.append(0), fp.append(0)
                elif not r["det"][jmax]:
                    r["det"][jmax] = True
                    tp.append(1), fp.append(0)
                else:
                    tp.append(0), fp.append(1)
            else:
                tp.append(0), fp.append(1)
        if npos == 0:
            aps[name] = None
            continue
        tp_c, fp_c = np.cumsum(tp, dtype=float), np.cumsum(fp, dtype=float)
        rec = tp_c / npos
        prec = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
        if use_07_metric:
            ap = 0.0
            for t in np.arange(0.0, 1.1, 0.1):
                p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
                ap += p / 11.0
        else:
            mrec = [0.0, *rec, 1.0]
            mpre = [0.0, *prec, 0.0]
            for i in range(len(mpre) - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            ap = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
        aps[name] = ap
    return aps


def random_sample_detections(dataset, seed, per_image=30):
    """Random boxes, jittered ground truth (difficult included), exact duplicates and tied scores."""
    rng = np.random.default_rng(seed)
    out = []
    for image_id in dataset.ids:
        ann = dataset.annotation(image_id)
        for _ in range(per_image):
            if len(ann.labels) and rng.random() < 0.5:
                k = rng.integers(len(ann.labels))
                box = ann.boxes[k].astype(np.float64) + rng.normal(0, 0.08, 4) * np.tile(
                    [ann.boxes[k, 2] - ann.boxes[k, 0], ann.boxes[k, 3] - ann.boxes[k, 1]], 2)
                label = int(ann.labels[k]) if rng.random() < 0.9 else int(rng.integers(len(VOC_CLASSES)))
            else:
                xy = rng.uniform(0, [ann.width * 0.8, ann.height * 0.8])
                box = np.concatenate([xy, xy + rng.uniform(5, [ann.width * 0.6, ann.height * 0.6])])
                label = int(rng.integers(len(VOC_CLASSES)))
            box = np.clip(box, 0, [ann.width, ann.height, ann.width, ann.height])
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            score = round(float(rng.random()), 2)  # two decimals: plenty of ties
            out.append((image_id, label, score, box.astype(np.float32)))
            if rng.random() < 0.05:
                out.append((image_id, label, round(score * 0.9, 2), box.astype(np.float32)))  # exact duplicate
    return out


def to_flat(gt, detections):
    index = gt.id_to_index()
    return FlatDetections.from_lists(gt.image_ids, [index[d[0]] for d in detections], [d[3] for d in detections],
                                     [d[2] for d in detections], [d[1] for d in detections])


@pytest.mark.parametrize("split", ["test", "trainval"])
@pytest.mark.parametrize("use07", [True, False])
def test_matches_independent_devkit_implementation_on_voc_sample(voc_sample, split, use07):
    dataset = VOCDataset(voc_sample, split)
    gt = load_voc_ground_truth(voc_sample, split, VOC_CLASSES)
    for seed in range(3):
        detections = random_sample_detections(dataset, seed)
        expected = reference_voc_ap(dataset.annotations(), detections, VOC_CLASSES, use07)
        got = evaluate_voc_map(gt, to_flat(gt, detections), use07).per_class
        assert set(got) == set(expected)
        for name in VOC_CLASSES:
            if expected[name] is None:
                assert got[name] is None, name
            else:
                assert got[name] == pytest.approx(expected[name], abs=1e-9, rel=0), (seed, name)
        assert 0.05 < np.mean([v for v in got.values() if v is not None]) < 0.95  # a non-trivial case


# --- readers, cache and command line --------------------------------------------------------------

def write_store(path, gt, flat, sizes=None, classes=None, dataset="voc07", split="test"):
    with DetectionWriter(path, dataset=dataset, split=split, classes=classes or gt.classes, source="test",
                         parameters={}) as writer:
        for i, image_id in enumerate(gt.image_ids):
            rows = flat.image_index == i
            width, height = (500, 500) if sizes is None else sizes[image_id]
            writer.append(image_id, width, height, flat.boxes[rows], flat.scores[rows], flat.labels[rows])


def write_json_dets(path, gt, flat):
    entries = [{"image_id": gt.image_ids[i], "category_id": c, "bbox": b, "score": s}
               for i, c, b, s in zip(flat.image_index.tolist(), flat.labels.tolist(),
                                     xyxy_to_xywh(flat.boxes).tolist(), flat.scores.tolist())]
    path.write_text(json.dumps(entries))
    return entries


def test_hdf5_json_and_comp4_inputs_give_the_same_ap(voc_sample, tmp_path):
    dataset = VOCDataset(voc_sample, "test")
    gt = load_voc_ground_truth(voc_sample, "test", VOC_CLASSES)
    detections = [(i, l, s, np.round(b * 4) / 4) for i, l, s, b in random_sample_detections(dataset, 7, 10)]
    flat = to_flat(gt, detections)
    sizes = {i: dataset.image_size(i) for i in dataset.ids}
    write_store(tmp_path / "d.h5", gt, flat, sizes)
    write_json_dets(tmp_path / "d.json", gt, flat)
    with DetectionStore.open(tmp_path / "d.h5") as store:
        to_voc_comp4(store, tmp_path / "comp4")
    direct = evaluate_voc_map(gt, flat, True).per_class
    for source in (tmp_path / "d.h5", tmp_path / "d.json", tmp_path / "comp4"):
        got = evaluate_voc_map(gt, read_detections(source, gt.image_ids, VOC_CLASSES, split="test"), True).per_class
        for name in VOC_CLASSES:
            if direct[name] is None:
                assert got[name] is None
            else:
                assert got[name] == pytest.approx(direct[name], abs=1e-12)


def test_cli_map_and_year_inference(voc_sample, tmp_path):
    dataset = VOCDataset(voc_sample, "test")
    gt = load_voc_ground_truth(voc_sample, "test", VOC_CLASSES)
    flat = to_flat(gt, random_sample_detections(dataset, 3, 10))
    write_json_dets(tmp_path / "d.json", gt, flat)
    out = tmp_path / "m.json"
    assert main(["evaluate", "voc", "--root", str(voc_sample), "--split", "test", "--detections",
                 str(tmp_path / "d.json"), "--metric", "map", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["use_07_metric"] is True  # VOC2007 in the root's name
    assert set(result["per_class"]) == set(VOC_CLASSES)
    assert all(v is None or 0 <= v <= 1 for v in result["per_class"].values())
    assert result["mean"] == pytest.approx(evaluate_voc_map(gt, flat, True).mean, abs=1e-12)
    assert main(["evaluate", "voc", "--root", str(voc_sample), "--split", "test", "--detections",
                 str(tmp_path / "d.json"), "--metric", "map", "--no-use07", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mean"] == pytest.approx(evaluate_voc_map(gt, flat, False).mean, abs=1e-12)


def test_cli_needs_metric_year_when_root_has_none(tmp_path, voc_sample):
    root = tmp_path / "mydata"
    shutil.copytree(voc_sample / "Annotations", root / "Annotations")
    shutil.copytree(voc_sample / "ImageSets", root / "ImageSets")
    (tmp_path / "d.json").write_text("[]")
    args = ["evaluate", "voc", "--root", str(root), "--split", "test", "--detections", str(tmp_path / "d.json"),
            "--metric", "map", "--out", str(tmp_path / "m.json")]
    assert main(args) == 2 and not (tmp_path / "m.json").exists()
    assert main(args + ["--use07"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["mean"] == 0.0


def test_ground_truth_cache_is_keyed_by_content(voc_sample, tmp_path, monkeypatch):
    root = tmp_path / "VOC2007"
    shutil.copytree(voc_sample / "Annotations", root / "Annotations")
    shutil.copytree(voc_sample / "ImageSets", root / "ImageSets")
    cache = tmp_path / "cache"
    monkeypatch.setattr(ground_truth_module, "_MEMORY_CACHE", {})
    first = load_voc_ground_truth(root, "test", VOC_CLASSES, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    monkeypatch.setattr(ground_truth_module, "_MEMORY_CACHE", {})
    parsed = []
    original = VOCDataset.annotations
    monkeypatch.setattr(VOCDataset, "annotations", lambda self: parsed.append(1) or original(self))
    again = load_voc_ground_truth(root, "test", VOC_CLASSES, cache_dir=cache)
    assert parsed == []  # served from the disk cache
    np.testing.assert_array_equal(first.boxes, again.boxes)
    np.testing.assert_array_equal(first.difficult, again.difficult)
    # edit one XML: a new key, parsed again, the edit visible
    image_id = again.image_ids[0]
    xml = root / "Annotations" / f"{image_id}.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1))
    edited = load_voc_ground_truth(root, "test", VOC_CLASSES, cache_dir=cache)
    assert parsed == [1] and len(list(cache.glob("*.npz"))) == 2
    assert edited.difficult.sum() == first.difficult.sum() + 1


def test_evaluation_does_not_import_the_model():
    code = ("import sys, wsjds.evaluation, wsjds.evaluation.coco, wsjds.commands.evaluate, wsjds.stages.pseudo_gt, "
            "wsjds.commands.pseudo_gt; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- bad input -------------------------------------------------------------------------------------

def _entry(**overrides):
    entry = {"image_id": "img0", "category_id": 1, "bbox": [1.0, 2.0, 10.0, 10.0], "score": 0.5}
    entry.update(overrides)
    return entry


@pytest.mark.parametrize("entry, needle", [
    (_entry(image_id="nope"), "'nope'"),
    (_entry(image_id=5), "must be a string"),
    (_entry(category_id=3), "category_id"),
    (_entry(category_id=-1), "category_id"),
    (_entry(category_id=1.0), "category_id"),
    (_entry(bbox=[1, 2, 3]), "malformed bbox"),
    (_entry(bbox=[1, 2, -3, 4]), "malformed bbox"),
    (_entry(bbox="1 2 3 4"), "malformed bbox"),
    (_entry(score="high"), "score"),
    (_entry(score=float("nan")), "score"),
    ({"image_id": "img1", "bbox": [0, 0, 1, 1], "score": 1}, "missing keys"),
])
def test_bad_json_entries_name_the_file_and_the_id(tmp_path, entry, needle):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([_entry(), entry]))
    with pytest.raises(ArtifactError) as info:
        read_detections(path, ("img0", "img1"), CLASSES)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_bad_hdf5_inputs(tmp_path):
    gt = make_gt([(0, 0, BOX_A, False)])
    flat = make_dets(gt, [(0, 0, BOX_A, 0.9)])
    write_store(tmp_path / "ok.h5", gt, flat)
    with pytest.raises(ArtifactError, match="'img1'.*not in the split"):
        read_detections(tmp_path / "ok.h5", ("img0",), CLASSES)
    with pytest.raises(ArtifactError, match="classes"):
        read_detections(tmp_path / "ok.h5", gt.image_ids, ("x", "y", "z"))
    with ProposalScoresWriter(tmp_path / "scores.h5", dataset="d", split="s", classes=CLASSES, source="t",
                              parameters={}) as writer:
        writer.append("img0", 10, 10, np.zeros((1, 4)), np.zeros((1, 3)))
    with pytest.raises(ArtifactError, match="format is 'wsjds.proposal_scores' but expected 'wsjds.detections'"):
        read_detections(tmp_path / "scores.h5", gt.image_ids, CLASSES)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ArtifactError, match="junk.h5"):
        read_detections(tmp_path / "junk.h5", gt.image_ids, CLASSES)
    with pytest.raises(ArtifactError, match="does not exist"):
        read_detections(tmp_path / "missing.json", gt.image_ids, CLASSES)


def test_cli_reports_bad_input_with_exit_code_2(voc_sample, tmp_path, caplog):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"image_id": "999999", "category_id": 0, "bbox": [0, 0, 5, 5], "score": 1.0}]))
    assert main(["evaluate", "voc", "--root", str(voc_sample), "--split", "test", "--detections", str(path),
                 "--metric", "map", "--out", str(tmp_path / "m.json")]) == 2
    assert "'999999'" in caplog.text and str(path) in caplog.text
    assert not (tmp_path / "m.json").exists()


def test_cli_reads_kind_and_metric_of_a_synthetic_root_from_its_dataset_json(tmp_path):
    from wsjds.data.classes import SYNTH_CLASSES
    from wsjds.data.synthetic import SynthConfig, generate_dataset

    root = tmp_path / "synth"
    generate_dataset(root, SynthConfig(num_trainval=1, num_test=4, min_side=64, max_side=80))
    dataset = VOCDataset(root, "test", SYNTH_CLASSES)
    entries = []
    for image_id in dataset.ids:        # every object found, a miss ranked between the first and the others
        ann = dataset.annotation(image_id)
        entries += [{"image_id": image_id, "category_id": int(label), "bbox": xyxy_to_xywh(box[None])[0].tolist(),
                     "score": 0.9 if k == 0 else 0.4} for k, (box, label) in enumerate(zip(ann.boxes, ann.labels))]
        entries += [{"image_id": image_id, "category_id": int(label), "bbox": [0, 0, 2, 2], "score": 0.7}
                    for label in set(ann.labels.tolist())]
    (tmp_path / "d.json").write_text(json.dumps(entries))

    def evaluate(*flags):
        out = tmp_path / f"m{len(flags)}{''.join(flags)}.json"
        assert main(["evaluate", "voc", "--root", str(root), "--split", "test", "--detections",
                     str(tmp_path / "d.json"), "--metric", "map", *flags, "--out", str(out)]) == 0
        return json.loads(out.read_text())

    inferred, explicit = evaluate(), evaluate("--kind", "synthetic", "--no-use07")
    assert inferred["classes"] == list(SYNTH_CLASSES) and inferred["mean"] == explicit["mean"]
    assert inferred["per_class"] == explicit["per_class"]
    assert evaluate("--kind", "synthetic", "--use07")["mean"] != inferred["mean"]    # the area AP was chosen
