"""Selective Search (OpenCV contrib) on a few real VOC photos and a tiny VOC-layout dataset; shards and merge.

Kept fast: small resize side and 2-3 images. The 120-image measurements are in
benchmarks/proposals_selective_search.py.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from proposal_helpers import make_voc, proposal_settings_file, run_proposals_cli
from wsjds.errors import DatasetError
from wsjds.data.voc import VOCDataset
from wsjds.proposals import (ProposalPolicy, ProposalStore, SelectiveSearchParams, compute_shard, parse_shard,
                             selective_search, shard_ids)
from wsjds.proposals.selective_search import set_num_threads

FAST_SMALL = SelectiveSearchParams(mode="fast", resize_max_side=160, sigma=0.8, base_k=150, inc_k=150, seed=0)
POLICY = ProposalPolicy(min_side=20, max_per_image=2048)
SEARCH = {"mode": "fast", "resize_max_side": 0, "sigma": 0.8, "base_k": 150, "inc_k": 150, "seed": 0}


@pytest.fixture(scope="module")
def real_images(voc_sample):
    dataset = VOCDataset(voc_sample, "trainval")
    return dataset, dataset.ids[:2]


def test_boxes_map_back_to_the_original_image(real_images):
    set_num_threads(1)
    dataset, ids = real_images
    for image_id in ids:
        image = dataset.read_image(image_id)
        height, width = image.shape[:2]
        assert max(width, height) > FAST_SMALL.resize_max_side  # so the resize path is exercised
        boxes = selective_search(image, FAST_SMALL)
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 50
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        # The last merge of the hierarchy is the whole (resized) image; it must map to the whole original.
        assert any(np.allclose(b, [0, 0, width, height]) for b in boxes)


def test_same_image_same_boxes_in_the_same_order(real_images):
    dataset, ids = real_images
    image = dataset.read_image(ids[0])
    first = selective_search(image, FAST_SMALL)
    selective_search(dataset.read_image(ids[1]), FAST_SMALL)  # moves the C rand() state in between
    np.testing.assert_array_equal(selective_search(image, FAST_SMALL), first)
    other_seed = selective_search(image, SelectiveSearchParams(**{**FAST_SMALL.__dict__, "seed": 7}))
    assert {tuple(b) for b in other_seed.tolist()} == {tuple(b) for b in first.tolist()}


def test_quality_mode_finds_more_boxes(real_images):
    dataset, ids = real_images
    image = dataset.read_image(ids[0])
    quality = SelectiveSearchParams(**{**FAST_SMALL.__dict__, "mode": "quality", "resize_max_side": 100})
    fast = SelectiveSearchParams(**{**FAST_SMALL.__dict__, "resize_max_side": 100})
    assert len(selective_search(image, quality)) > len(selective_search(image, fast))


def test_compute_shard_on_real_photos_is_deterministic(real_images, tmp_path):
    dataset, ids = real_images
    digests = set()
    for name in ("a.h5", "b.h5"):
        stats = compute_shard(dataset, ids, tmp_path / name, dataset="voc07", split="trainval", params=FAST_SMALL,
                              policy=POLICY, shard=(0, 1), progress=False)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1 and stats["images"] == 2 and stats["mean_boxes"] > 0
    with ProposalStore.open(tmp_path / "a.h5", dataset="voc07", split="trainval") as store:
        assert store.image_ids == tuple(ids)
        for image_id in ids:
            boxes, scores = store[image_id]
            width, height = dataset.image_size(image_id)
            assert 0 < len(boxes) <= POLICY.max_per_image and (scores == 0).all()
            assert (np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= POLICY.min_side).all()
            assert store.image_size(image_id) == (width, height)
        assert store.parameters["mode"] == "fast" and store.parameters["resize_max_side"] == 160


def test_cli_shards_and_merge_equal_a_single_run(tmp_path):
    images = [(f"{i:06d}", 64 + 8 * i, 48 + 4 * i) for i in range(5)]
    voc = make_voc(tmp_path / "VOC", {"trainval": images}, images=True)
    settings = proposal_settings_file(tmp_path / "settings.json", voc, selective_search=SEARCH,
                                      policy={"min_side": 4, "max_per_image": 300})
    common = ["--settings", settings, "--no-progress"]
    shards = []
    for index in range(3):
        shards.append(str(tmp_path / f"s{index}.h5"))
        assert run_proposals_cli(["proposals", "compute", *common, "--shard", f"{index}/3", "--out", shards[-1]]) == 0
    assert run_proposals_cli(["proposals", "merge", *common, "--out", str(tmp_path / "merged.h5"), *shards]) == 0
    assert run_proposals_cli(["proposals", "compute", *common, "--out", str(tmp_path / "one.h5")]) == 0
    with ProposalStore.open(tmp_path / "merged.h5") as merged, ProposalStore.open(tmp_path / "one.h5") as one:
        assert merged.image_ids == tuple(i for i, _, _ in images)
        for image_id in merged.image_ids:
            np.testing.assert_array_equal(merged[image_id][0], one[image_id][0])
        assert "shard" not in merged.parameters and one.parameters["shard"] == "0/1"
        assert one.parameters["min_side"] == 4.0 and type(one.parameters["min_side"]) is float   # as the field type
    with pytest.raises(DatasetError, match=r"missing: \['000001', '000002'\] \(2\)"):
        run_proposals_cli(["proposals", "merge", *common, "--out", str(tmp_path / "bad.h5"), shards[0], shards[2]])


def test_sharding_helpers():
    ids = [str(i) for i in range(10)]
    blocks = [shard_ids(ids, i, 3) for i in range(3)]
    assert blocks == [("0", "1", "2"), ("3", "4", "5"), ("6", "7", "8", "9")]
    assert shard_ids(ids, 0, 1) == tuple(ids) and shard_ids(ids[:1], 1, 2) == ("0",)
    assert parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    with pytest.raises(SystemExit):
        run_proposals_cli(["proposals", "compute", "--shard", "3/2"])
