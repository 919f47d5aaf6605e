"""wsjds.proposals.postprocess: clip, de-duplicate, min side, sort, cap, fallback, validation, id checks."""

from __future__ import annotations

import numpy as np
import pytest

from wsjds.errors import DatasetError
from wsjds.image_ids import check_ids
from wsjds.proposals.postprocess import ProposalPolicy, postprocess, validate_proposals

POLICY = ProposalPolicy(min_side=20, max_per_image=3)


def test_clip_dedup_min_side_sort_cap_by_hand():
    boxes = np.array([
        [-5, 10, 40, 50],     # 0: clipped to [0, 10, 40, 50]
        [0, 10, 40, 50],      # 1: duplicate of 0 after clipping, higher score: this one survives
        [10, 10, 29, 100],    # 2: width 19 < 20 -> dropped
        [10, 10, 30, 200],    # 3: clipped to y2 = 80, width 20 = min side -> kept
        [50, 0, 100, 80],     # 4: kept
        [0, 0, 100, 80],      # 5: kept, but fourth by score -> capped
    ], dtype=np.float32)
    scores = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.2], dtype=np.float32)
    out_boxes, out_scores = postprocess(boxes, scores, 100, 80, POLICY, image_id="x")
    np.testing.assert_array_equal(out_boxes, [[50, 0, 100, 80], [0, 10, 40, 50], [10, 10, 30, 80]])
    np.testing.assert_array_equal(out_scores, np.array([0.7, 0.5, 0.3], np.float32))
    assert out_boxes.dtype == np.float32 and out_scores.dtype == np.float32


def test_equal_scores_keep_source_order():
    boxes = np.array([[0, 0, 30, 30], [5, 5, 40, 40], [0, 0, 30, 30], [1, 1, 50, 50]], dtype=np.float32)
    out, scores = postprocess(boxes, None, 60, 60, ProposalPolicy(min_side=1, max_per_image=10), image_id="x")
    np.testing.assert_array_equal(out, [[0, 0, 30, 30], [5, 5, 40, 40], [1, 1, 50, 50]])
    np.testing.assert_array_equal(scores, [0, 0, 0])


def test_empty_result_is_an_error_naming_the_image_unless_fallback():
    tiny = np.array([[0, 0, 5, 5], [10, 10, 12, 40]], dtype=np.float32)
    with pytest.raises(DatasetError, match=r"image id '000042', file 'props\.mat': no proposal left .*"
                                           r"2 in the source.*both sides >= 20"):
        postprocess(tiny, None, 64, 48, POLICY, image_id="000042", path="props.mat")
    boxes, scores = postprocess(tiny, None, 64, 48, ProposalPolicy(20, 3, whole_image_fallback=True), image_id="1")
    np.testing.assert_array_equal(boxes, [[0, 0, 64, 48]])
    np.testing.assert_array_equal(scores, [0])
    boxes, _ = postprocess(np.zeros((0, 4)), None, 64, 48, ProposalPolicy(20, 3, True), image_id="1")
    np.testing.assert_array_equal(boxes, [[0, 0, 64, 48]])


def test_boxes_outside_the_image_collapse_and_are_dropped():
    boxes = np.array([[200, 0, 300, 50], [0, 0, 50, 50]], dtype=np.float32)  # the first lies right of the image
    out, _ = postprocess(boxes, None, 100, 100, ProposalPolicy(min_side=0, max_per_image=5), image_id="x")
    np.testing.assert_array_equal(out, [[0, 0, 50, 50]])


def test_non_finite_values_are_rejected():
    with pytest.raises(DatasetError, match=r"image id 'q'.*NaN or infinite.*row 1"):
        postprocess(np.array([[0, 0, 30, 30], [0, np.nan, 30, 30]]), None, 50, 50, POLICY, image_id="q")
    with pytest.raises(DatasetError, match="2 boxes but 1 scores"):
        postprocess(np.zeros((2, 4)), np.zeros(1), 50, 50, POLICY, image_id="q")


def test_validate_proposals():
    good = np.array([[0, 0, 10, 10]], np.float32)
    validate_proposals(good, np.zeros(1, np.float32), 10, 10, max_per_image=1, image_id="a")
    cases = [
        (np.array([[0, 0, 11, 10]], np.float32), "outside the 10x10 image"),
        (np.array([[5, 0, 5, 10]], np.float32), "x2 <= x1 or y2 <= y1"),
        (np.zeros((0, 4), np.float32), "0 proposals, expected between 1 and 1"),
        (np.array([[0, 0, 1, 1], [0, 0, 2, 2]], np.float32), "2 proposals"),
        (good.astype(np.float64), "expected float32"),
    ]
    for boxes, message in cases:
        with pytest.raises(DatasetError, match=rf"image id 'a', file 's\.h5'.*{message}"):
            validate_proposals(boxes, np.zeros(len(boxes), np.float32), 10, 10, max_per_image=1,
                               image_id="a", path="s.h5")


def test_check_ids_names_missing_unexpected_and_duplicated():
    check_ids(["b", "a"], ["a", "b"], path="f.pkl", split="trainval")
    with pytest.raises(DatasetError) as info:
        check_ids(["000005", "000007", "000007", "999999"], ["000005", "000007", "000009"], path="f.pkl",
                  split="trainval")
    message = str(info.value)
    assert "file 'f.pkl'" in message and "split 'trainval'" in message
    assert "missing: ['000009']" in message
    assert "not in the split: ['999999']" in message
    assert "duplicated: ['000007']" in message
    many = [f"{i:06d}" for i in range(25)]
    with pytest.raises(DatasetError, match=r"missing: \['000000'.*'000009'\] and 15 more \(25\)"):
        check_ids([], many, path=None, split="test")


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        ProposalPolicy(min_side=-1, max_per_image=5)
    with pytest.raises(ValueError):
        ProposalPolicy(min_side=1, max_per_image=0)
