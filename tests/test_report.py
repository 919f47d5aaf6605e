"""The `snakemake --report` items: per-class precision/recall from the evaluation code."""

from __future__ import annotations

import numpy as np
import pytest

from wsjds.evaluation import FlatDetections, GroundTruth, evaluate_voc_map, precision_recall


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
