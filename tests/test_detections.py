"""Detection stores (HDF5 on wsjds.artifacts.hdf5) and their exports: COCO results JSON and VOC comp4 files."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from wsjds.boxes import BOX_CONVENTION
from wsjds.errors import ArtifactError
from wsjds.artifacts.detections import (DETECTIONS_FORMAT, PROPOSAL_SCORES_FORMAT, DetectionStore, DetectionWriter,
                              ProposalScoresStore, ProposalScoresWriter, to_coco_results, to_voc_comp4)
from wsjds.evaluation.detections_io import read_comp4_dir, read_detections

CLASSES = ("cat", "dog", "bird")
IMAGES = {
    "000005": dict(size=(500, 375), boxes=[[0, 0, 10, 10], [5.5, 6.25, 100, 80]], scores=[0.9, 0.25], labels=[2, 0]),
    "000007": dict(size=(300, 200), boxes=np.zeros((0, 4)), scores=[], labels=[]),
    "000009": dict(size=(64, 64), boxes=[[1, 2, 3, 4]], scores=[0.5], labels=[2]),
}


def write(path, images=IMAGES, **kwargs):
    options = dict(dataset="voc07", split="test", classes=CLASSES, source="unit test", parameters={"nms": 0.5})
    options.update(kwargs)
    with DetectionWriter(path, **options) as writer:
        for image_id, d in images.items():
            writer.append(image_id, *d["size"], d["boxes"], d["scores"], d["labels"])
    return path


def test_round_trip_and_attributes(tmp_path):
    path = write(tmp_path / "d.h5")
    with DetectionStore.open(path, dataset="voc07", split="test") as store:
        assert store.image_ids == tuple(IMAGES) and store.classes == CLASSES
        dets = store["000005"]
        assert dets.boxes.dtype == np.float32 and dets.scores.dtype == np.float32 and dets.labels.dtype == np.int64
        np.testing.assert_array_equal(dets.boxes, np.array(IMAGES["000005"]["boxes"], np.float32))
        np.testing.assert_array_equal(dets.labels, [2, 0])
        assert len(store["000007"]) == 0 and store.image_size("000009") == (64, 64)
        assert dict(store.header.parameters) == {"nms": 0.5}
    with h5py.File(path) as f:
        assert f.attrs["format"] == DETECTIONS_FORMAT and f.attrs["box_convention"] == BOX_CONVENTION
        assert list(f.attrs["classes"]) == list(CLASSES)
    with pytest.raises(ArtifactError, match="split is 'test' but expected 'trainval'"):
        DetectionStore.open(path, split="trainval")


@pytest.mark.parametrize("bad, needle", [
    (dict(labels=[3]), "labels must be integers in"),
    (dict(labels=[-1]), "labels must be integers in"),
    (dict(boxes=[[5, 5, 1, 9]]), "x2 >= x1"),
    (dict(boxes=[[0, 0, np.nan, 1]]), "finite"),
    (dict(scores=[np.inf]), "scores must be finite"),
])
def test_writer_rejects_bad_detections_and_leaves_no_file(tmp_path, bad, needle):
    record = dict(size=(10, 10), boxes=[[0, 0, 1, 1]], scores=[0.5], labels=[0])
    record.update(bad)
    with pytest.raises(ArtifactError, match=needle) as info:
        write(tmp_path / "d.h5", {"x1": record})
    assert "'x1'" in str(info.value)
    assert not (tmp_path / "d.h5").exists()


def test_coco_results_export_both_forms(tmp_path):
    path = write(tmp_path / "d.h5")
    with DetectionStore.open(path) as store:
        assert to_coco_results(store, tmp_path / "package.json") == 3
        assert to_coco_results(store, tmp_path / "coco.json", category_ids=[17, 18, 21]) == 3
        with pytest.raises(ValueError, match="category ids"):
            to_coco_results(store, tmp_path / "x.json", category_ids=[1])
    package = json.loads((tmp_path / "package.json").read_text())
    assert package[1] == {"image_id": "000005", "category_id": 0, "bbox": [5.5, 6.25, 94.5, 73.75], "score": 0.25}
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert coco[0]["image_id"] == 5 and coco[0]["category_id"] == 21 and coco[1]["category_id"] == 17
    # the package form reads back to the same detections
    flat = read_detections(tmp_path / "package.json", tuple(IMAGES), CLASSES)
    direct = read_detections(path, tuple(IMAGES), CLASSES)
    np.testing.assert_array_equal(flat.boxes, direct.boxes)
    np.testing.assert_array_equal(flat.labels, direct.labels)
    np.testing.assert_allclose(flat.scores, direct.scores)


def test_coco_export_needs_numeric_ids(tmp_path):
    path = write(tmp_path / "d.h5", {"img_a": IMAGES["000009"]})
    with DetectionStore.open(path) as store, pytest.raises(ArtifactError, match="'img_a'"):
        to_coco_results(store, tmp_path / "coco.json", category_ids=[1, 2, 3])


def test_voc_comp4_export(tmp_path):
    path = write(tmp_path / "d.h5")
    with DetectionStore.open(path) as store:
        paths = to_voc_comp4(store, tmp_path / "results")
    assert sorted(p.name for p in paths) == sorted(f"comp4_det_test_{c}.txt" for c in CLASSES)
    assert (tmp_path / "results" / "comp4_det_test_dog.txt").read_text() == ""  # every class has a file
    assert (tmp_path / "results" / "comp4_det_test_cat.txt").read_text() == \
        "000005 0.250000 6.50 7.25 100.00 80.00\n"  # VOC 1-based inclusive
    bird = (tmp_path / "results" / "comp4_det_test_bird.txt").read_text().splitlines()
    assert bird == ["000005 0.900000 1.00 1.00 10.00 10.00", "000009 0.500000 2.00 3.00 3.00 4.00"]
    back = read_comp4_dir(tmp_path / "results", tuple(IMAGES), CLASSES, "test")
    assert sorted(map(tuple, back.boxes.tolist())) == sorted([(0, 0, 10, 10), (5.5, 6.25, 100, 80), (1, 2, 3, 4)])


def test_proposal_scores_store_is_compressed_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    boxes = np.tile([[0, 0, 10, 10]], (500, 1)).astype(np.float32)
    scores = np.zeros((500, 3), np.float32)
    scores[rng.integers(0, 500, 20), rng.integers(0, 3, 20)] = rng.random(20)
    path = tmp_path / "s.h5"
    with ProposalScoresWriter(path, dataset="voc07", split="trainval", classes=CLASSES, source="t",
                              parameters={}) as writer:
        writer.append("000005", 500, 375, boxes, scores)
        with pytest.raises(ValueError):
            writer.append("000006", 500, 375, boxes, scores[:, :2])
    with ProposalScoresStore.open(path) as store:
        got_boxes, got_scores = store["000005"]
        np.testing.assert_array_equal(got_boxes, boxes)
        np.testing.assert_array_equal(got_scores, scores)
        assert store.classes == CLASSES and store.header.format == PROPOSAL_SCORES_FORMAT
    with h5py.File(path) as f:
        assert f["scores"].compression == "gzip" and f["scores"].shape == (500, 3)
