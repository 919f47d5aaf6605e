"""Tags datasets (images + a CSV of image-level tags): the check, the reader, the classification
metric, and the chain on the VOC sample's photos with their boxes kept away from training."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from wsjds.errors import DatasetError
from wsjds.data.kinds import open_split
from wsjds.data.tags import SplitRule, TagsDataset, prepare_tags_dataset
from wsjds.evaluation.classification import evaluate_classification, image_scores
from wsjds.evaluation.detections_io import FlatDetections
from workflow_plan import snakemake, tiny_config

RULE = SplitRule("trainval", "test", test_fraction=0.5, seed=0)
# every class in 3 of the 4 images: any 2-image test draw leaves both classes in training
ROWS = [("a.jpg", "cat"), ("b.png", "dog"), ("sub/c.JPEG", "cat dog"), ("d.jpg", "dog cat")]


def make_images(folder, rows=ROWS, size=(40, 30)):
    for name, _ in rows:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (120, 60, 30)).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def write_csv(path, rows, header=("image", "tags")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def tags_input(tmp_path):
    images = tmp_path / "images"
    make_images(images)
    Image.new("RGB", (8, 8)).save(images / "unlisted.jpg")
    return images, write_csv(tmp_path / "labels.csv", ROWS)


def test_prepare_writes_splits_sizes_and_labels(tags_input, tmp_path):
    images, labels = tags_input
    manifest = prepare_tags_dataset(images, labels, tmp_path / "root", RULE, progress=False)
    assert manifest["classes"] == ["cat", "dog"] and manifest["splits"] == {"trainval": 2, "test": 2}
    assert manifest["unlisted_images_skipped"] == 1 and "boxes" not in manifest
    train, test = TagsDataset(tmp_path / "root", "trainval"), TagsDataset(tmp_path / "root", "test")
    assert sorted(train.ids + test.ids) == ["a", "b", "d", "sub/c"]
    both = train if "sub/c" in train.ids else test
    assert both.image_labels("sub/c").tolist() == [1.0, 1.0] and both.image_size("sub/c") == (40, 30)
    assert both.read_image("sub/c").shape == (30, 40, 3)
    assert both.image_path("sub/c") == images.resolve() / "sub/c.JPEG"
    with pytest.raises(DatasetError, match="no box annotations"):
        both.annotation("sub/c")
    # the same seed gives the same split; the reader is what every stage opens for kind tags
    again = prepare_tags_dataset(images, labels, tmp_path / "again", RULE, progress=False)
    assert again["splits"] == manifest["splits"]
    assert open_split("tags", tmp_path / "again", "test").ids == test.ids


@pytest.mark.parametrize("case, expected", [
    ("header", "expected the header 'image,tags' on row 1"),
    ("no_tags", "row 3: image 'b.png' has no tags"),
    ("unknown_tag", "row 2: image 'a.jpg' has tags ['bird'] not among classes"),
    ("duplicate", "row 6: image 'a.jpg' is listed again (first on row 2)"),
    ("missing_image", "image file is missing"),
    ("unreadable", "cannot decode image"),
    ("not_an_image", "row 6: 'notes.txt' is not a"),
    ("class_without_training_image", "classes ['cow'] have no image in the 'trainval' split"),
    ("split_file_unknown_split", "row 2: expected image,split with split one of ['trainval', 'test']"),
])
def test_bad_input_names_file_and_row(tags_input, tmp_path, case, expected):
    images, labels = tags_input
    rows, classes, rule = list(ROWS), None, RULE
    header = ("image", "tags")
    if case == "header":
        header = ("file", "labels")
    elif case == "no_tags":
        rows[1] = ("b.png", " ")
    elif case == "unknown_tag":
        rows[0], classes = ("a.jpg", "bird"), ["cat", "dog"]
    elif case == "duplicate":
        rows.append(("a.jpg", "dog"))
    elif case == "missing_image":
        (images / "d.jpg").unlink()
    elif case == "unreadable":
        (images / "d.jpg").write_bytes(b"not a jpeg")
    elif case == "not_an_image":
        rows.append(("notes.txt", "cat"))
    elif case == "class_without_training_image":
        classes = ["cat", "dog", "cow"]
    elif case == "split_file_unknown_split":
        split_file = write_csv(tmp_path / "split.csv", [(name, "val") for name, _ in ROWS], ("image", "split"))
        rule = SplitRule("trainval", "test", split_file=str(split_file))
    write_csv(labels, rows, header)
    with pytest.raises(DatasetError) as info:
        prepare_tags_dataset(images, labels, tmp_path / "root", rule, classes, progress=False)
    assert expected in str(info.value)
    assert str(labels) in str(info.value) or str(images) in str(info.value) or "split.csv" in str(info.value)
    assert not (tmp_path / "root").exists()


def test_split_file_assigns_named_splits(tags_input, tmp_path):
    images, labels = tags_input
    split_file = write_csv(tmp_path / "split.csv", [("a.jpg", "test"), ("b.png", "trainval"), ("sub/c.JPEG", "trainval"),
                                                    ("d.jpg", "trainval")], ("image", "split"))
    prepare_tags_dataset(images, labels, tmp_path / "root", SplitRule("trainval", "test", split_file=str(split_file)),
                         progress=False)
    assert TagsDataset(tmp_path / "root", "test").ids == ("a",)
    assert TagsDataset(tmp_path / "root", "trainval").ids == ("b", "sub/c", "d")


def test_classification_ap_by_hand():
    # class 0 ranked pos (0.9), neg (0.8), pos (0.1): precision 1 at recall 1/2, 2/3 at recall 1
    labels = np.array([[1, 0], [0, 1], [1, 0]])
    dets = FlatDetections.from_lists(("x", "y", "z"), [0, 1, 2, 1], np.zeros((4, 4)), [0.9, 0.8, 0.1, 0.3], [0, 0, 0, 1])
    scores = image_scores(dets, 2)
    assert scores.tolist() == [[0.9, 0.0], [0.8, 0.3], [0.1, 0.0]]
    result = evaluate_classification(labels, scores, ("cat", "dog"))
    assert result.per_class["cat"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert result.per_class["dog"] == pytest.approx(1.0) and result.mean == pytest.approx((5 / 6 + 1) / 2)


# --- the chain on real photos -------------------------------------------------------------------

TRAIN_IMAGES, TEST_IMAGES = 12, 6


def voc_tags(voc_sample, tmp_path):
    """A tags dataset of the first VOC2007 sample photos: the images copied, a CSV of each image's
    non-difficult classes derived from its XML, and a split file; the XML stays in another folder."""
    images, rows, splits = tmp_path / "photos", [], []
    images.mkdir()
    for split, count in (("trainval", TRAIN_IMAGES), ("test", TEST_IMAGES)):
        ids = (voc_sample / "ImageSets/Main" / f"{split}.txt").read_text().split()[:count]
        for image_id in ids:
            root = ET.parse(voc_sample / "Annotations" / f"{image_id}.xml").getroot()
            tags = sorted({o.findtext("name") for o in root.findall("object") if o.findtext("difficult") != "1"})
            shutil.copy(voc_sample / "JPEGImages" / f"{image_id}.jpg", images / f"{image_id}.jpg")
            rows.append((f"{image_id}.jpg", " ".join(tags)))
            splits.append((f"{image_id}.jpg", split))
    labels = write_csv(tmp_path / "labels.csv", rows)
    split_file = write_csv(tmp_path / "split.csv", splits, ("image", "split"))
    classes = sorted({t for _, tags in rows[:TRAIN_IMAGES] for t in tags.split()})
    return images, labels, split_file, classes, rows


def tags_config(images, labels, split_file, classes, boxes=None) -> dict:
    tiny = tiny_config()
    return {**{k: v for k, v in tiny.items() if k != "datasets"}, "datasets": {"mine": {
        "kind": "tags", "images": str(images), "labels": str(labels), "classes": classes,
        "split": {"split_file": str(split_file)}, "boxes": boxes, "train_split": "trainval", "test_split": "test",
        "model": "efficientnet_lite0", "training": "synth_cpu", "inference": "synth_cpu", "frcnn": "synth_cpu",
        "proposals": {"shards": 1}}}, "default_dataset": "mine"}


def test_voc_photos_as_tags_through_the_chain_and_predict(voc_sample, tmp_path):
    from test_workflow import check_predict_outputs

    images, labels, split_file, classes, rows = voc_tags(voc_sample, tmp_path)
    # test images whose classes never appear in training would break the class list: keep them
    rows = [r for r in rows[:TRAIN_IMAGES]] + [r for r in rows[TRAIN_IMAGES:] if set(r[1].split()) <= set(classes)]
    write_csv(labels, rows)
    write_csv(split_file, [(name, "trainval" if k < TRAIN_IMAGES else "test") for k, (name, _) in enumerate(rows)],
              ("image", "split"))
    work = tmp_path / "work"
    work.mkdir()
    config = tags_config(images, labels, split_file, classes)
    result = snakemake(work, "--cores", "2", configs=(config,))
    assert result.returncode == 0, result.stderr[-4000:]
    headline = json.loads((work / "results/mine_frcnn_map.json").read_text())
    assert "no box annotations" in headline["box_metrics"] and "frcnn_map" not in headline
    assert set(headline["frcnn_cls_map"]["per_class"]) == set(classes)
    assert 0 <= headline["wsod_cls_map"]["mean"] <= 1
    assert sum(headline["pseudo_gt"]["boxes_per_class"].values()) >= TRAIN_IMAGES
    assert (work / "results/mine/wsjds/frcnn/report/gallery_test.png").stat().st_size > 0
    test_images = sorted(images / name for name, _ in rows[TRAIN_IMAGES:])[:3]
    check_predict_outputs(work / "results/mine/wsjds/frcnn", test_images, tmp_path / "predicted", classes,
                          with_masks=True)
    # The same photos with their XML as `boxes`: the VOC mAP of the test split comes out, and no
    # training job reruns (the boxes reach the evaluation settings only).
    config["datasets"]["mine"]["boxes"] = str(voc_sample / "Annotations")
    result = snakemake(work, "--cores", "2", "results/mine/wsjds/frcnn/metrics/test_map.json", configs=(config,))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "train_round" not in result.stdout + result.stderr and "frcnn_round" not in result.stdout + result.stderr
    metric = json.loads((work / "results/mine/wsjds/frcnn/metrics/test_map.json").read_text())
    assert set(metric["per_class"]) == set(classes) and 0 <= metric["mean"] <= 1


@pytest.mark.parametrize("layout", ["voc_xml", "coco_json"])
def test_boxes_for_evaluation_from_voc_xml_or_coco_json(tags_input, tmp_path, layout):
    images, labels = tags_input
    prepare_tags_dataset(images, labels, tmp_path / "root", SplitRule("trainval", "test", test_fraction=0.5, seed=0),
                         progress=False)
    split = "trainval" if "a" in TagsDataset(tmp_path / "root", "trainval").ids else "test"
    if layout == "voc_xml":
        boxes = tmp_path / "xml"
        boxes.mkdir()
        (boxes / "a.xml").write_text("<annotation><size><width>40</width><height>30</height></size><object>"
                                     "<name>cat</name><difficult>0</difficult><bndbox><xmin>3</xmin><ymin>4</ymin>"
                                     "<xmax>20</xmax><ymax>25</ymax></bndbox></object></annotation>")
    else:
        boxes = tmp_path / "instances.json"
        boxes.write_text(json.dumps({
            "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}],
            "categories": [{"id": 1, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 5, "name": "cow"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 3, 18, 22], "area": 396,
                             "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}]}))
    dataset = TagsDataset(tmp_path / "root", split, boxes)
    annotation = dataset.annotation("a")
    # VOC's 1-based inclusive (3, 4, 20, 25) and COCO's [2, 3, 18, 22] are the same box; cow is not a class here
    assert annotation.boxes.tolist() == [[2.0, 3.0, 20.0, 25.0]] and annotation.labels.tolist() == [0]
    assert dataset.image_labels("a").tolist() == [1.0, 0.0]   # training's labels still come from the tags
    with pytest.raises(DatasetError, match="box annotations not found"):
        TagsDataset(tmp_path / "root", split, tmp_path / "nowhere")
