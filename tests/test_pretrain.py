"""Trunk pretraining on synthetic scenes: the scenes, the RoI classifier, the BatchNorm fold, the weights file,
the config checks."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from wsjds import workflow as wf
from wsjds.data.synthetic import DISTRACTOR_KINDS, SynthConfig, generate_pretraining_scene
from wsjds.model.backbone import VGGC5D, WeightsSpec
from wsjds.model.backbones import build_backbone
from wsjds.model.wsjds import weights_spec
from wsjds.stages.pretrain import PRETRAIN_CLASSES, PretrainConfig, SceneClassifier, _PlainClassifier, jitter_boxes, \
    make_scenes, pretrain_trunk
from conftest import REPO

SMALL = (4, 4, 8, 8, 8)


def _small_model() -> dict:
    return {**_config()["models"]["vgg16_small"], "widths": list(SMALL), "fc_dim": 16}


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _tiny_settings(**overrides) -> dict:
    settings = wf.pretrain_settings(_config(), "synth_scenes")
    settings["model"].update(widths=list(SMALL), fc_dim=16)
    settings["pretraining"].update({"scenes": 30, "held_out": 6, "side": 64, "epochs": 1, "batch": 8, **overrides})
    return settings


def test_scenes_are_a_function_of_seed_and_index():
    cfg = PretrainConfig.from_config(_tiny_settings()["pretraining"])
    scenes = make_scenes(cfg)
    assert scenes.images.shape == (30, 64, 64, 3) and scenes.images.dtype == np.uint8
    assert PRETRAIN_CLASSES == ("ring", "star", "cross", "beetle", "fish", "kite") + DISTRACTOR_KINDS
    assert len(scenes.labels) == len(scenes.boxes) == len(scenes.scene) >= 30   # 2-5 items drawn, most visible
    assert set(scenes.labels.tolist()) <= set(range(9)) and np.all(np.diff(scenes.scene) >= 0)
    again = make_scenes(cfg)
    assert np.array_equal(scenes.images, again.images) and np.array_equal(scenes.boxes, again.boxes)
    other = make_scenes(PretrainConfig.from_config({**_tiny_settings()["pretraining"], "seed": 1}))
    assert np.mean([not np.array_equal(a, b) for a, b in zip(scenes.images, other.images)]) > 0.9


@pytest.mark.parametrize("label", range(9))
def test_a_scene_boxes_each_visible_item_with_its_label(label):
    scene = generate_pretraining_scene(np.random.default_rng([5, label]), SynthConfig(), 96, np.array([label]),
                                       (0.4, 0.5))
    assert scene.image.shape == (96, 96, 3) and scene.labels.tolist() == [label]
    x1, y1, x2, y2 = scene.boxes[0]
    assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 96
    assert max(x2 - x1, y2 - y1) >= 0.25 * 96   # 38-48 px across; a border may cut it


def test_hidden_items_get_no_box():
    cfg = SynthConfig(difficult_visible_fraction=1.01)   # nothing is visible enough
    scene = generate_pretraining_scene(np.random.default_rng(0), cfg, 96, np.array([0, 6, 3]), (0.3, 0.4))
    assert scene.boxes.shape == (0, 4) and scene.labels.shape == (0,)


def test_scene_label_outside_the_classes_is_an_error():
    with pytest.raises(ValueError, match="pretraining scene label 9 is outside 0..8"):
        generate_pretraining_scene(np.random.default_rng(0), SynthConfig(), 64, np.array([1, 9]), (0.3, 0.5))


def test_jittered_boxes_stay_near_their_box_and_inside_the_scene():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 64.0, 64.0]])
    moved = jitter_boxes(boxes.repeat(100, 1), 0.1, 64, torch.Generator().manual_seed(0)).view(100, 2, 4)
    edge_limit = torch.tensor([4.0, 2.0, 4.0, 2.0])   # 10 % of width 40 / height 20
    assert torch.all((moved[:, 0] - boxes[0]).abs() <= edge_limit + 1e-5)
    assert (moved[:, 0] - boxes[0]).abs().max() > 3.0   # it does move
    assert moved.min() >= 0 and moved.max() <= 64


def test_folding_batchnorm_keeps_the_classifier_output():
    torch.manual_seed(0)
    net = SceneClassifier(VGGC5D(SMALL, fc_dim=16), len(PRETRAIN_CLASSES), 7, dropout=0.5, bn_eps=1e-5)
    for module in net.features:   # statistics and affine far from identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    scenes, boxes = torch.randn(2, 3, 64, 64), torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 4.0, 40.0, 30.0]] * 2)
    owner = torch.tensor([0, 0, 1, 1])
    before = net(scenes, boxes, owner)
    plain = net.folded_trunk()
    after = _PlainClassifier(plain, net.fc8, 7).eval()(scenes, boxes, owner)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.features)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_pretrained_file_loads_into_the_detector_trunk(tmp_path):
    settings = _tiny_settings()
    out, report = tmp_path / "synth_scenes.pth", tmp_path / "report.json"
    result = pretrain_trunk(settings, out, report, progress=False)
    written = json.loads(report.read_text())
    assert written["held_out_scenes"] == 6 and written["trained_on_scenes"] == 24 and len(written["epochs"]) == 1
    assert sum(written["items_per_class"].values()) == written["items"] > written["held_out_items"] > 0
    assert written["accuracy"] == result["accuracy"]
    assert abs(written["folded_accuracy"] - written["accuracy"]) < 1e-6   # the fold changes no prediction
    state = torch.load(out, weights_only=True)
    assert {"features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.3.bias"} <= set(state)
    entry = dict(settings["weights"], path=str(out))
    parts = build_backbone(_small_model(), weights_spec(entry), freeze=True)
    trunk = parts.trunk
    torch.testing.assert_close(trunk.features[0].weight, state["features.0.weight"])
    torch.testing.assert_close(parts.fc6.weight, state["classifier.0.weight"])
    assert not any(p.requires_grad for p in trunk.features.parameters())


def test_a_missing_pretrained_file_says_which_rule_makes_it(tmp_path):
    entry = dict(_config()["weights"]["synth_scenes"], path=str(tmp_path / "synth_scenes.pth"))
    with pytest.raises(FileNotFoundError, match=r"snakemake --cores 2 .*synth_scenes.pth \(rule pretrain_trunk"):
        build_backbone(_small_model(), weights_spec(entry), freeze=True)


def test_held_out_must_leave_scenes_to_train_on(tmp_path):
    with pytest.raises(ValueError, match="held_out must be in 1..scenes-1"):
        pretrain_trunk(_tiny_settings(held_out=30), tmp_path / "w.pth", tmp_path / "r.json", progress=False)
    assert not (tmp_path / "w.pth").exists()


def test_weights_entry_with_pretraining_must_use_the_rule_output_path():
    config = _config()
    wf.check_references(config)
    moved = copy.deepcopy(config)
    moved["weights"]["synth_scenes"]["path"] = "data/weights/mine.pth"
    with pytest.raises(ValueError, match="weights.synth_scenes.path must be 'results/pretrained/synth_scenes.pth'"):
        wf.check_references(moved)
    unknown = copy.deepcopy(config)
    unknown["weights"]["synth_scenes"]["pretraining"] = "imagenet_but_tiny"
    with pytest.raises(ValueError, match="weights.synth_scenes.pretraining = 'imagenet_but_tiny'"):
        wf.check_references(unknown)
    with pytest.raises(ValueError, match="names no pretraining recipe"):
        wf.pretrain_settings(config, "caffe_vgg16")


def test_train_rounds_wait_for_the_pretrained_trunk():
    config = _config()
    config["datasets"]["synth"]["model"] = "vgg16_small"       # the scene-pretrained trunk, asked for by config
    settings = wf.train_settings(config, "synth", "wsjds")
    assert wf.pretrained_inputs(settings) == ["results/pretrained/synth_scenes.pth"]
    assert wf.pretrained_inputs(wf.train_settings(_config(), "synth", "wsjds")) == []   # ImageNet Lite0: no stage
    assert wf.pretrained_inputs(wf.train_settings(config, "voc07", "wsjds")) == []
    assert isinstance(weights_spec(settings["weights"]), WeightsSpec)
