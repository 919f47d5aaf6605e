"""Bad input gets a clear error naming the file and the image id, and leaves nothing partial behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wsjds.data import SYNTH_CLASSES, VOCDataset
from wsjds.errors import DatasetError
from wsjds.data.coco import COCODataset
from wsjds.data import synthetic
from wsjds.data.synthetic import SynthConfig, generate_dataset

TINY = SynthConfig(num_trainval=4, num_test=2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "dataset"
    generate_dataset(root, TINY)
    return root


@pytest.fixture()
def dataset_root(pristine, tmp_path) -> Path:
    """A private copy of a tiny synthetic VOC-layout dataset that a test may corrupt."""
    return Path(shutil.copytree(pristine, tmp_path / "dataset"))


def first_id(root: Path) -> str:
    return (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]


def load(root: Path, image_id: str, what: str = "annotation"):
    dataset = VOCDataset(root, "trainval", SYNTH_CLASSES)
    return dataset.read_image(image_id) if what == "image" else dataset.annotation(image_id)


def assert_names(exc: DatasetError, path: Path, image_id: str, *words: str) -> None:
    message = str(exc)
    assert str(path) in message and image_id in message, message
    assert exc.path == path and exc.image_id == image_id
    for word in words:
        assert word in message, message


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _retag(tag: str, new_value: Callable[[str], object]) -> Callable[[Path], None]:
    """Replace the first ``<tag>value</tag>`` of an XML file with ``new_value(value)``."""
    def corrupt(path: Path) -> None:
        text = path.read_text()
        old = text.split(f"<{tag}>")[1].split(f"</{tag}>")[0]
        path.write_text(text.replace(f"<{tag}>{old}</{tag}>", f"<{tag}>{new_value(old)}</{tag}>", 1))
    return corrupt


# (file corrupted, how, what is read, file the error names, words it must contain)
CORRUPTIONS = [
    pytest.param("xml", lambda p: p.write_text("<annotation><size><width>12</width></size>"), "annotation", "xml",
                 ("malformed or truncated XML",), id="malformed xml"),
    pytest.param("xml", _truncate, "annotation", "xml", ("XML",), id="truncated xml"),
    pytest.param("xml", lambda p: p.write_text("<annotation><filename>x.jpg</filename></annotation>"), "annotation",
                 "xml", ("size/width",), id="xml without size"),
    pytest.param("xml", _retag("name", lambda _: "unicorn"), "annotation", "xml",
                 ("unknown class name 'unicorn'", "ring"), id="unknown class name"),
    pytest.param("xml", _retag("xmax", lambda _: "100000"), "annotation", "xml", ("xmax",), id="box outside image"),
    pytest.param("xml", Path.unlink, "annotation", "xml", ("listed in ImageSets but not on disk",),
                 id="listed id without annotation"),
    pytest.param("jpg", Path.unlink, "image", "jpg", ("missing",), id="listed id without image"),
    pytest.param("jpg", _truncate, "image", "jpg", ("cannot decode",), id="truncated jpeg"),
    pytest.param("jpg", lambda p: p.write_bytes(b"this is not a JPEG at all"), "image", "jpg", ("cannot decode",),
                 id="unreadable jpeg"),
    pytest.param("xml", _retag("width", lambda w: int(w) + 1), "image", "jpg", ("annotation says",),
                 id="image size disagrees with annotation"),
]
FOLDERS = {"xml": "Annotations", "jpg": "JPEGImages"}


@pytest.mark.parametrize("corrupted, corrupt, what, named, words", CORRUPTIONS)
def test_bad_file_gets_an_error_naming_it_and_the_image(dataset_root, corrupted, corrupt, what, named, words):
    image_id = first_id(dataset_root)
    corrupt(dataset_root / FOLDERS[corrupted] / f"{image_id}.{corrupted}")
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id, what)
    assert_names(info.value, dataset_root / FOLDERS[named] / f"{image_id}.{named}", image_id, *words)


def test_missing_root_and_missing_split(tmp_path, dataset_root):
    with pytest.raises(DatasetError, match="dataset root does not exist") as info:
        VOCDataset(tmp_path / "nowhere", "trainval")
    assert str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(DatasetError, match=r"split 'train' has no image list; lists found: \['test', 'trainval'\]"):
        VOCDataset(dataset_root, "train", SYNTH_CLASSES)


def test_summary_cli_fails_cleanly_and_writes_nothing(dataset_root, tmp_path):
    image_id = first_id(dataset_root)
    jpg = dataset_root / "JPEGImages" / f"{image_id}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    out = tmp_path / "out" / "summary.json"
    result = subprocess.run([sys.executable, "-m", "wsjds.cli", "data", "summary", "--root", str(dataset_root),
                             "--split", "trainval", "--kind", "synthetic", "--check-images", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert str(jpg) in result.stderr and image_id in result.stderr
    assert not out.exists()


def test_killed_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic.generate_image

    def dies_on_third_image(rng, config):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(rng, config)

    monkeypatch.setattr(synthetic, "generate_image", dies_on_third_image)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "dataset", TINY)
    assert list(tmp_path.iterdir()) == []


def test_malformed_coco_json(tmp_path):
    bad = tmp_path / "instances_trainval.json"
    bad.write_text('{"images": [')
    with pytest.raises(DatasetError) as info:
        COCODataset(bad)
    assert str(bad) in str(info.value) and "not a valid COCO instances JSON" in str(info.value)
    with pytest.raises(DatasetError, match="COCO annotation file is missing"):
        COCODataset(tmp_path / "absent.json")
