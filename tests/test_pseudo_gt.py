"""Pseudo ground truth: policies, every positive class (the last included), the true top score, HDF5, report, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from wsjds.cli import main
from wsjds.data import SYNTH_CLASSES, VOCDataset
from wsjds.errors import ArtifactError
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.artifacts.detections import DetectionWriter, ProposalScoresWriter
from wsjds.evaluation import ground_truth_from_annotations
from wsjds.stages.pseudo_gt import PseudoGTPolicy, ReportMatching, make_pseudo_gt
from wsjds.artifacts.pseudo_gt_store import PSEUDO_GT_FORMAT, PseudoGTStore

NOISE = np.array([[0, 0, 5, 5], [1, 1, 4, 4]], np.float32)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("pgt") / "synth"
    generate_dataset(root, SynthConfig(num_trainval=12, num_test=1, min_side=160, max_side=180,
                                       max_classes_per_image=3))
    return root


@pytest.fixture(scope="module")
def split(synth):
    return VOCDataset(synth, "trainval", SYNTH_CLASSES)


def test_policies_pick_by_true_score():
    scores = np.array([0.1, 0.7, 0.3, 0.7, 0.9, 0.2])
    assert PseudoGTPolicy().select(scores).tolist() == [4]
    assert PseudoGTPolicy().select(np.array([0.5, 0.8, 0.8])).tolist() == [1]  # tie: stored order
    assert PseudoGTPolicy("topk", top_k=3).select(scores).tolist() == [4, 1, 3]
    assert PseudoGTPolicy("threshold", score_threshold=0.5).select(scores).tolist() == [4, 1, 3]
    assert PseudoGTPolicy("threshold", score_threshold=0.95).select(scores).tolist() == [4]  # authors' fallback
    assert PseudoGTPolicy("threshold", score_threshold=0.95, fallback_top1=False).select(scores).size == 0
    assert PseudoGTPolicy().select(np.zeros(0)).size == 0
    for bad in (dict(kind="best"), dict(kind="threshold"), dict(kind="topk", top_k=0)):
        with pytest.raises(ValueError):
            PseudoGTPolicy(**bad)


def write_detections(path, split, per_image, dataset="synth", name="trainval"):
    """per_image(image_id, annotation) -> (boxes, scores, labels)."""
    with DetectionWriter(path, dataset=dataset, split=name, classes=split.classes, source="test",
                         parameters={}) as writer:
        for image_id in split.ids:
            ann = split.annotation(image_id)
            writer.append(image_id, ann.width, ann.height, *per_image(image_id, ann))
    return path


def gt_with_noise(image_id, ann):
    """Per object: its box scored 0.9 (0.1 when difficult) after two noise boxes of the class scored lower;
    rows deliberately stored in ascending score order so the first row is never the top one."""
    boxes, scores, labels = [], [], []
    for box, label, difficult in zip(ann.boxes, ann.labels, ann.difficult):
        boxes += [*NOISE, box]
        scores += [0.05, 0.08, 0.1 if difficult else 0.9]
        labels += [label] * 3
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores), np.array(labels)


def test_top1_takes_the_true_top_box_of_every_positive_class(synth, split, tmp_path):
    scores_path = write_detections(tmp_path / "det.h5", split, gt_with_noise)
    gt = ground_truth_from_annotations(split.ids, split.annotations(), split.classes)
    report = make_pseudo_gt(scores_path, split, tmp_path / "pgt.h5", tmp_path / "report.json", dataset="synth",
                            split="trainval", policy=PseudoGTPolicy(), ground_truth=gt,
                            matching=ReportMatching(0.7, "pcl"))
    positives = {image_id: set(np.flatnonzero(split.image_labels(image_id)).tolist()) for image_id in split.ids}
    last = len(SYNTH_CLASSES) - 1
    assert any(last in p for p in positives.values()), "fixture should have the last class positive somewhere"
    with PseudoGTStore.open(tmp_path / "pgt.h5", dataset="synth", split="trainval") as store:
        assert store.image_ids == split.ids and store.classes == SYNTH_CLASSES
        for image_id in split.ids:
            boxes, labels, scores = store[image_id]
            assert labels.tolist() == sorted(positives[image_id])  # one box per positive class, all classes
            assert np.all(scores == np.float32(0.9))  # never a noise box, never the first stored row
        assert dict(store.header.parameters)["policy"]["kind"] == "top1"
    with h5py.File(tmp_path / "pgt.h5") as f:
        assert f.attrs["format"] == PSEUDO_GT_FORMAT
        for key in ("version", "dataset", "split", "box_convention", "classes", "producer", "source"):
            assert key in f.attrs
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert report["corloc"]["mean"] == 1.0 and report["precision"]["overall"] == 1.0
    assert report["precision"]["iou_threshold"] == 0.7 and report["corloc"]["definition"] == "pcl"   # as asked
    with pytest.raises(ValueError, match="needs the matching"):
        make_pseudo_gt(scores_path, split, tmp_path / "x.h5", None, dataset="synth", split="trainval",
                       policy=PseudoGTPolicy(), ground_truth=gt)
    assert report["boxes_per_class"] == report["positive_images_per_class"]
    assert report["boxes_per_class"][SYNTH_CLASSES[last]] > 0
    assert report["num_boxes"] == sum(len(p) for p in positives.values())


def test_threshold_and_topk_policies_and_missing_classes(split, tmp_path):
    scores_path = write_detections(tmp_path / "det.h5", split, gt_with_noise)
    report = make_pseudo_gt(scores_path, split, tmp_path / "a.h5", None, dataset="synth", split="trainval",
                            policy=PseudoGTPolicy("topk", top_k=2))
    assert report["num_boxes"] == 2 * sum(report["positive_images_per_class"].values())  # every object has 3 rows
    with PseudoGTStore.open(tmp_path / "a.h5") as store:
        _, labels, scores = store[split.ids[0]]
        for label in set(labels.tolist()):
            assert scores[labels == label].tolist() == sorted(scores[labels == label].tolist(), reverse=True)
    # a detections file without any detection of one class: counted, reported, no box invented
    def first_class_only(image_id, ann):
        boxes, scores, labels = gt_with_noise(image_id, ann)
        keep = labels == 0
        return boxes[keep], scores[keep], labels[keep]

    only_first = write_detections(tmp_path / "d1.h5", split, first_class_only)
    report = make_pseudo_gt(only_first, split, tmp_path / "b.h5", None, dataset="synth", split="trainval",
                            policy=PseudoGTPolicy("threshold", score_threshold=0.5))
    missing = report["positives_without_candidates"]
    assert missing[SYNTH_CLASSES[0]] == 0 and sum(missing.values()) > 0
    assert report["num_boxes"] == report["boxes_per_class"][SYNTH_CLASSES[0]]


def test_raw_proposal_scores_source(split, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "raw.h5"
    expected = {}
    with ProposalScoresWriter(path, dataset="synth", split="trainval", classes=split.classes, source="t",
                              parameters={}) as writer:
        for image_id in split.ids:
            ann = split.annotation(image_id)
            corners = rng.uniform(0, 100, (50, 2))
            boxes = np.concatenate([corners, corners + 10], axis=1).astype(np.float32)
            scores = rng.random((50, len(split.classes))).astype(np.float32)
            writer.append(image_id, ann.width, ann.height, boxes, scores)
            expected[image_id] = {c: boxes[np.argmax(scores[:, c])] for c in range(len(split.classes))}
    make_pseudo_gt(path, split, tmp_path / "pgt.h5", None, dataset="synth", split="trainval", policy=PseudoGTPolicy())
    with PseudoGTStore.open(tmp_path / "pgt.h5") as store:
        for image_id in split.ids:
            boxes, labels, _ = store[image_id]
            for box, label in zip(boxes, labels):
                np.testing.assert_array_equal(box, expected[image_id][int(label)])


def test_bad_inputs(split, tmp_path):
    partial = VOCDataset(split.root, "test", SYNTH_CLASSES)  # scores written for the test split only
    scores_path = write_detections(tmp_path / "det.h5", partial, gt_with_noise, name="trainval")
    with pytest.raises(ArtifactError, match="has no scores") as info:
        make_pseudo_gt(scores_path, split, tmp_path / "x.h5", None, dataset="synth", split="trainval",
                       policy=PseudoGTPolicy())
    assert f"image id {split.ids[0]!r}" in str(info.value) and str(scores_path) in str(info.value)
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ArtifactError, match="dataset is 'synth' but expected 'voc07'"):
        make_pseudo_gt(scores_path, split, tmp_path / "x.h5", None, dataset="voc07", split="trainval",
                       policy=PseudoGTPolicy())
    (tmp_path / "plain.h5").write_bytes(b"nope")
    with pytest.raises(ArtifactError, match="plain.h5"):
        make_pseudo_gt(tmp_path / "plain.h5", split, tmp_path / "x.h5", None, dataset="synth", split="trainval",
                       policy=PseudoGTPolicy())


def _settings(path, synth, **policy):
    settings = {"dataset": {"name": "synth", "kind": "synthetic", "root": str(synth), "include_difficult_labels": False},
                "classes": list(SYNTH_CLASSES), "split": "trainval",
                "pseudo_gt": {"policy": "top1", "score_threshold": None, "top_k": None, "fallback_top1": True, **policy},
                "matching": {"iou_threshold": 0.5, "corloc_definition": "authors"}}
    path.write_text(json.dumps(settings))
    return path


def test_cli(synth, split, tmp_path, caplog):
    scores_path = write_detections(tmp_path / "det.h5", split, gt_with_noise)
    out, report = tmp_path / "pgt.h5", tmp_path / "report.json"

    def run(**policy) -> int:
        return main(["pseudo-gt", "--settings", str(_settings(tmp_path / "s.json", synth, **policy)),
                     "--scores", str(scores_path), "--out", str(out), "--report", str(report)])

    assert run() == 0
    result = json.loads(report.read_text())
    assert result["policy"] == {"kind": "top1", "score_threshold": None, "top_k": None, "fallback_top1": True}
    assert result["corloc"]["definition"] == "authors" and result["corloc"]["mean"] == 1.0
    assert run(policy="threshold", score_threshold=0.01) == 0
    # every candidate of a positive class passes: 3 rows per object of a positive class
    expected = 0
    for image_id in split.ids:
        ann, positive = split.annotation(image_id), split.image_labels(image_id)
        expected += 3 * int(np.sum(positive[ann.labels] > 0))
    assert json.loads(report.read_text())["num_boxes"] == expected
    out.unlink()
    assert run(policy="threshold") == 2            # a threshold policy without a threshold
    assert "the threshold policy needs a finite score_threshold" in caplog.text and "s.json" in caplog.text
    bad = json.loads((tmp_path / "s.json").read_text())
    bad["dataset"]["kind"], bad["pseudo_gt"]["policy"] = "lmdb", "top1"
    (tmp_path / "kind.json").write_text(json.dumps(bad))
    assert main(["pseudo-gt", "--settings", str(tmp_path / "kind.json"), "--scores", str(scores_path),
                 "--out", str(out), "--report", str(report)]) == 2
    assert "dataset kind 'lmdb' cannot be read here" in caplog.text
    assert not out.exists()


def test_the_workflow_settings_give_the_config_policy_and_matching():
    import yaml

    from wsjds import workflow as wf

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    settings = wf.pseudo_gt_settings(config, "synth")
    assert settings["split"] == config["datasets"]["synth"]["train_split"] and settings["dataset"]["name"] == "synth"
    assert PseudoGTPolicy.from_config(settings["pseudo_gt"]) == PseudoGTPolicy(
        config["pseudo_gt"]["policy"], float(config["pseudo_gt"]["score_threshold"]), config["pseudo_gt"]["top_k"],
        config["pseudo_gt"]["fallback_top1"])
    policy = PseudoGTPolicy.from_config(settings["pseudo_gt"])
    assert type(policy.score_threshold) is float and type(policy.top_k) is int   # as the flags parsed them
    assert ReportMatching.from_config(settings["matching"]) == ReportMatching(
        config["evaluation"]["iou_threshold"], config["evaluation"]["corloc_definition"])
