"""Cyclic Guidance operations against hand-computed values (reference §2-§4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsjds.cgl import (CenterLoss, balanced_seed_loss, crf_boundary_loss, csc_weights, gated_max_normalise,
                       localization_maps, min_entropy_loss, segmentation_seeds, weighted_mil_loss)
from wsjds.crf import CRFParams
from wsjds.model.backbone import PixelConvention, VGGC5D
from wsjds.model.wsddn import WSDDNHead
from wsjds.model.wsjds import WSJDSModel

# --- seeds ----------------------------------------------------------------------------------------

def test_seed_thresholds_on_a_crafted_map():
    maps = torch.tensor([[[0.0, 0.004, 0.005, 0.006]], [[0.09, 0.1, 0.5, 1.0]],
                         [[1.0, 1.0, 1.0, 1.0]], [[0.2, 0.0, 0.2, 0.0]]])           # (4 classes, 1, 4)
    labels = torch.tensor([1.0, 1.0, 0.0, 1.0])
    y = torch.tensor([0.9, 0.7, 0.99, 0.5])                                           # class 3 below tau
    seeds = segmentation_seeds(maps, labels, y, tau=0.7, fg_threshold=0.1, bg_threshold=0.005)
    assert seeds[0, 0].tolist() == [0.0, 0.0, 0.0, 0.5]      # <= 0.005 background, in between ignored
    assert seeds[1, 0].tolist() == [0.5, 1.0, 1.0, 1.0]      # >= 0.1 foreground (y = tau counts as confident)
    assert seeds[2, 0].tolist() == [0.0, 0.0, 0.0, 0.0]      # absent class: background everywhere
    assert seeds[3, 0].tolist() == [0.5, 0.5, 0.5, 0.5]      # present but y < tau: ignored everywhere


# --- proposal weights (Eq. 3 as coded) -------------------------------------------------------------

BLOCK = torch.zeros(1, 20, 20)
BLOCK[0, 5:15, 5:15] = 1.0                                    # a 10x10 foreground square
BOXES = torch.tensor([
    [5.0, 5.0, 15.0, 15.0],     # inside: exactly the square
    [10.0, 5.0, 20.0, 15.0],    # straddling its right edge
    [0.0, 5.0, 5.0, 15.0],      # outside, touching its left edge
    [15.0, 15.0, 25.0, 25.0],   # invalid: leaves the 20x20 map
])
# Hand computation (inclusive pixel boxes, inner = box / 1.8, outer = 1.8 x box clipped, rounded):
#   inside:     frame fg 100-36 = 64 over area 64; context fg 0 over 324-100 = 224
#   straddling: box fg 50, inner fg 18 (area 36) -> frame 32 / 64; outer cols 6..19 x rows 1..18:
#               fg 90, area 252 -> context 40 / 152
#   outside:    frame 0 / 32; outer cols 0..6 x rows 1..18: fg 20, area 126 -> context 20 / 76
SQRT_SCORES = [64 / 8, 32 / 8 - 40 / math.sqrt(152), -20 / math.sqrt(76)]
LINEAR_SCORES = [1.0, 32 / 64 - 40 / 152, -20 / 76]


@pytest.mark.parametrize("sqrt_area, raw", [(True, SQRT_SCORES), (False, LINEAR_SCORES)])
def test_proposal_weights_on_a_crafted_mask(sqrt_area, raw):
    labels, y = torch.tensor([1.0]), torch.tensor([1.0])
    weights = csc_weights(BLOCK, BOXES, labels, y, 0.1, 1.8, sqrt_area)[:, 0]
    expected = [raw[0] / raw[0], raw[1] / raw[0], raw[2] / abs(raw[2]), -1.0]   # per-class max / |min|; invalid -1
    assert weights.tolist() == pytest.approx(expected, abs=1e-6)
    # Blend with the image score: W = y * s + (1 - y)
    blended = csc_weights(BLOCK, BOXES, labels, torch.tensor([0.8]), 0.1, 1.8, sqrt_area)[:, 0]
    assert blended.tolist() == pytest.approx([0.8 * e + 0.2 for e in expected], abs=1e-6)


def test_proposal_weights_are_one_for_absent_classes_and_empty_maps():
    maps = torch.stack([BLOCK[0], torch.zeros(20, 20), BLOCK[0]])
    weights = csc_weights(maps, BOXES, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.9, 0.9, 0.9]))
    assert torch.equal(weights[:, 0], torch.ones(4))          # absent class
    assert torch.equal(weights[:, 1], torch.ones(4))          # present, but no foreground anywhere
    assert weights[0, 2] == pytest.approx(1.0) and weights[3, 2] == pytest.approx(0.9 * -1 + 0.1)


def test_weighted_mil_splits_positive_and_negative_weights():
    x = torch.tensor([[0.4, 0.1], [0.3, 0.2], [0.1, 0.3]])
    labels = torch.tensor([1.0, 0.0])
    plain_pos, plain_neg = weighted_mil_loss(x, torch.ones_like(x), labels)
    assert plain_pos.item() == pytest.approx(-math.log(0.8) - math.log(1 - 0.6), rel=1e-6)   # WSDDN BCE
    assert plain_neg.item() == pytest.approx(0.0, abs=1e-6)
    weights = torch.tensor([[1.0, 1.0], [0.5, 1.0], [-1.0, 1.0]])
    pos, neg = weighted_mil_loss(x, weights, labels)
    # class 0: y+ = 0.4 + 0.15 = 0.55 vs 1, y- = 0.1 vs 0; class 1: y+ = 0.6 vs 0
    assert pos.item() == pytest.approx(-math.log(0.55) - math.log(0.4), rel=1e-6)
    assert neg.item() == pytest.approx(-math.log(0.9), rel=1e-6)


# --- losses ---------------------------------------------------------------------------------------

def test_balanced_seed_loss_with_ignore_pixels():
    logits = torch.tensor([[[2.0, -1.0, 0.5, 3.0]], [[0.0, 1.0, -2.0, 0.0]]])
    seeds = torch.tensor([[[1.0, 0.0, 0.5, 0.0]], [[0.5, 0.5, 0.0, 0.0]]])

    def bce(z, t):
        return -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))

    class0 = bce(2.0, 1) + (bce(-1.0, 0) + bce(3.0, 0)) / 2          # 0.5 ignored
    class1 = (bce(-2.0, 0) + bce(0.0, 0)) / 2                       # no foreground: only the negative mean
    assert balanced_seed_loss(logits, seeds).item() == pytest.approx(class0 + class1, rel=1e-5)


def test_min_entropy_loss_value():
    x = torch.tensor([[0.5, 0.2], [0.25, 0.3]])
    expected = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25)) / (1 + 2 * 1)
    assert min_entropy_loss(x, torch.tensor([1.0, 0.0])).item() == pytest.approx(expected, rel=1e-6)
    assert min_entropy_loss(x, torch.zeros(2)).item() == 0.0


def test_center_loss_value_and_centre_update():
    loss_fn = CenterLoss(num_classes=1, feature_dim=2, num_centres=2, top_k=2, lr=0.5)
    loss_fn.centres.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0]]]))
    features = torch.tensor([[1.0, 1.0], [3.0, 1.0], [9.0, 9.0]], requires_grad=True)
    x = torch.tensor([[0.5], [0.4], [0.1]])                    # top-2 proposals: rows 0 and 1 -> centre 0
    loss = loss_fn(features, x, torch.tensor([1.0]))
    assert loss.item() == pytest.approx((2 + 10) / (2 * 1 * 2 * 2))
    loss_fn.update_centres()                                   # C += 0.5 * sum(f - C) / (1 * 2 + 1)
    assert loss_fn.centres[0, 0].tolist() == pytest.approx([0.5 * 4 / 3, 0.5 * 2 / 3])
    assert loss_fn.centres[0, 1].tolist() == [10.0, 10.0]


def test_crf_boundary_loss_is_finite_and_the_parity_switch_changes_it():
    rng = np.random.default_rng(0)
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, 8:] = 200
    logits = torch.tensor(rng.normal(0, 2, (2, 12, 16)), dtype=torch.float32, requires_grad=True)
    fixed = crf_boundary_loss(logits, image, CRFParams(iterations=5))
    parity = crf_boundary_loss(logits, image, CRFParams(iterations=5), double_sigmoid=True)
    fixed.backward()
    assert torch.isfinite(fixed) and torch.isfinite(logits.grad).all() and fixed.item() != parity.item()


def test_crf_boundary_loss_equals_the_hand_computed_value_without_mean_field_steps():
    """With 0 CRF iterations q is the CRF's start, softmax(-unary) = softmax over [1 - sigma, sigma]
    (the unary is -log_softmax of those values), so the loss is computable by hand. One class, two
    pixels: z = 2 (q > 0.5) and z = -1 (q < 0.5); each bin is one pixel's q log(q / sigma)."""
    logits = torch.tensor([[[2.0, -1.0]]])
    image = np.zeros((1, 2, 3), np.uint8)
    loss = crf_boundary_loss(logits, image, CRFParams(iterations=0)).item()
    expected = 0.0
    for z in (2.0, -1.0):
        p = 1 / (1 + math.exp(-z))
        q = math.exp(p) / (math.exp(p) + math.exp(1 - p))
        expected += q * math.log(q / p)
    assert loss == pytest.approx(expected, rel=1e-5)
    # sigma = 0.88080, 0.26894; q = 0.68170, 0.38648: 0.68170 ln(0.68170 / 0.88080) + 0.38648 ln(0.38648 / 0.26894)
    assert loss == pytest.approx(-0.174677 + 0.140137, abs=1e-5)


