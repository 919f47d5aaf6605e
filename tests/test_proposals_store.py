"""ProposalStore / ProposalWriter / merge_shards: the public API, attribute checks and the merge's id checks."""

from __future__ import annotations

import numpy as np
import pytest

from proposal_helpers import make_voc, proposal_settings_file
from wsjds.boxes import BOX_CONVENTION
from wsjds.errors import ArtifactError, DatasetError
from wsjds.artifacts.hdf5 import FieldSpec, Header, HDF5FormatError, write_ragged
from wsjds.proposals import PROPOSALS_FORMAT, ProposalStore, ProposalWriter, merge_proposal_shards

SIZES = {"a": (50, 40), "b": (60, 30), "c": (20, 20)}
BOXES = {"a": [[0, 0, 50, 40], [1, 1, 30, 20]], "b": [[10, 5, 60, 30]], "c": [[0, 0, 10, 10]]}
PARAMETERS = {"mode": "fast", "min_side": 1, "max_per_image": 5}


def _shard(path, ids, shard, parameters=PARAMETERS, dataset="tiny", split="trainval", sizes=SIZES):
    with ProposalWriter(path, dataset=dataset, split=split, source="selective_search",
                        parameters={**parameters, "shard": shard}) as writer:
        for image_id in ids:
            boxes = np.array(BOXES[image_id], np.float32)
            writer.append(image_id, *sizes[image_id], boxes, np.arange(len(boxes), 0, -1, dtype=np.float32))
    return path


def test_store_api(tmp_path):
    path = _shard(tmp_path / "s.h5", ["b", "a"], "0/1")
    with ProposalStore.open(path, dataset="tiny", split="trainval") as store:
        assert len(store) == 2 and store.image_ids == ("b", "a") and "a" in store and list(store) == ["b", "a"]
        boxes, scores = store["a"]
        np.testing.assert_array_equal(boxes, np.array(BOXES["a"], np.float32))
        np.testing.assert_array_equal(scores, [2, 1])
        assert store.image_size("b") == (60, 30) and store.num_boxes("a") == 2
        assert store.header.format == PROPOSALS_FORMAT and store.header.box_convention == BOX_CONVENTION
        assert store.parameters["mode"] == "fast" and store.header.source == "selective_search"
        assert "ProposalStore" in repr(store) and "2 images" in repr(store)
        with pytest.raises(KeyError, match="'z' is not in"):
            store["z"]


def test_store_refuses_other_formats_and_splits(tmp_path):
    path = tmp_path / "det.h5"
    write_ragged(path, Header(format="wsjds.detections", version=1, dataset="tiny", split="test", source="x"),
                 {"boxes": FieldSpec(np.float32, (4,))}, [("a", 5, 5, {"boxes": [[0, 0, 1, 1]]})])
    with pytest.raises(HDF5FormatError, match=r"det\.h5.*format is 'wsjds\.detections' but expected 'wsjds\.proposals'"):
        ProposalStore.open(path)
    shard = _shard(tmp_path / "s.h5", ["a"], "0/1")
    with pytest.raises(HDF5FormatError, match=r"s\.h5.*split is 'trainval' but expected 'test'"):
        ProposalStore.open(shard, split="test")


def test_merge_joins_shards_in_split_order(tmp_path):
    s0 = _shard(tmp_path / "s0.h5", ["c"], "0/2")
    s1 = _shard(tmp_path / "s1.h5", ["a", "b"], "1/2")
    out = tmp_path / "all.h5"
    assert merge_proposal_shards([s1, s0], out, expected_ids=["a", "b", "c"], dataset="tiny", split="trainval",
                                 image_size=SIZES.__getitem__, progress=False) == 3
    with ProposalStore.open(out) as store:
        assert store.image_ids == ("a", "b", "c")
        assert "shard" not in store.parameters and store.parameters["mode"] == "fast"
        np.testing.assert_array_equal(store["b"][0], np.array(BOXES["b"], np.float32))


