"""wsjds.crf: the dense CRF pulls a blurred, shifted soft mask onto the true colour boundary."""

from __future__ import annotations

import numpy as np
import pytest

from wsjds.crf import CRFParams, dense_crf
from wsjds.stages.masks import crf_unary

HEIGHT, WIDTH = 48, 72
LEFT_RGB, RIGHT_RGB = (200, 60, 40), (40, 90, 200)
NOISE_STD = 8.0          # grey levels of Gaussian noise on both halves
UNARY_FLOOR = 1e-4       # reference §2.6b


def _two_colour_image(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8: left half one colour, right half another, with noise; and the true right half."""
    rng = np.random.default_rng(seed)
    image = np.zeros((HEIGHT, WIDTH, 3), np.float64)
    image[:, : WIDTH // 2] = LEFT_RGB
    image[:, WIDTH // 2:] = RIGHT_RGB
    image = np.clip(image + rng.normal(0.0, NOISE_STD, image.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((HEIGHT, WIDTH), bool)
    truth[:, WIDTH // 2:] = True
    return image, truth


def _soft_mask(shift: float, blur: float) -> np.ndarray:
    """(1, H, W) probability of 'right half', a logistic ramp centred ``shift`` px off the true edge."""
    x = np.arange(WIDTH) + 0.5
    ramp = 1.0 / (1.0 + np.exp(-(x - (WIDTH / 2 + shift)) / blur))
    return np.broadcast_to(ramp, (HEIGHT, WIDTH))[None].astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("shift, blur", [(8.0, 6.0), (-8.0, 6.0), (12.0, 3.0)])
def test_crf_sharpens_a_blurred_mask_towards_the_true_boundary(shift, blur):
    image, truth = _two_colour_image()
    probs = _soft_mask(shift, blur)
    unrefined = probs[0] > 0.5
    q = dense_crf(image, crf_unary(probs, [0], UNARY_FLOOR), CRFParams())
    refined = q[1] > 0.5
    assert _iou(refined, truth) > _iou(unrefined, truth) + 0.1
    assert _iou(refined, truth) > 0.95


def test_q_is_a_distribution_over_labels_of_the_image_size():
    image, _ = _two_colour_image()
    unary = crf_unary(_soft_mask(0.0, 4.0), [0], UNARY_FLOOR)
    q = dense_crf(image, unary, CRFParams(iterations=2))
    assert q.shape == (2, HEIGHT, WIDTH) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(q, dense_crf(image, unary, CRFParams(iterations=2)))   # deterministic


def test_read_only_inputs_are_accepted():
    """Decoded images are often read-only views; pydensecrf itself only takes writeable buffers."""
    image, _ = _two_colour_image()
    unary = crf_unary(_soft_mask(0.0, 4.0), [0], UNARY_FLOOR)
    expected = dense_crf(image, unary, CRFParams(iterations=2))
    image.setflags(write=False)
    unary.setflags(write=False)
    np.testing.assert_array_equal(dense_crf(image, unary, CRFParams(iterations=2)), expected)


def test_mismatched_image_is_rejected():
    image, _ = _two_colour_image()
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image[:-1], np.zeros((2, HEIGHT, WIDTH), np.float32), CRFParams())