# --- localization maps ----------------------------------------------------------------------------

def tiny_model() -> WSJDSModel:
    torch.manual_seed(0)
    trunk = VGGC5D((2, 2, 3, 3, 3), fc_dim=8)
    fc6, fc7 = trunk.take_classifier()
    head = WSDDNHead(3, 8, num_classes=3, dropout=0.0, fc6=fc6, fc7=fc7)
    trunk.freeze(len(trunk.layers))
    return WSJDSModel(trunk, head, None, PixelConvention("RGB", 1.0, (0.5,) * 3, (0.25,) * 3))


@pytest.mark.parametrize("batched", [True, False])
def test_localization_map_is_the_gradient_of_the_seed_and_gated(batched):
    model = tiny_model()
    image = torch.rand(1, 3, 48, 56, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    rois = torch.tensor([[0.0, 0.0, 30.0, 30.0], [10.0, 8.0, 50.0, 44.0], [20.0, 20.0, 56.0, 48.0]])
    out = model(image, rois)
    x, y = out.det.x, out.det.y
    labels = torch.tensor([1.0, 1.0, 0.0])
    high, low = (0, 1) if y[0] > y[1] else (1, 0)
    tau = float(y[high].detach() + y[low].detach()) / 2                # both classes present; only `high` passes the gate
    maps = localization_maps(x, image, labels, y, tau=tau, batched=batched)
    (grad,) = torch.autograd.grad(0.5 * (x[:, high] ** 2).sum(), image, retain_graph=True)
    expected = grad[0].abs().amax(dim=0)
    expected = expected / expected.max()
    assert torch.allclose(maps[high], expected, atol=1e-6)
    assert maps[high].max().item() == pytest.approx(1.0)
    assert torch.equal(maps[low], torch.zeros_like(maps[low]))               # gated off by tau
    assert torch.equal(maps[2], torch.zeros_like(maps[2]))                   # absent class
    assert all(p.grad is None for p in model.parameters())                   # no parameter gradient


def test_gated_max_normalise_and_the_max_one_parity_switch():
    maps = torch.tensor([[[0.0, 2.0]], [[0.5, 1.0]], [[0.0, 0.0]]])
    gate = torch.tensor([True, True, True])
    assert gated_max_normalise(maps, gate).tolist() == [[[0.0, 1.0]], [[0.5, 1.0]], [[0.0, 0.0]]]
    parity = gated_max_normalise(maps, gate, skip_max_one=True)
    assert parity[1].tolist() == [[0.0, 0.0]]                                # the authors' max == 1 bug
    assert gated_max_normalise(maps, torch.tensor([False, True, True]))[0].tolist() == [[0.0, 0.0]]
