"""COCO AP^b / AP^r through pycocotools: ground truth fed back scores 1.0; input forms; CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsjds.cli import main
from wsjds.data.coco import COCODataset
from wsjds.errors import ArtifactError
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.artifacts.detections import DetectionWriter
from wsjds.evaluation import FlatDetections
from wsjds.evaluation.coco import COCO_STAT_NAMES, evaluate_coco, read_coco_detections


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco") / "synth"
    generate_dataset(root, SynthConfig(num_trainval=2, num_test=6, min_side=160, max_side=180))
    return root


@pytest.fixture(scope="module")
def annotations(synth):
    return synth / "annotations" / "instances_test.json"


def ground_truth_results(annotation_file, package_form=False):
    """Every non-crowd ground-truth object as a detection with score 1 (box and RLE mask)."""
    data = json.loads(annotation_file.read_text())
    cats = sorted(c["id"] for c in data["categories"])
    out = []
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        entry = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": ann["bbox"],
                 "segmentation": ann["segmentation"], "score": 1.0}
        if package_form:
            entry.update(image_id=str(ann["image_id"]), category_id=cats.index(ann["category_id"]))
        out.append(entry)
    return out


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("package_form", [False, True])
def test_ground_truth_fed_back_scores_one(annotations, tmp_path, iou_type, package_form):
    path = tmp_path / "gt_as_dets.json"
    path.write_text(json.dumps(ground_truth_results(annotations, package_form)))
    dataset = COCODataset(annotations)
    dets, masks = read_coco_detections(path, dataset)
    result = evaluate_coco(dataset, dets, iou_type, masks)
    stats = result.details["stats"]
    assert list(stats) == list(COCO_STAT_NAMES)
    assert stats["AP"] == pytest.approx(1.0) and stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == pytest.approx(1.0) and stats["AR100"] == pytest.approx(1.0)
    assert result.mean == pytest.approx(1.0)
    assert all(v is None or v == pytest.approx(1.0) for v in result.per_class.values())
    assert any(v is not None for v in result.per_class.values())


def test_wrong_boxes_lose_ap_and_undefined_stats_are_none(annotations):
    dataset = COCODataset(annotations)
    entries = ground_truth_results(annotations, package_form=True)
    index = {image_id: i for i, image_id in enumerate(dataset.ids)}
    boxes = np.array([e["bbox"] for e in entries], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 2:] = boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]) / 4  # a corner: IoU 1/16 with its object
    dets = FlatDetections.from_lists(dataset.ids, [index[e["image_id"]] for e in entries], boxes,
                                     [1.0] * len(entries), [e["category_id"] for e in entries])
    result = evaluate_coco(dataset, dets, "bbox")
    assert result.details["stats"]["AP50"] == pytest.approx(0.0)
    assert all(v is None or 0 <= v <= 1 for v in result.details["stats"].values())
    empty = evaluate_coco(dataset, FlatDetections.empty(dataset.ids), "bbox")
    assert empty.mean == 0.0


def test_hdf5_detections_and_cli(annotations, tmp_path):
    dataset = COCODataset(annotations)
    entries = ground_truth_results(annotations, package_form=True)
    h5 = tmp_path / "d.h5"
    with DetectionWriter(h5, dataset="synth", split="test", classes=dataset.classes, source="t",
                         parameters={}) as writer:
        for image_id in dataset.ids:
            mine = [e for e in entries if e["image_id"] == image_id]
            xywh = np.array([e["bbox"] for e in mine], np.float64).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            writer.append(image_id, *dataset.image_size(image_id), xyxy, [1.0] * len(mine),
                          [e["category_id"] for e in mine])
    out = tmp_path / "m.json"
    assert main(["evaluate", "coco", "--annotations", str(annotations), "--detections", str(h5),
                 "--iou-type", "bbox", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["metric"] == "coco_bbox" and result["stats"]["AP"] == pytest.approx(1.0)
    # masks are needed for segm; an HDF5 of boxes has none
    assert main(["evaluate", "coco", "--annotations", str(annotations), "--detections", str(h5),
                 "--iou-type", "segm", "--out", str(tmp_path / "s.json")]) == 2


def test_bad_coco_results(annotations, tmp_path):
    dataset = COCODataset(annotations)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"image_id": 424242, "category_id": 1, "bbox": [0, 0, 2, 2], "score": 1.0}]))
    with pytest.raises(ArtifactError, match="'424242'"):
        read_coco_detections(path, dataset)
    path.write_text(json.dumps([{"image_id": int(dataset.ids[0]), "category_id": 999, "bbox": [0, 0, 2, 2],
                                 "score": 1.0}]))
    with pytest.raises(ArtifactError, match="category_id 999"):
        read_coco_detections(path, dataset)
