"""CorLoc: hand-built cases for both definitions, an independent loop implementation on the sample, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsjds.cli import main
from wsjds.data import VOC_CLASSES, VOCDataset
from wsjds.evaluation import FlatDetections, GroundTruth, evaluate_corloc, load_voc_ground_truth

CLASSES = ("a", "b")
BOX = (10, 10, 50, 50)
NEAR = (12, 10, 52, 50)    # IoU with BOX > 0.5
FAR = (200, 200, 240, 240)


def make_gt(objects, num_images=3):
    return GroundTruth(
        image_ids=tuple(f"i{k}" for k in range(num_images)), classes=CLASSES,
        image_index=np.array([o[0] for o in objects], np.int64),
        boxes=np.array([o[2] for o in objects], np.float32).reshape(-1, 4),
        labels=np.array([o[1] for o in objects], np.int64),
        difficult=np.array([o[3] for o in objects], bool))


def make_dets(gt, dets):
    return FlatDetections.from_lists(gt.image_ids, [d[0] for d in dets], [d[2] for d in dets],
                                     [d[3] for d in dets], [d[1] for d in dets])


def test_top_scoring_detection_decides_and_missing_detections_are_misses():
    gt = make_gt([(0, 0, BOX, False), (1, 0, BOX, False), (2, 0, BOX, False)])
    dets = make_dets(gt, [
        (0, 0, FAR, 0.2), (0, 0, NEAR, 0.9),     # image 0: top is a hit
        (1, 0, FAR, 0.9), (1, 0, BOX, 0.8),      # image 1: top misses although a lower one hits
        (2, 1, BOX, 0.99),                       # image 2: only another class -> miss for "a"
    ])
    result = evaluate_corloc(gt, dets)
    assert result.per_class["a"] == pytest.approx(1 / 3)
    assert result.per_class["b"] is None and result.mean == pytest.approx(1 / 3)
    assert result.details["images_per_class"] == {"a": 3, "b": 0}
    assert result.details["hits_per_class"]["a"] == 1


def test_image_with_only_difficult_instances_is_skipped_by_the_authors_definition():
    gt = make_gt([(0, 0, BOX, False), (1, 0, BOX, True), (1, 0, FAR, True)])
    miss_on_difficult = make_dets(gt, [(0, 0, BOX, 0.9), (1, 0, (300, 300, 330, 330), 0.9)])
    authors = evaluate_corloc(gt, miss_on_difficult, "authors")
    assert authors.details["images_per_class"]["a"] == 1 and authors.per_class["a"] == 1.0
    pcl = evaluate_corloc(gt, miss_on_difficult, "pcl")
    assert pcl.details["images_per_class"]["a"] == 2 and pcl.per_class["a"] == 0.5
    # a hit on a difficult box counts (authors: in an image with a non-difficult instance too)
    gt2 = make_gt([(0, 0, BOX, False), (0, 0, FAR, True)])
    top_on_difficult = make_dets(gt2, [(0, 0, FAR, 0.9), (0, 0, (300, 300, 330, 330), 0.1)])
    assert evaluate_corloc(gt2, top_on_difficult).per_class["a"] == 1.0


def test_iou_threshold_is_strict_and_ties_keep_input_order():
    gt = make_gt([(0, 0, (0, 0, 10, 10), False)], num_images=1)
    half = (0, 0, 10, 5)  # IoU exactly 0.5
    assert evaluate_corloc(gt, make_dets(gt, [(0, 0, half, 0.9)])).per_class["a"] == 0.0
    hit, miss = (0, 0, 10, 10), FAR
    assert evaluate_corloc(gt, make_dets(gt, [(0, 0, hit, 0.5), (0, 0, miss, 0.5)])).per_class["a"] == 1.0
    assert evaluate_corloc(gt, make_dets(gt, [(0, 0, miss, 0.5), (0, 0, hit, 0.5)])).per_class["a"] == 0.0
    with pytest.raises(ValueError, match="definition"):
        evaluate_corloc(gt, make_dets(gt, []), "wetectron")


def reference_corloc(annotations, detections, classes, definition, ovthresh=0.5):
    """Loop transcription of the definitions: per class, per counted image, its top detection."""
    out = {}
    for c, name in enumerate(classes):
        counted = hits = 0
        for image_id, ann in annotations.items():
            mask = ann.labels == c
            if not mask.any():
                continue
            if definition == "authors" and ann.difficult[mask].all():
                continue
            counted += 1
            mine = [d for d in detections if d[0] == image_id and d[1] == c]
            if not mine:
                continue
            top = max(mine, key=lambda d: d[2])  # max() returns the first of equal maxima
            x1, y1, x2, y2 = (float(v) for v in top[3])
            best = 0.0
            for g in ann.boxes[mask].astype(np.float64):
                iw = max(min(x2, g[2]) - max(x1, g[0]), 0.0)
                ih = max(min(y2, g[3]) - max(y1, g[1]), 0.0)
                union = (x2 - x1) * (y2 - y1) + (g[2] - g[0]) * (g[3] - g[1]) - iw * ih
                best = max(best, iw * ih / union)
            hits += best > ovthresh
        out[name] = hits / counted if counted else None
    return out


def sample_detections(dataset, seed, per_image=8):
    rng = np.random.default_rng(seed)
    out = []
    for image_id in dataset.ids:
        ann = dataset.annotation(image_id)
        for _ in range(per_image):
            if len(ann.labels) and rng.random() < 0.6:
                k = rng.integers(len(ann.labels))
                scale = np.tile([ann.boxes[k, 2] - ann.boxes[k, 0], ann.boxes[k, 3] - ann.boxes[k, 1]], 2)
                box = ann.boxes[k] + rng.normal(0, 0.15, 4) * scale
                label = int(ann.labels[k])
            else:
                xy = rng.uniform(0, [ann.width * 0.7, ann.height * 0.7])
                box = np.concatenate([xy, xy + rng.uniform(5, [ann.width * 0.3, ann.height * 0.3])])
                label = int(rng.integers(len(VOC_CLASSES)))
            box = np.clip(box, 0, [ann.width, ann.height, ann.width, ann.height])
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            out.append((image_id, label, round(float(rng.random()), 1), box.astype(np.float32)))
    return out


@pytest.mark.parametrize("definition", ["authors", "pcl"])
def test_matches_independent_implementation_on_voc_sample(voc_sample, definition):
    dataset = VOCDataset(voc_sample, "trainval")
    gt = load_voc_ground_truth(voc_sample, "trainval", VOC_CLASSES)
    index = gt.id_to_index()
    for seed in range(3):
        detections = sample_detections(dataset, seed)
        flat = FlatDetections.from_lists(gt.image_ids, [index[d[0]] for d in detections], [d[3] for d in detections],
                                         [d[2] for d in detections], [d[1] for d in detections])
        expected = reference_corloc(dataset.annotations(), detections, VOC_CLASSES, definition)
        got = evaluate_corloc(gt, flat, definition).per_class
        for name in VOC_CLASSES:
            assert got[name] == (pytest.approx(expected[name], abs=1e-12) if expected[name] is not None else None), name


def test_cli_corloc(voc_sample, tmp_path):
    dataset = VOCDataset(voc_sample, "trainval")
    detections = sample_detections(dataset, 0)
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"image_id": i, "category_id": c, "score": s,
                                 "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
                                for i, c, s, b in detections]))
    for definition in ("authors", "pcl"):
        out = tmp_path / f"{definition}.json"
        assert main(["evaluate", "voc", "--root", str(voc_sample), "--split", "trainval", "--detections", str(path),
                     "--metric", "corloc", "--corloc-definition", definition, "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert result["metric"] == "corloc" and result["definition"] == definition
        expected = reference_corloc(dataset.annotations(), detections, VOC_CLASSES, definition)
        for name, value in result["per_class"].items():
            assert value == (pytest.approx(expected[name], abs=1e-6) if expected[name] is not None else None)
