"""VOC reader on the real 120-image VOC2007 sample: the summary must equal the sample README's table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from wsjds.data import VOC_CLASSES, VOCDataset
from wsjds.data.summary import summarize

ROW = re.compile(r"^\|\s*(\w+)\s*\|" + r"\s*(\d+) / (\d+)\s*\|\s*(\d+) \+ (\d+)\s*\|" * 2 + r"\s*(\d+)\s*\|\s*(\d+) \+ (\d+)\s*\|$")


def readme_table(sample_dir: Path) -> dict[str, list[int]]:
    """Per-class rows of the sample README's table: 10 integers per class."""
    rows = {}
    for line in (sample_dir / "README.md").read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            rows[match.group(1)] = [int(g) for g in match.groups()[1:]]
    return rows


def test_summary_reproduces_the_sample_readme_table(voc_sample):
    table = readme_table(voc_sample.parent)
    assert sorted(table) == sorted(VOC_CLASSES), "README table not parsed"
    summaries = {s: summarize(VOCDataset(voc_sample, s).annotations(), VOC_CLASSES) for s in ("trainval", "test")}
    for name, expected in table.items():
        tv, te = summaries["trainval"]["classes"][name], summaries["test"]["classes"][name]
        got = [tv["images_nondifficult"], tv["images_only_difficult"], tv["objects_nondifficult"], tv["objects_difficult"],
               te["images_nondifficult"], te["images_only_difficult"], te["objects_nondifficult"], te["objects_difficult"],
               tv["images_nondifficult"] + tv["images_only_difficult"] + te["images_nondifficult"] + te["images_only_difficult"],
               tv["objects_nondifficult"] + te["objects_nondifficult"]]
        assert got == expected[:10], name
        assert tv["objects_difficult"] + te["objects_difficult"] == expected[-1], name
    # README totals: trainval 60 images, 221 objects (56 difficult); test 60 images, 197 objects (44 difficult)
    assert summaries["trainval"]["totals"] == {"images": 60, "objects_nondifficult": 165, "objects_difficult": 56}
    assert summaries["test"]["totals"] == {"images": 60, "objects_nondifficult": 153, "objects_difficult": 44}


def test_summary_cli_json_matches_readme(voc_sample, tmp_path):
    out = tmp_path / "summary.json"
    result = subprocess.run([sys.executable, "-m", "wsjds.cli", "data", "summary", "--root", str(voc_sample),
                             "--split", "trainval", "--json", "--out", str(out)],
                            capture_output=True, text=True, check=True)
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    expected = readme_table(voc_sample.parent)["chair"]
    chair = printed["classes"]["chair"]
    assert [chair["images_nondifficult"], chair["images_only_difficult"], chair["objects_nondifficult"],
            chair["objects_difficult"]] == expected[:4]   # 12 / 1, 18 + 14


def test_annotation_of_000005(voc_sample):
    # 000005.xml: 5 chairs; the first is xmin=263 ymin=211 xmax=324 ymax=339, not difficult.
    ann = VOCDataset(voc_sample, "test").annotation("000005")
    assert (ann.width, ann.height) == (500, 375)
    np.testing.assert_array_equal(ann.boxes[0], [262, 210, 324, 339])
    assert ann.labels.tolist() == [VOC_CLASSES.index("chair")] * 5
    assert ann.difficult.tolist() == [False, False, True, False, True]
    assert ann.truncated.tolist() == [False, False, True, False, True]


def test_image_labels_skip_difficult_unless_asked(voc_sample):
    default = VOCDataset(voc_sample, "trainval")
    with_difficult = VOCDataset(voc_sample, "trainval", include_difficult_labels=True)
    only_difficult = [(i, c) for i in default.ids for c in range(20)
                      if (default.annotation(i).labels == c).any()
                      and default.annotation(i).difficult[default.annotation(i).labels == c].all()]
    assert len(only_difficult) == 21  # the README's "0" column summed over trainval classes
    image_id, label = only_difficult[0]
    assert default.image_labels(image_id)[label] == 0.0
    assert with_difficult.image_labels(image_id)[label] == 1.0
    # The devkit's own per-class list agrees: that image is marked 0 for that class.
    listing = (voc_sample / "ImageSets" / "Main" / f"{VOC_CLASSES[label]}_trainval.txt").read_text()
    assert f"{image_id}  0" in listing


def test_images_and_segmentation_maps(voc_sample):
    dataset = VOCDataset(voc_sample, "trainval")
    image = dataset.read_image("000032")
    assert image.shape == (281, 500, 3) and image.dtype == np.uint8
    seg_ids = dataset.segmentation_ids()
    assert len(seg_ids) == 12 and "000032" in seg_ids
    classes = dataset.read_segmentation_class("000032")
    objects = dataset.read_segmentation_object("000032")
    assert classes.shape == objects.shape == (281, 500)
    # 000032: aeroplanes (index 1) and people (index 15); 255 marks the void borders.
    assert set(np.unique(classes).tolist()) == {0, 1, 15, 255}
    assert set(np.unique(objects).tolist()) == {0, 1, 2, 3, 4, 255}
