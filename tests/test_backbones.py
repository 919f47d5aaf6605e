"""Backbone families: VGG16-C5D outputs pinned, EfficientNet-Lite0's ImageNet weights mapped and checked
by logits, freezing, strides, the registry, and the frozen-feature cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wsjds.cgl.objective import CGLConfig, Method, cgl_objective
from wsjds.model.backbone import PixelConvention, WeightsSpec
from wsjds.model.backbones import BACKBONES, build_backbone, register_backbone
from wsjds.model.efficientnet import EfficientNetLite0, map_package_keys, weights_file_of_package
from wsjds.model.feature_cache import FrozenFeatureCache
from wsjds.model.wsjds import build_model, weights_spec

CONFIG = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
VOC_SAMPLE = Path(os.environ.get("WSJDS_VOC_SAMPLE", Path(__file__).parents[2] / "shared" / "data" / "voc2007_sample"))


def _model(name: str, num_classes: int = 3, segmentation: bool = True, with_file: bool = False, **overrides):
    model_cfg = {**CONFIG["models"][name], **overrides}
    return build_model(model_cfg, weights_spec(CONFIG["weights"][model_cfg["weights"]], with_file=with_file),
                       num_classes, segmentation)


def _inputs():
    rgb = torch.randint(0, 256, (3, 64, 80), generator=torch.Generator().manual_seed(1)).float()
    rois = torch.tensor([[0., 0., 40., 30.], [10., 5., 70., 60.], [20., 20., 79., 63.]])
    return rgb, rois


@pytest.mark.parametrize("name, x_sum, x_row0, seg_sum, feature_abs_sum", [
    # Recorded on commit aaba6d4 (before the backbone interface) with the same seed and input.
    ("vgg16_c5d", 0.8588807354317396, [0.00014808464038651437, 0.0004931605653837323, 0.09085329622030258],
     -2285.556885778904, 178968.54113802686),
    ("vgg16_small", 1.0000621527433395, [0.11254319548606873, 0.10588347911834717, 0.1118498370051384],
     4.022098235785961, 1410.2242433992215),
])
def test_vgg_outputs_are_pinned_across_the_backbone_interface(name, x_sum, x_row0, seg_sum, feature_abs_sum):
    torch.manual_seed(0)
    model = _model(name).eval()
    rgb, rois = _inputs()
    with torch.no_grad():
        out = model(rgb[None], rois)
    assert out.det.x.double().sum().item() == pytest.approx(x_sum, rel=1e-5)
    assert out.det.x[0].tolist() == pytest.approx(x_row0, rel=1e-4)
    assert out.seg_logits.double().sum().item() == pytest.approx(seg_sum, rel=1e-4)
    assert out.features.double().abs().sum().item() == pytest.approx(feature_abs_sum, rel=1e-5)


def test_efficientnet_package_keys_all_land_and_logits_equal_timm():
    timm = pytest.importorskip("timm", reason="timm (test extra) cross-checks the EfficientNet-Lite0 architecture")
    state = torch.load(weights_file_of_package(), map_location="cpu", weights_only=True)
    assert len(state) == 296
    ours = EfficientNetLite0(7, 32, with_classifier=True)
    ours.load_package_state_dict(state)
    assert set(map_package_keys(state)) == set(ours.state_dict())      # every tensor of the file is used
    reference = timm.create_model("efficientnet_lite0", pretrained=False)
    theirs = reference.state_dict()
    assert len(theirs) == len(ours.state_dict())
    # Same architecture: the two state dicts line up tensor by tensor in module order.
    aligned = {}
    for (key, tensor), (_, mine) in zip(theirs.items(), ours.state_dict().items()):
        assert tensor.shape == mine.shape, key
        aligned[key] = mine
    reference.load_state_dict(aligned)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-3                  # the TensorFlow epsilon the weights were trained with
    image = (torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 255 - 127) / 128
    with torch.no_grad():
        mine, ref = ours.eval().classify(image), reference.eval()(image)
    assert torch.allclose(mine, ref, atol=1e-4, rtol=1e-4)
    assert mine.argmax().item() == ref.argmax().item()


def test_efficientnet_classifies_real_photos():
    """Top-5 ImageNet classes of the VOC sample's single-class photos hit the right class group."""
    if not VOC_SAMPLE.is_dir():
        pytest.skip(f"VOC2007 sample not found at {VOC_SAMPLE} (set WSJDS_VOC_SAMPLE)")
    import cv2
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from wsjds.data.classes import classes_for
    from wsjds.data.voc import VOCDataset

    groups = {"car": {"racer", "sports car", "minivan", "police van", "cab", "convertible", "beach wagon", "jeep",
                      "limousine", "Model T", "pickup", "ambulance", "minibus", "grille", "car wheel"},
              "aeroplane": {"airliner", "warplane", "wing", "airship", "space shuttle"},
              "cat": {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"},
              "bus": {"trolleybus", "school bus", "minibus", "passenger car", "fire engine"},
              "train": {"passenger car", "electric locomotive", "steam locomotive", "streetcar", "freight car"}}
    net = EfficientNetLite0(7, 32, with_classifier=True)
    net.load_package_state_dict(torch.load(weights_file_of_package(), map_location="cpu", weights_only=True))
    net.eval()
    classes = classes_for("voc")
    dataset = VOCDataset(VOC_SAMPLE / "VOC2007", "trainval", classes, False)
    hits = total = 0
    for image_id in dataset.ids:
        labels = dataset.image_labels(image_id)
        name = classes[int(labels.argmax())]
        if labels.sum() != 1 or name not in groups:
            continue
        pixels = torch.from_numpy(cv2.resize(dataset.read_image(image_id), (224, 224))).permute(2, 0, 1).float()
        with torch.no_grad():
            top5 = net.classify(((pixels - 127) / 128)[None])[0].topk(5).indices.tolist()
        hits += bool(groups[name] & {_IMAGENET_CATEGORIES[i] for i in top5})
        total += 1
    assert total >= 5
    assert hits >= 0.8 * total


def test_batchnorm_folding_keeps_the_trunk_function():
    trunk = EfficientNetLite0(5, 16)
    trunk.load_package_state_dict(torch.load(weights_file_of_package(), map_location="cpu", weights_only=True))
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = trunk.eval()(image)
        trunk.fold_batchnorm()
        after = trunk.train()(image)        # no BatchNorm left: the mode no longer matters
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride, last_stage, channels, size", [(16, 5, 112, (13, 18)), (8, 5, 112, (26, 36)),
                                                                (16, 4, 80, (13, 18)), (32, 7, 320, (7, 9))])
