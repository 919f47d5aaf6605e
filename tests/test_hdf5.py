"""wsjds.artifacts.hdf5: ragged per-image arrays keyed by image id (layout, attributes, checks, atomicity, bytes)."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest

from wsjds.boxes import BOX_CONVENTION
from wsjds.artifacts.hdf5 import FieldSpec, Header, HDF5FormatError, RaggedFile, RaggedWriter, write_ragged

FIELDS = {"boxes": FieldSpec(np.float32, (4,)), "labels": FieldSpec(np.int64)}
HEADER = Header(format="wsjds.test", version=2, dataset="synth", split="trainval", source="unit test",
                parameters={"b": 1, "a": [0.5, "x"]}, classes=("ring", "star"))
RECORDS = [
    ("000005", 500, 375, {"boxes": [[0, 0, 10, 10], [1, 2, 3, 4]], "labels": [3, 1]}),
    ("img_é", 20, 30, {"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}),
    ("7", 8, 9, {"boxes": [[0.5, 0.25, 8, 9]], "labels": [0]}),
]


def _write(path, records=RECORDS, **options):
    return write_ragged(path, HEADER, FIELDS, records, **options)


def _open(path, **kwargs):
    kwargs.setdefault("format", "wsjds.test")
    kwargs.setdefault("versions", (2,))
    return RaggedFile.open(path, **kwargs)


def test_round_trip_by_id(tmp_path):
    path = tmp_path / "a.h5"
    assert _write(path, chunk_rows=2) == 3
    with _open(path, dataset="synth", split="trainval") as f:
        assert f.image_ids == ("000005", "img_é", "7")
        assert len(f) == 3 and "7" in f and "8" not in f
        rows = f.read("000005")
        np.testing.assert_array_equal(rows["boxes"], np.array([[0, 0, 10, 10], [1, 2, 3, 4]], np.float32))
        assert rows["boxes"].dtype == np.float32 and rows["labels"].dtype == np.int64
        np.testing.assert_array_equal(rows["labels"], [3, 1])
        assert f.read("img_é")["boxes"].shape == (0, 4)
        np.testing.assert_array_equal(f.read("7", fields=["boxes"])["boxes"], [[0.5, 0.25, 8, 9]])
        assert f.image_size("000005") == (500, 375) and f.image_size("7") == (8, 9)
        assert f.num_rows("000005") == 2 and f.num_rows("img_é") == 0
        assert f.header.classes == ("ring", "star")
        assert dict(f.header.parameters) == {"a": [0.5, "x"], "b": 1}
        assert f.header.box_convention == BOX_CONVENTION and f.header.producer.startswith("wsjds ")


def test_layout_and_attributes(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["offsets"][()], [0, 2, 2, 3])
        assert f["offsets"].dtype == np.int64
        assert f["image_ids"].asstr()[()].tolist() == ["000005", "img_é", "7"]
        assert f["boxes"].shape == (3, 4) and f["labels"].shape == (3,)
        np.testing.assert_array_equal(f["width"][()], [500, 20, 8])
        attrs = dict(f.attrs)
        assert attrs["format"] == "wsjds.test" and attrs["version"] == 2
        assert attrs["dataset"] == "synth" and attrs["split"] == "trainval" and attrs["source"] == "unit test"
        assert attrs["box_convention"] == BOX_CONVENTION
        assert json.loads(attrs["parameters"]) == {"a": [0.5, "x"], "b": 1}
        assert list(attrs["classes"]) == ["ring", "star"]
        assert json.loads(attrs["fields"]) == ["boxes", "labels"]


def test_same_input_same_bytes(tmp_path):
    digests = set()
    for name in ("a.h5", "b.h5"):
        _write(tmp_path / name, chunk_rows=2)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1


def test_reader_refuses_wrong_format_version_dataset_split(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    with pytest.raises(HDF5FormatError, match=r"a\.h5.*format is 'wsjds\.test' but expected 'wsjds\.proposals'"):
        _open(path, format="wsjds.proposals")
    with pytest.raises(HDF5FormatError, match=r"a\.h5.*version 2 is not supported.*\[1\]"):
        _open(path, versions=(1,))
    with pytest.raises(HDF5FormatError, match=r"dataset is 'synth' but expected 'voc07'"):
        _open(path, dataset="voc07")
    with pytest.raises(HDF5FormatError, match=r"split is 'trainval' but expected 'test'"):
        _open(path, split="test")


def test_reader_refuses_other_box_convention_and_broken_files(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    with h5py.File(path, "r+") as f:
        f.attrs["box_convention"] = "yxyx_1based"
    with pytest.raises(HDF5FormatError, match="box_convention is 'yxyx_1based'"):
        _open(path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all")
    with pytest.raises(HDF5FormatError, match=r"garbage\.h5.*cannot open as HDF5"):
        _open(garbage)
    with pytest.raises(HDF5FormatError, match=r"missing\.h5.*no such file"):
        _open(tmp_path / "missing.h5")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = 1
    with pytest.raises(HDF5FormatError, match=r"missing attributes"):
        _open(plain)


def test_unknown_id_names_file_and_id(tmp_path):
    path = tmp_path / "a.h5"
    _write(path)
    with _open(path) as f, pytest.raises(KeyError, match=r"'000006' is not in .*a\.h5"):
        f.read("000006")


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "a.h5"
    with pytest.raises(RuntimeError, match="killed"):
        with RaggedWriter(path, HEADER, FIELDS) as writer:
            writer.append("1", 10, 10, boxes=[[0, 0, 1, 1]], labels=[0])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    _write(path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with RaggedWriter(path, HEADER, FIELDS) as writer:
            raise RuntimeError("killed")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_writer_rejects_bad_records(tmp_path):
    with RaggedWriter(tmp_path / "a.h5", HEADER, FIELDS) as writer:
        writer.append("1", 10, 10, boxes=[[0, 0, 1, 1]], labels=[0])
        with pytest.raises(ValueError, match="written twice"):
            writer.append("1", 10, 10, boxes=[[0, 0, 1, 1]], labels=[0])
        with pytest.raises(ValueError, match="different row counts"):
            writer.append("2", 10, 10, boxes=[[0, 0, 1, 1]], labels=[0, 1])
        with pytest.raises(ValueError, match=r"fields given \['boxes'\]"):
            writer.append("2", 10, 10, boxes=[[0, 0, 1, 1]])
        with pytest.raises(ValueError, match=r"field 'boxes' has shape \(1, 3\)"):
            writer.append("2", 10, 10, boxes=[[0, 0, 1]], labels=[0])
    with pytest.raises(ValueError, match="reserved"):
        RaggedWriter(tmp_path / "b.h5", HEADER, {"offsets": FieldSpec(np.int64)})
