"""Bad input gets a clear error naming the file and the image id, and leaves nothing partial behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def test_malformed_xml(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    xml.write_text("<annotation><size><width>12</width></size>")  # never closed
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "malformed or truncated XML")


def test_truncated_xml(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    xml.write_bytes(xml.read_bytes()[: len(xml.read_bytes()) // 2])
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "XML")


def test_xml_without_size(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    xml.write_text("<annotation><filename>x.jpg</filename></annotation>")
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "size/width")


def test_unknown_class_name(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    text = xml.read_text()
    first_name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{first_name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "unknown class name 'unicorn'", "ring")


def test_box_outside_image(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    text = xml.read_text()
    xmax = text.split("<xmax>")[1].split("</xmax>")[0]
    xml.write_text(text.replace(f"<xmax>{xmax}</xmax>", "<xmax>100000</xmax>", 1))
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "xmax")


def test_id_listed_but_annotation_absent(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    xml.unlink()
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id)
    assert_names(info.value, xml, image_id, "listed in ImageSets but not on disk")


def test_id_listed_but_image_absent(dataset_root):
    image_id = first_id(dataset_root)
    jpg = dataset_root / "JPEGImages" / f"{image_id}.jpg"
    jpg.unlink()
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id, "image")
    assert_names(info.value, jpg, image_id, "missing")


def test_truncated_jpeg(dataset_root):
    image_id = first_id(dataset_root)
    jpg = dataset_root / "JPEGImages" / f"{image_id}.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id, "image")
    assert_names(info.value, jpg, image_id, "cannot decode")


def test_unreadable_jpeg(dataset_root):
    image_id = first_id(dataset_root)
    jpg = dataset_root / "JPEGImages" / f"{image_id}.jpg"
    jpg.write_bytes(b"this is not a JPEG at all")
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id, "image")
    assert_names(info.value, jpg, image_id, "cannot decode")


def test_image_size_disagrees_with_annotation(dataset_root):
    image_id = first_id(dataset_root)
    xml = dataset_root / "Annotations" / f"{image_id}.xml"
    text = xml.read_text()
    width = text.split("<width>")[1].split("</width>")[0]
    xml.write_text(text.replace(f"<width>{width}</width>", f"<width>{int(width) + 1}</width>"))
    with pytest.raises(DatasetError) as info:
        load(dataset_root, image_id, "image")
    assert_names(info.value, dataset_root / "JPEGImages" / f"{image_id}.jpg", image_id, "annotation says")


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
