"""The WS-JDS network: backbone geometry, weights loading, the two-stream scores, the safe BCE."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from wsjds.model.backbone import PixelConvention, VGGC5D, WeightsSpec
from wsjds.model.backbones import build_backbone
from wsjds.model.wsddn import WSDDNHead, image_bce, two_stream_scores

SMALL = (4, 4, 8, 8, 8)
RGB01 = PixelConvention("RGB", 1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def vgg_cfg(widths=SMALL, fc_dim=16, freeze=False, group_norm=0) -> dict:
    return {"backbone": "vgg_c5d", "widths": list(widths), "fc_dim": fc_dim, "roi_size": 7, "group_norm": group_norm,
            "freeze_backbone": freeze, "trainable_stages": 0}


@pytest.mark.parametrize("height, width", [(480, 640), (161, 223), (64, 72)])
def test_c5d_feature_geometry(height, width):
    # pool4 kernel 2 stride 1 and no pool5: stride 8 and one cell lost per side (reference §1.1)
    features = VGGC5D(SMALL, fc_dim=16)(torch.zeros(1, 3, height, width))
    assert features.shape == (1, 8, height // 8 - 1, width // 8 - 1)


def test_group_norm_variant_keeps_the_c5d_geometry(tmp_path):
    trunk = VGGC5D(SMALL, fc_dim=16, group_norm=2)
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in trunk.features) == 13
    assert trunk(torch.zeros(1, 3, 64, 72)).shape == (1, 8, 7, 8)
    path = tmp_path / "vgg16.pth"
    torch.save({}, path)
    with pytest.raises(ValueError, match="GroupNorm"):
        build_backbone(vgg_cfg(group_norm=2), WeightsSpec(str(path), RGB01))


def test_full_width_backbone_is_torchvision_vgg16_with_c5d_surgery():
    trunk = VGGC5D()
    convs = [m for m in trunk.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in trunk.features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(convs) == 13 and len(pools) == 4
    assert [c.dilation for c in convs[-3:]] == [(2, 2)] * 3 and [c.padding for c in convs[-3:]] == [(2, 2)] * 3
    assert pools[-1].stride == 1 and pools[-1].kernel_size == 2
    assert trunk.fc6.in_features == 512 * 49 and trunk.fc7.out_features == 4096


def test_weights_load_from_a_torchvision_layout_file_and_freeze(tmp_path):
    reference = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(reference.state_dict(), path)
    parts = build_backbone(vgg_cfg((64, 128, 256, 512, 512), 4096, freeze=True), WeightsSpec(str(path), RGB01))
    trunk = parts.trunk
    assert torch.equal(trunk.features[0].weight, reference.features[0].weight)
    assert torch.equal(trunk.features[28].weight, reference.features[28].weight)
    assert torch.equal(parts.fc6.weight, reference.classifier[0].weight) and parts.out_dim == 4096
    assert not any(p.requires_grad for p in trunk.features.parameters())
    assert parts.fc6.weight.requires_grad


def test_missing_weights_file_names_the_path_and_how_to_get_it(tmp_path):
    missing = tmp_path / "nope" / "vgg16.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_backbone(vgg_cfg(), WeightsSpec(str(missing), RGB01))
    assert str(missing) in str(info.value) and "vgg16-397923af.pth" in str(info.value)


def test_pixel_conventions_round_trip():
    rgb = torch.tensor([[[255.0]], [[128.0]], [[0.0]]])
    caffe = PixelConvention("BGR", 255.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0))
    out = caffe.normalise(rgb)
    assert out[:, 0, 0].tolist() == pytest.approx([0 - 103.939, 128 - 116.779, 255 - 123.68])
    assert caffe.denormalise(out).flatten().tolist() == pytest.approx([255.0, 128.0, 0.0])
    assert RGB01.normalise(rgb)[:, 0, 0].tolist() == pytest.approx([2.0, (128 / 255 - 0.5) / 0.25, -2.0], abs=1e-6)


def test_two_stream_scores_on_a_hand_computed_example():
    ln2, ln3 = math.log(2), math.log(3)
    cls_logits = torch.tensor([[ln3, 0.0], [0.0, 0.0], [0.0, ln3]])   # softmax over classes: .75/.25, .5/.5, .25/.75
    det_logits = torch.tensor([[ln2, 0.0], [0.0, 0.0], [0.0, ln2]])   # softmax over proposals: .5/.25/.25, .25/.25/.5
    x, y = two_stream_scores(cls_logits, det_logits)
    expected = torch.tensor([[0.375, 0.0625], [0.125, 0.125], [0.0625, 0.375]])
    assert torch.allclose(x, expected) and torch.allclose(y, torch.tensor([0.5625, 0.5625]))


def test_detection_head_shapes_and_score_boost():
    torch.manual_seed(0)
    head = WSDDNHead(in_channels=8, fc_dim=16, num_classes=3, dropout=0.0).eval()
    features = torch.rand(1, 8, 10, 12)
    rois = torch.tensor([[0.0, 0.0, 40.0, 40.0], [8.0, 16.0, 90.0, 70.0]])
    out = head(features, rois)
    assert out.x.shape == (2, 3) and out.y.shape == (3,) and out.drop7.shape == (2, 16)
    assert torch.allclose(out.x.sum(dim=0), out.y)
    assert torch.allclose(head.fc8d(out.drop7).softmax(0).sum(0), torch.ones(3))
    boosted = head(features, rois, torch.tensor([1.0, 0.0]))
    assert not torch.allclose(boosted.x, out.x)     # the first RoI's features were doubled


@pytest.mark.parametrize("p, t", [(torch.zeros(4), torch.ones(4)), (torch.ones(4), torch.zeros(4)),
                                  (torch.zeros(4), torch.zeros(4)), (torch.tensor([0.0, 1.0, 1e-30, 1 - 1e-8]),
                                                                     torch.tensor([1.0, 0.0, 1.0, 0.0]))])
def test_image_bce_is_finite_for_zero_and_saturated_scores(p, t):
    p = p.clone().requires_grad_(True)
    loss = image_bce(p, t)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()
    assert p.grad.abs().max() <= 1e4


def test_image_bce_values():
    # -log(0.8) + -log(1 - 0.3); all-zero scores against a positive label give -log(1e-20)
    assert image_bce(torch.tensor([0.8, 0.3]), torch.tensor([1.0, 0.0])).item() == pytest.approx(
        -math.log(0.8) - math.log(0.7), rel=1e-6)
    assert image_bce(torch.zeros(2), torch.tensor([1.0, 0.0])).item() == pytest.approx(-math.log(1e-20), rel=1e-6)
