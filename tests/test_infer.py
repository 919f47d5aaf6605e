"""WSOD inference: test-time augmentation, per-class NMS and the per-image cap, shards and merge."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wsjds.data.classes import SYNTH_CLASSES
from wsjds.errors import ArtifactError, DatasetError
from wsjds.data.synthetic import SynthConfig, generate_dataset
from wsjds.data.transforms import inference_views
from wsjds.data.voc import VOCDataset
from wsjds.artifacts.detections import DetectionStore
from wsjds.stages.infer import InferenceConfig, detect_split, postprocess, proposal_scores, wsddn_scorer
from wsjds.model.backbone import PixelConvention, VGGC5D
from wsjds.model.wsddn import WSDDNHead
from wsjds.model.wsjds import WSJDSModel
from wsjds.proposals.store import ProposalWriter
from wsjds.artifacts.shards import merge_shards, shard_ids

CFG = InferenceConfig(scales=(64, 80), max_side=200, flip=True, max_proposals=50, nms_iou=0.5,
                      max_detections=100, score_threshold=1e-9)


def test_postprocess_is_per_class_nms_then_a_cap():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)   # IoU(0, 1) = 81/119
    x = np.array([[0.9, 0.2], [0.8, 0.7], [0.0, 0.6]], np.float32)
    kept_boxes, scores, labels = postprocess(boxes, x, CFG)
    # class 0: box 0 suppresses box 1; box 2 scores 0 (below threshold). class 1: boxes 1 and 2 survive,
    # box 0 (0.2) is suppressed by box 1 (0.7) of its own class.
    assert scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(kept_boxes, boxes[[0, 1, 2]])
    capped = postprocess(boxes, x, InferenceConfig(**{**CFG.__dict__, "max_detections": 2}))
    assert capped[1].tolist() == pytest.approx([0.9, 0.7])


def tiny_model() -> WSJDSModel:
    torch.manual_seed(0)
    trunk = VGGC5D((4, 4, 8, 8, 8), fc_dim=16)
    fc6, fc7 = trunk.take_classifier()
    head = WSDDNHead(8, 16, len(SYNTH_CLASSES), fc6=fc6, fc7=fc7, score_boost=False)
    trunk.freeze(len(trunk.layers))
    return WSJDSModel(trunk, head, None, PixelConvention("RGB", 1.0, (0.5,) * 3, (0.25,) * 3)).eval()


def test_test_time_passes_are_averaged(tmp_path):
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 40, 40], [20, 10, 90, 70]], np.float32)
    single = [proposal_scores(model, image, boxes, np.zeros(2, np.float32),
                              InferenceConfig(**{**CFG.__dict__, "scales": (s,), "flip": False}), torch.device("cpu"))
              for s in (64, 80)]
    both = proposal_scores(model, image, boxes, np.zeros(2, np.float32),
                           InferenceConfig(**{**CFG.__dict__, "flip": False}), torch.device("cpu"))
    assert both.shape == (2, len(SYNTH_CLASSES))
    np.testing.assert_allclose(both, (single[0] + single[1]) / 2, rtol=1e-5)
    flipped = proposal_scores(model, image, boxes, np.zeros(2, np.float32), CFG, torch.device("cpu"))
    assert not np.allclose(flipped, both)          # the flipped passes count too


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    generate_dataset(root / "dataset", SynthConfig(num_trainval=2, num_test=5, min_side=64, max_side=80))
    source = VOCDataset(root / "dataset", "test", SYNTH_CLASSES)
    store = root / "test.h5"
    rng = np.random.default_rng(0)
    with ProposalWriter(store, dataset="synth", split="test", source="random", parameters={}) as writer:
        for image_id in source.ids:
            width, height = source.image_size(image_id)
            corner = rng.uniform(0, 0.6, (30, 2)) * [width, height]
            boxes = np.concatenate([corner, corner + rng.uniform(0.2, 0.4, (30, 2)) * [width, height]], 1)
            boxes = np.minimum(boxes, [width, height, width, height]).astype(np.float32)
            writer.append(image_id, width, height, boxes, np.zeros(30, np.float32))
    return source, store


def test_shards_merge_into_the_unsharded_result(tiny_split, tmp_path):
    source, store = tiny_split
    model = tiny_model()
    kwargs = dict(dataset="synth", split="test", classes=SYNTH_CLASSES, source_name="test", progress=False)
    scorer = wsddn_scorer(model, CFG, torch.device("cpu"))
    detect_split(scorer, source, store, source.ids, tmp_path / "all.h5", CFG, **kwargs)
    shards = []
    for index in range(2):
        path = tmp_path / f"shard{index}.h5"
        detect_split(scorer, source, store, shard_ids(source.ids, index, 2), path, CFG, **kwargs)
        shards.append(path)
    merge_shards(DetectionStore, shards[::-1], tmp_path / "merged.h5", source.ids, dataset="synth", split="test")
    with DetectionStore.open(tmp_path / "all.h5") as whole, DetectionStore.open(tmp_path / "merged.h5") as merged:
        assert whole.image_ids == merged.image_ids == source.ids
        for image_id in source.ids:
            a, b = whole[image_id], merged[image_id]
            np.testing.assert_array_equal(a.boxes, b.boxes)
            np.testing.assert_array_equal(a.scores, b.scores)
            assert 0 < len(a) <= CFG.max_detections
    with pytest.raises(DatasetError, match="missing"):
        merge_shards(DetectionStore, shards[:1], tmp_path / "bad.h5", source.ids, dataset="synth", split="test")
    assert not (tmp_path / "bad.h5").exists()
    other = replace(CFG, nms_iou=0.25)   # a shard detected with other settings must not join the others
    detect_split(scorer, source, store, shard_ids(source.ids, 1, 2), shards[1], other, **kwargs)
    with pytest.raises(ArtifactError, match=r"shard1\.h5.*shard parameters .*'nms_iou': 0\.25.*differ from .*'nms_iou': 0\.5"):
        merge_shards(DetectionStore, shards, tmp_path / "bad.h5", source.ids, dataset="synth", split="test")
    assert not (tmp_path / "bad.h5").exists()


def test_inference_views_are_scales_then_flips_and_map_boxes_back():
    image = np.zeros((40, 60, 3), np.uint8)
    boxes = np.array([[5, 8, 30, 20]], np.float32)
    views = list(inference_views(image, boxes, (20, 30), max_side=40, flip=True))
    # shorter side 20: factor 0.5 -> 30 x 20; shorter side 30 would make the longer 45 > 40: factor 2/3 -> 40 x 27
    assert [(v.pixels.shape[:2], v.flipped) for v in views] == [((20, 30), False), ((20, 30), True),
                                                              ((27, 40), False), ((27, 40), True)]
    np.testing.assert_allclose(views[1].rois, [[15, 4, 27.5, 10]])      # x -> 30 - x after halving
    np.testing.assert_allclose(views[2].box_scale, [40 / 60, 27 / 40] * 2, rtol=1e-6)
    for view in views:
        np.testing.assert_allclose(view.boxes_to_image(view.rois.copy()), boxes, rtol=1e-5)


def test_an_inference_preset_is_read_as_the_field_types():
    preset = {"scales": [176, 208.0], "max_side": 400, "flip": 1, "max_proposals": 500, "nms_iou": 0,
              "max_detections": 100, "score_threshold": 0}
    cfg = InferenceConfig.from_config(preset)
    assert cfg.scales == (176, 208) and all(type(s) is int for s in cfg.scales)
    assert type(cfg.nms_iou) is float and type(cfg.score_threshold) is float and cfg.flip is True
    with pytest.raises(KeyError, match="max_side"):
        InferenceConfig.from_config({k: v for k, v in preset.items() if k != "max_side"})
