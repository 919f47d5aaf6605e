"""Failure modes of the top box per (image, class): hand-built boxes for each bin, the counting rules, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsjds.cli import main
from test_evaluation_corloc import make_dets, make_gt   # the hand-built ground truth of the CorLoc tests
from wsjds.evaluation import evaluate_corloc
from wsjds.evaluation.failure_modes import OUTCOMES, classify, evaluate_failure_modes

LEFT, RIGHT = (0, 0, 40, 40), (50, 0, 90, 40)        # two instances side by side
BOTH = (0, 0, 90, 40)                                  # around both: IoU with each 1600 / 3600 = 0.44
HEAD = (0, 0, 15, 15)                                  # 225 px, all inside LEFT: IoU 225 / 1600 = 0.14
ASIDE = (200, 200, 240, 240)


@pytest.mark.parametrize("box, expected", [
    ((2, 0, 42, 40), "correct"),     # IoU 1520 / 1680 = 0.90
    (BOTH, "merged"),                # covers all of LEFT and RIGHT
    (HEAD, "part"),
    (ASIDE, "other"),
])
def test_each_bin_by_hand(box, expected):
    instances = np.array([LEFT, RIGHT], np.float64)
    assert classify(np.array(box), instances, 0.5, 0.7, 0.8) == expected


def test_cover_threshold_decides_merged():
    # (0, 0, 80, 40): IoU with LEFT 1600 / 3200 = 0.5 (not > 0.5); LEFT all inside, RIGHT 1200 / 1600 = 0.75
    instances = np.array([LEFT, RIGHT], np.float64)
    assert classify(np.array((0, 0, 80, 40)), instances, 0.5, 0.75, 0.8) == "merged"
    # 0.76: only LEFT is covered; the box is half inside LEFT, so not a part either
    assert classify(np.array((0, 0, 80, 40)), instances, 0.5, 0.76, 0.8) == "other"


def test_part_needs_most_of_the_box_inside_one_instance():
    instances = np.array([LEFT], np.float64)
    assert classify(np.array((0, 0, 20, 20)), instances, 0.5, 0.7, 0.8) == "part"
    assert classify(np.array((30, 30, 50, 50)), instances, 0.5, 0.7, 0.8) == "other"   # 100 / 400 inside


def test_fractions_counts_and_the_multi_instance_rate():
    gt = make_gt([(0, 0, LEFT, False), (0, 0, RIGHT, False),     # image 0: two a's
                  (1, 0, LEFT, False),                           # image 1: one a
                  (2, 0, LEFT, True),                            # image 2: only a difficult a: not counted
                  (3, 1, LEFT, False)], num_images=4)            # image 3: one b, no detection of it
    dets = make_dets(gt, [
        (0, 0, (2, 0, 42, 40), 0.3), (0, 0, BOTH, 0.9),          # top of image 0 is the merged box
        (1, 0, HEAD, 0.8), (1, 0, LEFT, 0.1),                    # top of image 1 is the head
        (2, 0, ASIDE, 0.9),
        (3, 0, ASIDE, 0.9),                                      # a class the image does not have
    ])
    result = evaluate_failure_modes(gt, dets, 0.5, 0.7, 0.8)
    assert result.details["pairs"] == 3
    assert result.details["counts"] == {"correct": 0, "merged": 1, "part": 1, "other": 0, "missed": 1}
    assert result.details["fractions"]["merged"] == pytest.approx(1 / 3)
    assert result.details["multi_instance_pairs"] == 1 and result.details["merged_of_multi_instance"] == 1.0
    assert result.details["per_class_counts"]["b"]["missed"] == 1
    assert result.per_class == {"a": 0.0, "b": 0.0} and result.mean == 0.0
    assert set(result.details["fractions"]) == set(OUTCOMES)


def test_correct_equals_pooled_corloc_hits():
    gt = make_gt([(0, 0, LEFT, False), (1, 0, LEFT, False), (2, 1, RIGHT, False), (3, 1, RIGHT, False)],
                 num_images=4)
    dets = make_dets(gt, [(0, 0, LEFT, 0.9), (1, 0, ASIDE, 0.9), (2, 1, RIGHT, 0.5), (3, 1, RIGHT, 0.5)])
    failures = evaluate_failure_modes(gt, dets, 0.5, 0.7, 0.8)
    corloc = evaluate_corloc(gt, dets)
    assert failures.per_class == corloc.per_class == {"a": 0.5, "b": 1.0}
    assert failures.mean == pytest.approx(3 / 4)


def test_bad_thresholds_are_errors():
    gt = make_gt([(0, 0, LEFT, False)])
    with pytest.raises(ValueError, match="instance_cover must be in"):
        evaluate_failure_modes(gt, make_dets(gt, []), 0.5, 0.0, 0.8)


def test_cli_writes_the_bins(tmp_path):
    from wsjds.data.synthetic import SynthConfig, generate_dataset
    from wsjds.evaluation import load_voc_ground_truth
    from wsjds.data.classes import SYNTH_CLASSES

    root = tmp_path / "synth"
    generate_dataset(root, SynthConfig(num_trainval=4, num_test=1))
    gt = load_voc_ground_truth(root, "trainval", SYNTH_CLASSES)
    dets = [{"image_id": gt.image_ids[i], "category_id": int(c), "score": 1.0,
             "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
            for i, c, b in zip(gt.image_index, gt.labels, gt.boxes)]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    out = tmp_path / "failures.json"
    assert main(["evaluate", "failures", "--root", str(root), "--kind", "synthetic", "--split", "trainval",
                 "--detections", str(path), "--instance-cover", "0.7", "--part-inside", "0.8", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["metric"] == "failure_modes" and written["fractions"]["correct"] == 1.0   # GT boxes are correct
    assert written["pairs"] == written["counts"]["correct"] > 0
