"""Semantic-segmentation mIoU: a hand-computed confusion matrix, void handling, the CLI on the sample."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from wsjds.cli import main
from wsjds.data import VOCDataset
from wsjds.errors import DatasetError
from wsjds.evaluation import confusion_matrix, miou_from_confusion

CLASSES = ("cat", "dog", "bird")  # labels: 0 background, 1 cat, 2 dog, 3 bird


def test_hand_computed_iou_with_void_ignored():
    gt = np.array([[0, 0, 1, 1],
                   [0, 255, 1, 2],
                   [255, 255, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1, 1],
                     [0, 3, 2, 2],
                     [3, 3, 2, 0]], np.uint8)
    conf = confusion_matrix(gt, pred, 4)
    expected = np.zeros((4, 4), np.int64)
    for g, p in [(0, 0), (0, 1), (1, 1), (1, 1), (0, 0), (1, 2), (2, 2), (2, 2), (2, 0)]:
        expected[g, p] += 1
    np.testing.assert_array_equal(conf, expected)
    result = miou_from_confusion(conf, CLASSES)
    # background: TP 2, GT 3, pred 3 -> 2 / 4; cat: TP 2, GT 3, pred 3 -> 2 / 4;
    # dog: TP 2, GT 3, pred 3 -> 2 / 4; bird: never in GT nor (non-void) prediction -> undefined
    assert result.per_class == {"background": 0.5, "cat": 0.5, "dog": 0.5, "bird": None}
    assert result.mean == pytest.approx(0.5)
    assert result.details["pixel_accuracy"] == pytest.approx(6 / 9)
    assert result.details["num_pixels"] == 9


def test_bad_label_maps():
    with pytest.raises(DatasetError, match="predicted labels outside"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8), 4)
    with pytest.raises(DatasetError, match="ground-truth labels outside"):
        confusion_matrix(np.full((2, 2), 9, np.uint8), np.zeros((2, 2), np.uint8), 4)
    with pytest.raises(DatasetError, match="prediction is"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 4)


def test_cli_ground_truth_as_prediction_scores_one_and_background_prediction_does_not(voc_sample, tmp_path):
    dataset = VOCDataset(voc_sample, "test")
    ids = dataset.segmentation_ids()
    perfect, background = tmp_path / "perfect", tmp_path / "background"
    perfect.mkdir(), background.mkdir()
    for image_id in ids:
        shutil.copy(voc_sample / "SegmentationClass" / f"{image_id}.png", perfect / f"{image_id}.png")
        width, height = dataset.image_size(image_id)
        Image.fromarray(np.zeros((height, width), np.uint8), mode="L").save(background / f"{image_id}.png")
    out = tmp_path / "m.json"
    assert main(["evaluate", "segmentation", "--root", str(voc_sample), "--split", "test", "--predictions",
                 str(perfect), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["mean"] == pytest.approx(1.0) and result["num_images"] == len(ids)
    assert all(v is None or v == pytest.approx(1.0) for v in result["per_class"].values())
    assert main(["evaluate", "segmentation", "--root", str(voc_sample), "--split", "test", "--predictions",
                 str(background), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 0 < result["per_class"]["background"] < 1 and result["per_class"]["aeroplane"] in (0.0, None)
    (perfect / f"{ids[0]}.png").unlink()
    assert main(["evaluate", "segmentation", "--root", str(voc_sample), "--split", "test", "--predictions",
                 str(perfect), "--out", str(out)]) == 2
