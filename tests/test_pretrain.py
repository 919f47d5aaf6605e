"""Trunk pretraining on synthetic crops: the crops, the BatchNorm fold, the weights file, the config checks."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import yaml

from wsjds import workflow as wf
from wsjds.data.synthetic import DISTRACTOR_KINDS, SynthConfig, generate_crop
from wsjds.model.backbone import VGGC5D, WeightsSpec, build_backbone
from wsjds.model.wsjds import weights_spec
from wsjds.pretrain import PRETRAIN_CLASSES, CropClassifier, PretrainConfig, _PlainClassifier, make_crops, \
    pretrain_trunk
from conftest import REPO

SMALL = (4, 4, 8, 8, 8)


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _tiny_settings(**overrides) -> dict:
    settings = wf.pretrain_settings(_config(), "synth_crops")
    settings["model"].update(widths=list(SMALL), fc_dim=16)
    settings["pretraining"].update({"crops": 90, "held_out": 18, "epochs": 1, "batch": 24, **overrides})
    return settings


def test_crops_are_a_function_of_seed_and_index_with_classes_in_turn():
    cfg = PretrainConfig.from_config(_tiny_settings()["pretraining"])
    images, labels = make_crops(cfg)
    assert images.shape == (90, 64, 64, 3) and images.dtype == np.uint8
    assert labels.tolist() == [i % 9 for i in range(90)]
    assert PRETRAIN_CLASSES == ("ring", "star", "cross", "beetle", "fish", "kite") + DISTRACTOR_KINDS
    again, _ = make_crops(cfg)
    assert np.array_equal(images, again)
    other, _ = make_crops(PretrainConfig.from_config({**_tiny_settings()["pretraining"], "seed": 1}))
    assert np.mean([not np.array_equal(a, b) for a, b in zip(images, other)]) > 0.9


@pytest.mark.parametrize("label", range(6))
def test_a_crop_is_centred_on_its_object(label):
    crop = generate_crop(np.random.default_rng([5, label]), SynthConfig(), 64, label, (0.7, 0.8), 0.0)
    assert crop.image.shape == (64, 64, 3) and len(crop.objects) == 1 and crop.objects[0].label == label
    x1, y1, x2, y2 = crop.objects[0].box
    assert abs((x1 + x2) / 2 - 32) < 12 and abs((y1 + y2) / 2 - 32) < 12   # part classes: the marker shifts the box
    assert max(x2 - x1, y2 - y1) >= 0.6 * 64


def test_distractor_crops_hold_no_object():
    for kind in range(len(DISTRACTOR_KINDS)):
        crop = generate_crop(np.random.default_rng(kind), SynthConfig(), 64, 6 + kind, (0.7, 0.8), 0.0)
        assert crop.objects == [] and crop.image.std() > 0


def test_crop_label_outside_the_classes_is_an_error():
    with pytest.raises(ValueError, match="crop label 9 is outside 0..8"):
        generate_crop(np.random.default_rng(0), SynthConfig(), 64, 9, (0.5, 0.9), 0.0)


def test_folding_batchnorm_keeps_the_classifier_output():
    torch.manual_seed(0)
    net = CropClassifier(VGGC5D(SMALL, fc_dim=16), len(PRETRAIN_CLASSES), dropout=0.5, bn_eps=1e-5)
    for module in net.features:   # statistics and affine far from identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.2, 3)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    crops = torch.randn(3, 3, 64, 64)
    before = net(crops)
    plain = net.folded_trunk()
    after = _PlainClassifier(plain, net.fc8).eval()(crops)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.features)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_pretrained_file_loads_into_the_detector_trunk(tmp_path):
    settings = _tiny_settings()
    out, report = tmp_path / "synth_crops.pth", tmp_path / "report.json"
    result = pretrain_trunk(settings, out, report, progress=False)
    written = json.loads(report.read_text())
    assert written["held_out"] == 18 and written["trained_on"] == 72 and len(written["epochs"]) == 1
    assert written["accuracy"] == result["accuracy"]
    assert abs(written["folded_accuracy"] - written["accuracy"]) < 1e-6   # the fold changes no prediction
    state = torch.load(out, weights_only=True)
    assert {"features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.3.bias"} <= set(state)
    entry = dict(settings["weights"], path=str(out))
    trunk = build_backbone(SMALL, 16, weights_spec(entry), freeze=True)
    torch.testing.assert_close(trunk.features[0].weight, state["features.0.weight"])
    torch.testing.assert_close(trunk.fc6.weight, state["classifier.0.weight"])
    assert not any(p.requires_grad for p in trunk.features.parameters())


def test_a_missing_pretrained_file_says_which_rule_makes_it(tmp_path):
    entry = dict(_config()["weights"]["synth_crops"], path=str(tmp_path / "synth_crops.pth"))
    with pytest.raises(FileNotFoundError, match=r"snakemake --cores 2 .*synth_crops.pth \(rule pretrain_trunk"):
        build_backbone(SMALL, 16, weights_spec(entry), freeze=True)


def test_held_out_must_leave_crops_to_train_on(tmp_path):
    with pytest.raises(ValueError, match="held_out must be in 1..crops-1"):
        pretrain_trunk(_tiny_settings(held_out=90), tmp_path / "w.pth", tmp_path / "r.json", progress=False)
    assert not (tmp_path / "w.pth").exists()


def test_weights_entry_with_pretraining_must_use_the_rule_output_path():
    config = _config()
    wf.check_references(config)
    moved = copy.deepcopy(config)
    moved["weights"]["synth_crops"]["path"] = "data/weights/mine.pth"
    with pytest.raises(ValueError, match="weights.synth_crops.path must be 'results/pretrained/synth_crops.pth'"):
        wf.check_references(moved)
    unknown = copy.deepcopy(config)
    unknown["weights"]["synth_crops"]["pretraining"] = "imagenet_but_tiny"
    with pytest.raises(ValueError, match="weights.synth_crops.pretraining = 'imagenet_but_tiny'"):
        wf.check_references(unknown)
    with pytest.raises(ValueError, match="names no pretraining recipe"):
        wf.pretrain_settings(config, "caffe_vgg16")


def test_train_rounds_wait_for_the_pretrained_trunk():
    config = _config()
    settings = wf.run_settings(config, "synth", "wsjds")
    assert wf.pretrained_inputs(settings) == ["results/pretrained/synth_crops.pth"]
    assert wf.pretrained_inputs(wf.run_settings(config, "voc07", "wsjds")) == []
    assert isinstance(weights_spec(settings["weights"]), WeightsSpec)
