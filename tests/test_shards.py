"""merge_shards: every image a merge copies is re-checked by its store's rules, so a shard written by
another tool (or damaged) cannot slip a bad row into the merged file."""

from __future__ import annotations

import numpy as np
import pytest

from wsjds.artifacts.detections import DETECTION_FIELDS, DETECTIONS_FORMAT, DETECTIONS_VERSION, DetectionStore
from wsjds.artifacts.hdf5 import Header, write_ragged
from wsjds.artifacts.mask_store import MASK_FIELDS, MASKS_FORMAT, MASKS_VERSION, MaskStore, encode_rle
from wsjds.artifacts.shards import merge_shards
from wsjds.errors import ArtifactError

CLASSES = ("ring", "star")


def _detections(path, labels, boxes=((1, 1, 5, 5),)):
    header = Header(format=DETECTIONS_FORMAT, version=DETECTIONS_VERSION, dataset="d", split="test", source="x",
                    parameters={}, classes=CLASSES)
    rows = {"boxes": np.array(boxes, np.float32), "scores": np.ones(len(labels), np.float32),
            "labels": np.array(labels, np.int64)}
    write_ragged(path, header, DETECTION_FIELDS, [("a", 8, 8, rows)])
    return path


def test_a_good_detection_shard_merges_and_reads_back(tmp_path):
    merge_shards(DetectionStore, [_detections(tmp_path / "s.h5", [1])], tmp_path / "m.h5", ["a"], dataset="d",
                 split="test")
    with DetectionStore.open(tmp_path / "m.h5") as store:
        assert store["a"].labels.tolist() == [1] and store["a"].boxes.tolist() == [[1, 1, 5, 5]]


@pytest.mark.parametrize("labels, boxes, message", [
    ([2], ((1, 1, 5, 5),), r"labels must be integers in \[0, 2\), found \[2\]"),
    ([0], ((5, 1, 1, 5),), "x2 >= x1"),
    ([0], ((np.nan, 1, 5, 5),), "must be finite"),
])
def test_a_detection_merge_names_the_shard_and_image_of_a_bad_row(tmp_path, labels, boxes, message):
    shard = _detections(tmp_path / "s.h5", labels, boxes)
    with pytest.raises(ArtifactError, match=message) as error:
        merge_shards(DetectionStore, [shard], tmp_path / "m.h5", ["a"], dataset="d", split="test")
    assert "s.h5" in str(error.value) and "'a'" in str(error.value)
    assert not (tmp_path / "m.h5").exists()


def _masks(path, rle, variant="crf"):
    header = Header(format=MASKS_FORMAT, version=MASKS_VERSION, dataset="d", split="test", source="x",
                    parameters={"variant": variant}, classes=CLASSES)
    rows = {"boxes": np.array([[1, 1, 5, 5]], np.float32), "scores": np.ones(1, np.float32),
            "labels": np.zeros(1, np.int64), "rle": np.array([rle], dtype=object)}
    write_ragged(path, header, MASK_FIELDS, [("a", 8, 8, rows)])
    return path


def test_a_mask_merge_checks_the_variant_and_the_rle_strings(tmp_path):
    good = encode_rle(np.ones((8, 8), bool))
    merge_shards(MaskStore, [_masks(tmp_path / "s.h5", good)], tmp_path / "m.h5", ["a"], dataset="d", split="test")
    with MaskStore.open(tmp_path / "m.h5") as store:
        assert store["a"].mask(0).all() and store.variant == "crf"
    with pytest.raises(ArtifactError, match="empty RLE"):
        merge_shards(MaskStore, [_masks(tmp_path / "e.h5", b"")], tmp_path / "m2.h5", ["a"], dataset="d", split="test")
    with pytest.raises(ArtifactError, match="mask variant 'blob'"):
        merge_shards(MaskStore, [_masks(tmp_path / "v.h5", good, "blob")], tmp_path / "m3.h5", ["a"], dataset="d",
                     split="test")
    assert not (tmp_path / "m2.h5").exists() and not (tmp_path / "m3.h5").exists()
