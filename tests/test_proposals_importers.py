"""Importers: tiny files in every format with known 1-based (y1, x1, y2, x2) boxes -> exact stored boxes.

Hand conversion used throughout: MATLAB (y1, x1, y2, x2) = (10, 20, 50, 80), 1-based inclusive,
is the package's continuous 0-based (x1, y1, x2, y2) = (19, 9, 80, 50); a Detectron pickle stores
the same box 0-based inclusive as (19, 9, 79, 49).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import scipy.io

from proposal_helpers import (make_voc, matlab_cell, proposal_settings_file, python2_pickle, run_proposals_cli,
                              write_mat73)
from wsjds.errors import DatasetError
from wsjds.data.voc import VOCDataset
from wsjds.proposals import ProposalPolicy, ProposalStore, UnsafePickleError, import_proposals, load_pickle

IMAGES = [("000005", 100, 90), ("000007", 120, 100), ("000009", 80, 70)]
IDS = [i for i, _, _ in IMAGES]
POLICY = ProposalPolicy(min_side=8, max_per_image=10)

# Per image: MATLAB boxes (1-based y1, x1, y2, x2), their scores, and the expected stored result.
MATLAB_BOXES = {
    "000005": np.array([[10, 20, 50, 80], [1, 1, 90, 100]], np.float64),
    "000007": np.array([[5, 5, 60, 60]], np.float64),
    "000009": np.array([[2, 3, 41, 52], [2, 3, 41, 52]], np.float64),   # an exact duplicate
}
SCORES = {"000005": np.array([0.2, 0.9]), "000007": np.array([0.4]), "000009": np.array([0.6, 0.5])}
PICKLE_BOXES = {  # the same boxes, 0-based inclusive (x1, y1, x2, y2)
    "000005": np.array([[19, 9, 79, 49], [0, 0, 99, 89]], np.uint16),
    "000007": np.array([[4, 4, 59, 59]], np.uint16),
    "000009": np.array([[2, 1, 51, 40], [2, 1, 51, 40]], np.uint16),
}
EXPECTED_SCORED = {  # sorted by score
    "000005": ([[0, 0, 100, 90], [19, 9, 80, 50]], [0.9, 0.2]),
    "000007": ([[4, 4, 60, 60]], [0.4]),
    "000009": ([[2, 1, 52, 41]], [0.6]),
}
EXPECTED_UNSCORED = {  # scores 0: source order
    "000005": ([[19, 9, 80, 50], [0, 0, 100, 90]], [0, 0]),
    "000007": ([[4, 4, 60, 60]], [0]),
    "000009": ([[2, 1, 52, 41]], [0]),
}


@pytest.fixture()
def voc(tmp_path):
    return make_voc(tmp_path / "VOC", {"trainval": IMAGES})


def _import(fmt, path, voc, out):
    import_proposals(fmt, path, VOCDataset(voc, "trainval"), out, dataset="tiny", split="trainval",
                     policy=POLICY, progress=False)
    return out


def _assert_store(path, expected):
    with ProposalStore.open(path, dataset="tiny", split="trainval") as store:
        assert store.image_ids == tuple(IDS)
        for image_id, (boxes, scores) in expected.items():
            got_boxes, got_scores = store[image_id]
            assert got_boxes.dtype == np.float32 and got_scores.dtype == np.float32
            np.testing.assert_array_equal(got_boxes, np.array(boxes, np.float32))
            np.testing.assert_array_equal(got_scores, np.array(scores, np.float32))


def _mcg_files(directory, ids=IDS, v73=()):
    directory.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        variables = {"boxes": MATLAB_BOXES[image_id], "scores": SCORES[image_id][:, None]}
        if image_id in v73:
            write_mat73(directory / f"{image_id}.mat", variables)
        else:
            scipy.io.savemat(directory / f"{image_id}.mat", variables)
    return directory


# --- MCG ---------------------------------------------------------------------------------------


def test_mcg_directory_v5_and_v73(voc, tmp_path):
    mcg = _mcg_files(tmp_path / "mcg" / "nested", v73={"000007"})
    scipy.io.savemat(tmp_path / "mcg" / "999999.mat", {"boxes": np.ones((1, 4)), "scores": np.ones((1, 1))})
    _assert_store(_import("mcg", tmp_path / "mcg", voc, tmp_path / "p.h5"), EXPECTED_SCORED)
    assert mcg.is_dir()


def test_mcg_tarball(voc, tmp_path):
    mcg = _mcg_files(tmp_path / "files", v73={"000009"})
    archive = tmp_path / "MCG-boxes.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for image_id in reversed(IDS):  # archive order differs from the split order
            tar.add(mcg / f"{image_id}.mat", arcname=f"MCG-Pascal-Main/{image_id}.mat")
    out = _import("mcg", archive, voc, tmp_path / "p.h5")
    _assert_store(out, EXPECTED_SCORED)
    with ProposalStore.open(out) as store:
        assert store.header.source == "import:mcg"
        assert store.parameters["input_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_mcg_missing_image_is_named(voc, tmp_path):
    _mcg_files(tmp_path / "mcg", ids=IDS[:2])
    with pytest.raises(DatasetError, match=r"file '.*mcg'.*split 'trainval'.*no \{id\}\.mat for \['000009'\]"):
        _import("mcg", tmp_path / "mcg", voc, tmp_path / "p.h5")
    assert not (tmp_path / "p.h5").exists()


# --- Selective Search release (.mat per split) -------------------------------------------------


def test_ss_mat_v5_by_order(voc, tmp_path):
    path = tmp_path / "voc_2007_trainval.mat"
    scipy.io.savemat(path, {"boxes": matlab_cell([MATLAB_BOXES[i] for i in IDS])})
    _assert_store(_import("ss-mat", path, voc, tmp_path / "p.h5"), EXPECTED_UNSCORED)


def test_ss_mat_images_field_is_authoritative(voc, tmp_path):
    order = ["000009", "000005", "000007"]
    path = tmp_path / "ss.mat"
    scipy.io.savemat(path, {"boxes": matlab_cell([MATLAB_BOXES[i] for i in order]), "images": matlab_cell(order)})
    _assert_store(_import("ss-mat", path, voc, tmp_path / "a.h5"), EXPECTED_UNSCORED)
    path73 = write_mat73(tmp_path / "ss73.mat", {"boxes": [MATLAB_BOXES[i] for i in order], "images": order})
    _assert_store(_import("ss-mat", path73, voc, tmp_path / "b.h5"), EXPECTED_UNSCORED)


def test_ss_mat_v73_by_order_with_an_empty_cell(voc, tmp_path):
    path = write_mat73(tmp_path / "ss.mat", {"boxes": [MATLAB_BOXES["000005"], MATLAB_BOXES["000007"], np.zeros((0, 4))]})
    with pytest.raises(DatasetError, match=r"image id '000009'.*no proposal left"):
        _import("ss-mat", path, voc, tmp_path / "p.h5")
    path = write_mat73(tmp_path / "ss2.mat", {"boxes": [MATLAB_BOXES[i] for i in IDS]})
    _assert_store(_import("ss-mat", path, voc, tmp_path / "p.h5"), EXPECTED_UNSCORED)


def test_ss_mat_count_and_order_are_verified(voc, tmp_path):
    path = tmp_path / "short.mat"
    scipy.io.savemat(path, {"boxes": matlab_cell([MATLAB_BOXES["000005"], MATLAB_BOXES["000007"]])})
    with pytest.raises(DatasetError, match=r"short\.mat.*2 entries but split 'trainval' has 3 images"):
        _import("ss-mat", path, voc, tmp_path / "p.h5")
    # Entries of 000005 and 000009 swapped: 000005's whole-image box (x2 = 100, y2 = 90) lands on the
    # 80x70 image 000009 and lies outside it, which reveals the wrong order.
    path = tmp_path / "swapped.mat"
    scipy.io.savemat(path, {"boxes": matlab_cell([MATLAB_BOXES[i] for i in ("000009", "000007", "000005")])})
    with pytest.raises(DatasetError, match=r"image id '000009'.*outside the 80x70 image.*order"):
        _import("ss-mat", path, voc, tmp_path / "p.h5")


# --- EdgeBoxes (WSDDN release) -------------------------------------------------------------------


def test_edgeboxes_v5_and_v73(voc, tmp_path):
    variables = {"images": [*IDS], "boxes": [MATLAB_BOXES[i] for i in IDS],
                 "boxScores": [SCORES[i][:, None] for i in IDS]}
    v5 = tmp_path / "EdgeBoxesVOC2007trainval.mat"
    scipy.io.savemat(v5, {key: matlab_cell(value) for key, value in variables.items()})
    _assert_store(_import("edgeboxes-mat", v5, voc, tmp_path / "a.h5"), EXPECTED_SCORED)
    v73 = write_mat73(tmp_path / "eb73.mat", variables)
    _assert_store(_import("edgeboxes-mat", v73, voc, tmp_path / "b.h5"), EXPECTED_SCORED)


def test_edgeboxes_ids_disagree_with_split(voc, tmp_path):
    names = ["000005", "000007", "000008"]
    path = tmp_path / "eb.mat"
    scipy.io.savemat(path, {"images": matlab_cell(names), "boxes": matlab_cell([MATLAB_BOXES[i] for i in IDS]),
                            "boxScores": matlab_cell([SCORES[i][:, None] for i in IDS])})
    with pytest.raises(DatasetError, match=r"eb\.mat.*missing: \['000009'\].*not in the split: \['000008'\]"):
        _import("edgeboxes-mat", path, voc, tmp_path / "p.h5")


def test_edgeboxes_requires_its_fields(voc, tmp_path):
    path = tmp_path / "eb.mat"
    scipy.io.savemat(path, {"boxes": matlab_cell([MATLAB_BOXES[i] for i in IDS])})
    with pytest.raises(DatasetError, match=r"eb\.mat.*expected a variable 'images', found \['boxes'\]"):
        _import("edgeboxes-mat", path, voc, tmp_path / "p.h5")


# --- Detectron-style pickles ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["str-indexes", "int-ids", "python2", "no-scores"])
def test_pickle_variants(voc, tmp_path, variant):
    order = ["000007", "000009", "000005"]  # pickles may be in any order
    data = {"boxes": [PICKLE_BOXES[i] for i in order], "scores": [SCORES[i].astype(np.float32) for i in order],
            "indexes": list(order)}
    expected = EXPECTED_SCORED
    if variant == "int-ids":
        data["ids"] = [int(i) for i in data.pop("indexes")]
        data["scores"] = [s[:, None] for s in data["scores"]]  # (K, 1) like WS-JDS's converter
    if variant == "no-scores":
        del data["scores"]
        expected = EXPECTED_UNSCORED
    path = tmp_path / "proposals.pkl"
    if variant == "python2":
        data = {key.encode(): [i.encode() for i in value] if key == "indexes" else value for key, value in data.items()}
        path.write_bytes(python2_pickle(data))
    else:
        path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    _assert_store(_import("pkl", path, voc, tmp_path / "p.h5"), expected)


def test_pickle_ids_disagree_with_split(voc, tmp_path):
    data = {"boxes": [PICKLE_BOXES[i] for i in IDS], "indexes": [5, 7, 11]}
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DatasetError, match=r"p\.pkl.*missing: \['000009'\].*not in the split: \['11'\]"):
        _import("pkl", path, voc, tmp_path / "p.h5")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_without_running(voc, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"boxes": [PICKLE_BOXES["000005"]], "indexes": [_RunsCode(marker)]}))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refused to unpickle.*(posix|os)\.system"):
        _import("pkl", path, voc, tmp_path / "p.h5")
    assert not marker.exists()
    for payload in (pickle.dumps(eval), pickle.dumps(_RunsCode), pickle.dumps(np.load)):
        path.write_bytes(payload)
        with pytest.raises(UnsafePickleError):
            load_pickle(path)


def test_pickle_of_numpy_and_containers_loads(tmp_path):
    data = {"a": [np.arange(3, dtype=np.int16), (1, 2.5)], "s": {np.int64(4)}, "f": frozenset({"x"})}
    path = tmp_path / "ok.pkl"
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        loaded = load_pickle(path)
        np.testing.assert_array_equal(loaded["a"][0], [0, 1, 2])
        assert loaded["a"][1] == (1, 2.5) and loaded["s"] == {4} and loaded["f"] == {"x"}


def test_broken_pickle_names_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"boxes": [np.zeros((3, 4))]})[:-10])
    with pytest.raises(DatasetError, match=r"cut\.pkl.*cannot unpickle"):
        load_pickle(path)


# --- command line and determinism ----------------------------------------------------------------


def test_cli_import_is_deterministic(voc, tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"boxes": [PICKLE_BOXES[i] for i in IDS], "indexes": IDS}))
    digests = set()
    for name in ("a.h5", "b.h5"):
        settings = proposal_settings_file(tmp_path / "settings.json", voc, import_format="pkl",
                                          policy={"min_side": 8, "max_per_image": 10})
        assert run_proposals_cli(["proposals", "import", "--settings", settings, "--input", str(path),
                                  "--out", str(tmp_path / name), "--no-progress"]) == 0
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1
    _assert_store(tmp_path / "a.h5", EXPECTED_UNSCORED)
    with ProposalStore.open(tmp_path / "a.h5") as store:
        assert store.parameters["format"] == "pkl" and store.parameters["min_side"] == 8
        assert store.parameters["max_per_image"] == 10


def test_not_a_mat_file(voc, tmp_path):
    path = tmp_path / "x.mat"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(DatasetError, match=r"x\.mat.*not a MATLAB \.mat file"):
        _import("ss-mat", path, voc, tmp_path / "p.h5")
    with pytest.raises(DatasetError, match=r"nothing\.mat.*does not exist"):
        _import("ss-mat", tmp_path / "nothing.mat", voc, tmp_path / "p.h5")


def test_io_bytes_mat_reader_handles_char_matrix(tmp_path):
    from wsjds.proposals import load_mat

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"images": np.array(["000005", "000007"])})
    buffer.seek(0)
    assert list(load_mat(buffer, ["images"], name="mem")["images"]) == ["000005", "000007"]
