"""The synthetic dataset: deterministic bytes, VOC and COCO views that agree, and the failure modes
the paper is about actually present."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from wsjds.data import SYNTH_CLASSES, VOCDataset
from wsjds.data.coco import COCODataset
from wsjds.data.summary import summarize
from wsjds.data.synthetic import PART_CLASSES, SynthConfig, generate_dataset

SMALL = SynthConfig(num_trainval=24, num_test=8)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "dataset"
    generate_dataset(root, SMALL)
    return root


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    again = tmp_path / "again"
    generate_dataset(again, SMALL)
    assert digest(small) == digest(again)
    other = tmp_path / "other"
    generate_dataset(other, dataclasses.replace(SMALL, seed=1))
    first, second = digest(small), digest(other)
    assert first.keys() == second.keys()
    assert sum(first[k] != second[k] for k in first) > len(first) // 2


def test_layout_and_counts(small):
    for split, count in (("trainval", 24), ("test", 8)):
        dataset = VOCDataset(small, split, SYNTH_CLASSES)
        assert len(dataset) == count
        assert dataset.segmentation_ids() == dataset.ids
        for image_id in dataset.ids:
            ann = dataset.annotation(image_id)
            image = dataset.read_image(image_id)
            assert SMALL.min_side <= image.shape[0] <= SMALL.max_side
            assert SMALL.min_side <= image.shape[1] <= SMALL.max_side
            assert len(ann.labels) >= 1
    trainval, test = (set(VOCDataset(small, s, SYNTH_CLASSES).ids) for s in ("trainval", "test"))
    assert not trainval & test


def test_coco_json_has_the_same_boxes_as_the_voc_xml(small):
    for split in ("trainval", "test"):
        voc = VOCDataset(small, split, SYNTH_CLASSES)
        coco = COCODataset(small / "annotations" / f"instances_{split}.json", small / "JPEGImages")
        assert coco.classes == SYNTH_CLASSES
        by_file = {coco.image_info(i)["file_name"]: i for i in coco.ids}
        assert sorted(by_file) == sorted(f"{i}.jpg" for i in voc.ids)
        for image_id in voc.ids:
            a, b = voc.annotation(image_id), coco.annotation(by_file[f"{image_id}.jpg"])
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_array_equal(a.difficult, b.difficult)
            np.testing.assert_array_equal(a.truncated, b.truncated)
            np.testing.assert_array_equal(voc.image_labels(image_id), coco.image_labels(by_file[f"{image_id}.jpg"]))


def test_masks_agree_with_boxes_and_segmentation_pngs(small):
    voc = VOCDataset(small, "trainval", SYNTH_CLASSES)
    coco = COCODataset(small / "annotations" / "instances_trainval.json", small / "JPEGImages")
    for image_id in voc.ids:
        ann = voc.annotation(image_id)
        masks = coco.masks(str(int(image_id)))
        objects = voc.read_segmentation_object(image_id)
        classes = voc.read_segmentation_class(image_id)
        assert masks.shape == (len(ann.labels), ann.height, ann.width)
        for k, (mask, box, label, difficult) in enumerate(zip(masks, ann.boxes, ann.labels, ann.difficult)):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box)
            labelled = objects == k + 1
            if difficult:   # difficult objects are void in the PNGs, as in VOC
                assert not labelled.any()
            else:           # every labelled pixel lies in the mask; only the void border is missing
                assert labelled.any() and not (labelled & ~mask).any()
                assert (classes[labelled] == label + 1).all()
                assert (objects[mask & ~labelled] == 255).all()


def test_the_papers_failure_modes_are_present(small):
    anns = VOCDataset(small, "trainval", SYNTH_CLASSES).annotations()
    counts = [np.bincount(a.labels[~a.difficult], minlength=len(SYNTH_CLASSES)) for a in anns.values()]
    several_of_one_class = sum(c.max() >= 2 for c in counts)
    assert several_of_one_class >= len(anns) // 3, "too few images with several instances of one class"
    part_labels = [SYNTH_CLASSES.index(n) for n in PART_CLASSES]
    assert sum(np.isin(a.labels, part_labels).any() for a in anns.values()) >= len(anns) // 4
    summary = summarize(anns, SYNTH_CLASSES)
    assert all(c["images_nondifficult"] > 0 for c in summary["classes"].values()), summary
    assert 0 < summary["totals"]["objects_difficult"] < summary["totals"]["objects_nondifficult"]
    assert any(a.truncated.any() for a in anns.values())
    sides = np.concatenate([np.maximum(a.boxes[:, 2] - a.boxes[:, 0], a.boxes[:, 3] - a.boxes[:, 1]) for a in anns.values()])
    assert sides.min() < 40 and sides.max() > 90, "object sizes should spread"


def test_config_yaml_synth_preset_equals_generator_defaults(repo_root):
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    generator = config["datasets"]["synth"]["generator"]
    defaults = {f.name: f.default for f in dataclasses.fields(SynthConfig)}
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in generator.items()} == defaults


def test_inconsistent_knobs_are_rejected():
    with pytest.raises(ValueError, match="min_side <= max_side"):
        SynthConfig(min_side=300, max_side=200)
    with pytest.raises(ValueError, match="object_size"):
        SynthConfig(object_size=(0.6, 0.3))