def test_merge_names_missing_and_duplicated_ids(tmp_path):
    s0 = _shard(tmp_path / "s0.h5", ["a", "b"], "0/2")
    s1 = _shard(tmp_path / "s1.h5", ["b"], "1/2")
    with pytest.raises(DatasetError, match=r"s0\.h5, .*s1\.h5.*missing: \['c'\].*duplicated: \['b'\]"):
        merge_proposal_shards([s0, s1], tmp_path / "all.h5", expected_ids=["a", "b", "c"], dataset="tiny",
                              split="trainval", progress=False)
    assert not (tmp_path / "all.h5").exists()


def test_merge_refuses_mixed_configurations_and_wrong_sizes(tmp_path):
    s0 = _shard(tmp_path / "s0.h5", ["a"], "0/2")
    s1 = _shard(tmp_path / "s1.h5", ["b", "c"], "1/2", parameters={**PARAMETERS, "mode": "quality"})
    with pytest.raises(ArtifactError, match=r"s1\.h5.*rebuild the shards with one configuration"):
        merge_proposal_shards([s0, s1], tmp_path / "all.h5", expected_ids=["a", "b", "c"], dataset="tiny",
                              split="trainval", progress=False)
    s1 = _shard(tmp_path / "s1.h5", ["b", "c"], "1/2")
    with pytest.raises(ArtifactError, match=r"image id 'b'.*stored image size 60x30 differs from the dataset's 61x30"):
        merge_proposal_shards([s0, s1], tmp_path / "all.h5", expected_ids=["a", "b", "c"], dataset="tiny",
                              split="trainval", image_size=lambda i: (61, 30) if i == "b" else SIZES[i], progress=False)
    other = _shard(tmp_path / "o.h5", ["b", "c"], "1/2", dataset="voc07")
    with pytest.raises(HDF5FormatError, match="dataset is 'voc07' but expected 'tiny'"):
        merge_proposal_shards([s0, other], tmp_path / "all.h5", expected_ids=["a", "b", "c"], dataset="tiny",
                              split="trainval", progress=False)


def test_merge_revalidates_boxes(tmp_path):
    s0 = _shard(tmp_path / "s0.h5", ["a", "b", "c"], "0/1", sizes={**SIZES, "c": (5, 5)})
    with pytest.raises(DatasetError, match=r"image id 'c'.*outside the 5x5 image"):
        merge_proposal_shards([s0], tmp_path / "all.h5", expected_ids=["a", "b", "c"], dataset="tiny", split="trainval",
                              progress=False)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, caplog):
    from wsjds.cli import main

    voc = make_voc(tmp_path / "VOC", {"trainval": [("a", 50, 40)]})
    settings = proposal_settings_file(tmp_path / "settings.json", voc, policy={"min_side": 1, "max_per_image": 5})
    code = main(["proposals", "merge", "--settings", settings, "--out", str(tmp_path / "all.h5"), "--no-progress",
                 str(tmp_path / "missing.h5")])
    assert code == 2 and "missing.h5" in caplog.text and "no such file" in caplog.text
    bad = proposal_settings_file(tmp_path / "bad.json", voc, selective_search={"mode": "slow", "resize_max_side": 0, "sigma": 0.8,
                                                                     "base_k": 150, "inc_k": 150, "seed": 0},
                                 policy={"min_side": 1, "max_per_image": 5})
    code = main(["proposals", "compute", "--settings", bad, "--out", str(tmp_path / "s.h5"), "--no-progress"])
    assert code == 2 and "bad proposal settings" in caplog.text and "mode must be one of" in caplog.text
    assert "bad.json" in caplog.text
    coco = proposal_settings_file(tmp_path / "coco.json", voc, kind="coco", selective_search={},
                                  policy={"min_side": 1, "max_per_image": 5})
    assert main(["proposals", "compute", "--settings", coco, "--out", str(tmp_path / "s.h5"), "--no-progress"]) == 2
    assert "dataset kind 'coco' cannot be read here" in caplog.text
    assert not (tmp_path / "all.h5").exists() and not (tmp_path / "s.h5").exists()
