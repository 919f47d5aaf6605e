"""The package box convention and its boundary conversions, against hand-computed values."""

import numpy as np
import pytest

from wsjds.boxes import (box_iou, from_matlab_yxyx, from_voc_xml, from_xyxy_inclusive, mask_to_box,
                         to_voc_xml, xywh_to_xyxy, xyxy_to_xywh)


def test_voc_xml_round_trip():
    assert from_voc_xml(48, 240, 195, 371) == (47.0, 239.0, 195.0, 371.0)
    np.testing.assert_array_equal(to_voc_xml(np.array([[47.0, 239.0, 195.0, 371.0]])), [[48, 240, 195, 371]])


def test_matlab_yxyx_and_inclusive_boxes():
    # 1-based (y1, x1, y2, x2) = (10, 20, 50, 80) -> 0-based inclusive (19, 9, 79, 49) -> continuous (19, 9, 80, 50)
    np.testing.assert_array_equal(from_matlab_yxyx(np.array([[10, 20, 50, 80]])), [[19, 9, 80, 50]])
    np.testing.assert_array_equal(from_xyxy_inclusive(np.array([[19, 9, 79, 49]])), [[19, 9, 80, 50]])


def test_coco_round_trip():
    xyxy = np.array([[10.0, 20.0, 30.5, 60.0]], dtype=np.float32)
    np.testing.assert_allclose(xyxy_to_xywh(xyxy), [[10.0, 20.0, 20.5, 40.0]])
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)


def test_continuous_iou_equals_devkit_plus_one_iou():
    # Devkit: boxes (1-based inclusive) [1,1,10,10] and [6,6,15,15]: widths with +1 -> 10x10 each,
    # intersection [6..10] = 5x5 = 25, union 175.
    a = np.array([from_voc_xml(1, 1, 10, 10)])
    b = np.array([from_voc_xml(6, 6, 15, 15)])
    assert box_iou(a, b)[0, 0] == pytest.approx(25 / 175)
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)


def test_iou_of_disjoint_and_degenerate_boxes_is_zero():
    assert box_iou([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0, 0] == 0.0
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0


def test_mask_to_box():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    np.testing.assert_array_equal(mask_to_box(mask), [3, 2, 9, 5])
    assert mask_to_box(np.zeros((4, 4), bool)) is None