def test_efficientnet_strides(stride, last_stage, channels, size):
    trunk = EfficientNetLite0(last_stage, stride)
    assert (trunk.stride, trunk.out_channels) == (stride, channels)
    assert tuple(trunk(torch.zeros(1, 3, 208, 288)).shape) == (1, channels, *size)


def test_freezing_a_trunk_but_its_last_stage():
    cfg = {**CONFIG["models"]["efficientnet_lite0"], "trainable_stages": 1}
    spec = weights_spec(CONFIG["weights"]["imagenet_efficientnet_lite0"], with_file=False)
    trunk = build_backbone(cfg, spec).trunk
    assert trunk.frozen_layers == 5                      # stem + stages 1-4
    trained = {n.split(".")[1] for n, p in trunk.named_parameters() if p.requires_grad}
    assert trained == {"5"}
    trunk.train()
    assert all(not m.training for m in trunk.layers[:5]) and trunk.layers[5].training
    frozen = build_backbone(CONFIG["models"]["efficientnet_lite0"], spec).trunk
    assert frozen.fully_frozen and not any(p.requires_grad for p in frozen.parameters())


def test_registry_rejects_unknown_and_repeated_families(tmp_path):
    with pytest.raises(ValueError, match="not among the registered families"):
        build_backbone({**CONFIG["models"]["vgg16_small"], "backbone": "resnet"},
                       WeightsSpec(None, PixelConvention("RGB", 1.0, (0.5,) * 3, (0.25,) * 3)))
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone("vgg_c5d")(BACKBONES["vgg_c5d"])
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build_backbone(CONFIG["models"]["vgg16_small"],
                       WeightsSpec(str(missing), PixelConvention("RGB", 1.0, (0.5,) * 3, (0.25,) * 3)))


def test_package_weights_file_is_named_by_the_entry():
    spec = weights_spec(CONFIG["weights"]["imagenet_efficientnet_lite0"])
    assert spec.path == weights_file_of_package() and Path(spec.path).is_file()


@pytest.mark.parametrize("method_name, tau", [("wsjds", 0.0), ("wsjds", 1.1), ("wsddn", 0.7), ("parallel", 0.7)])
def test_feature_cache_hit_and_miss_give_the_same_loss(method_name, tau):
    """tau 0 opens every gate (the trunk reruns for pixel gradients), 1.1 none."""
    torch.manual_seed(0)
    method = Method.from_config(CONFIG["methods"][method_name])
    model = _model("efficientnet_lite0", num_classes=3, segmentation=method.segmentation, fc_dim=32,
                   aspp_hidden=16).train()
    cfg = CGLConfig.from_config({**CONFIG["cgl"], "tau": tau})
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (1, 3, 96, 128)).astype(np.float32))
    xy = rng.uniform(0, 60, (40, 2))
    rois = torch.from_numpy(np.concatenate([xy, xy + rng.uniform(16, 60, (40, 2))], 1).astype(np.float32))
    labels = torch.tensor([1.0, 0.0, 1.0])
    cache = FrozenFeatureCache(model)

    def loss(frozen):
        torch.manual_seed(5)
        objective = cgl_objective(model, image, rois, None, labels, method, cfg, True, None, frozen_features=frozen)
        grads = torch.autograd.grad(objective.loss, [model.detection.fc8c.weight])
        return objective, grads[0]

    plain, plain_grad = loss(None)
    miss, _ = loss(cache.features(("a", False, 96), image))
    hit, hit_grad = loss(cache.features(("a", False, 96), image))
    assert (cache.misses, cache.hits) == (1, 1)
    for other in (miss, hit):
        assert float(other.loss.detach()) == pytest.approx(float(plain.loss.detach()), rel=1e-6, abs=1e-6)
        assert other.terms.keys() == plain.terms.keys()
    assert torch.allclose(hit_grad, plain_grad, rtol=1e-5, atol=1e-7)
    gate_opens = method.det_to_seg and tau == 0.0
    assert hit.stats["gate_open"] == float(gate_opens)


def test_feature_cache_needs_an_augmentation_that_only_flips_and_rescales():
    from wsjds import workflow as wf

    config = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())
    config["training"]["synth_cpu"]["feature_cache"] = True
    wf.check_references(config)
    config["training"]["synth_cpu"]["augmentation"]["saturation"] = 1.5
    with pytest.raises(ValueError, match="training.synth_cpu.feature_cache needs pixels fixed"):
        wf.check_references(config)


def test_cli_gives_torch_exactly_the_threads_asked_for(monkeypatch):
    from wsjds.cli import set_cpu_threads

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)          # restored after the test
    previous = torch.get_num_threads()
    try:
        set_cpu_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
        with pytest.raises(SystemExit, match="at least 1"):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(previous)
