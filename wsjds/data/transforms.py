"""Image transforms applied to an image and its boxes together: the training augmentation of the
authors' recipe (reference §5) and the test-time views (scales x flips).

Augmentation order as in the authors' loader: horizontal flip, HSV saturation/exposure jitter,
random crop of a fixed fraction of each side, then rescaling so the shorter side is one of the
training scales (the longer side capped). Boxes stay in the package convention throughout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Numbers of the training augmentation (config ``training.<preset>``)."""

    scales: tuple[int, ...]       # shorter side after rescaling, drawn uniformly
    max_side: int                 # cap on the longer side
    flip: bool
    saturation: float             # factor range [1, saturation], inverted with probability 1/2
    exposure: float
    crop_fraction: float          # crop this fraction of each side at a random offset (1 = no crop)
    min_box_side: float           # boxes narrower than this after cropping are dropped (px)

    @classmethod
    def from_config(cls, aug: dict) -> "Augmentation":
        """A ``training.<preset>.augmentation`` entry of config.yaml."""
        return cls(tuple(aug["scales"]), aug["max_side"], aug["flip"], aug["saturation"], aug["exposure"],
                   aug["crop_fraction"], aug["min_box_side"])

    @property
    def pixels_follow_view(self) -> bool:
        """True when the augmented pixels depend only on (image, flip, scale): no colour jitter and no
        crop, so a frozen trunk's output can be cached per view."""
        return self.saturation <= 1 and self.exposure <= 1 and self.crop_fraction >= 1


def augment(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, rng: np.random.Generator,
            aug: Augmentation, targets: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None, tuple[bool, int]]:
    """Augment ``image`` (H, W, 3) uint8 RGB with its proposals ``boxes`` (R, 4) and ``scores`` (R,),
    and optionally training targets ``(boxes (T, 4), labels (T,))`` (Fast R-CNN's pseudo GT).

    Returns the new image, its proposals (R' <= R: boxes left degenerate by the crop are dropped; if
    that would drop them all, the crop itself is the box), their scores, and the targets likewise
    transformed (degenerate ones dropped with their labels), and the view drawn: (flipped, scale).
    """
    boxes = boxes.astype(np.float32).copy()
    target_boxes = None if targets is None else targets[0].astype(np.float32).copy()
    flipped = bool(aug.flip and rng.random() < 0.5)
    if flipped:
        width = image.shape[1]
        image, boxes = hflip(image, boxes)
        if target_boxes is not None:
            target_boxes = _flip_boxes(target_boxes, width)
    image = hsv_jitter(image, rng, aug.saturation, aug.exposure)
    offset_image, boxes, scores, window = random_crop(image, boxes, scores, rng, aug.crop_fraction, aug.min_box_side)
    scale = int(rng.choice(aug.scales))
    out_image, out_boxes = rescale(offset_image, boxes, scale, aug.max_side)
    out_targets = None
    if targets is not None:
        kept, keep = crop_boxes(target_boxes, window, aug.min_box_side)
        factor = np.array([out_image.shape[1] / offset_image.shape[1], out_image.shape[0] / offset_image.shape[0]] * 2,
                          np.float32)
        out_targets = ((kept * factor).astype(np.float32), targets[1][keep])
    return out_image, out_boxes, scores, out_targets, (flipped, scale)


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: x -> W - x (continuous coordinates, so no -1)."""
    return np.ascontiguousarray(image[:, ::-1]), _flip_boxes(boxes, image.shape[1])


def _flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return flipped


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, saturation: float, exposure: float) -> np.ndarray:
    """Scale S and V by factors drawn from [1, f], each inverted with probability 1/2; clip at 255."""
    factors = []
    for limit in (saturation, exposure):
        factor = rng.uniform(1.0, limit) if limit > 1 else 1.0
        factors.append(1.0 / factor if rng.random() < 0.5 else factor)
    if factors == [1.0, 1.0]:
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] *= factors[0]
    hsv[..., 2] *= factors[1]
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def random_crop(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, rng: np.random.Generator,
                fraction: float, min_box_side: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Crop ``fraction`` of each side at a uniform offset; clip and shift the boxes, drop degenerate
    ones. Also returns the crop window ``(left, top, width, height)``."""
    height, width = image.shape[:2]
    crop_h, crop_w = max(1, int(round(height * fraction))), max(1, int(round(width * fraction)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    window = (left, top, crop_w, crop_h)
    image = image[top:top + crop_h, left:left + crop_w]
    kept, keep = crop_boxes(boxes, window, min_box_side)
    if not keep.any():
        return image, np.array([[0, 0, crop_w, crop_h]], np.float32), np.zeros(1, np.float32), window
    return image, kept, scores[keep], window


def crop_boxes(boxes: np.ndarray, window: tuple[int, int, int, int], min_box_side: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes shifted into the crop ``window`` and clipped to it; those with a side below
    ``min_box_side`` are dropped. Returns the kept boxes and the (N,) keep mask."""
    left, top, crop_w, crop_h = window
    shifted = boxes - np.array([left, top, left, top], np.float32)
    shifted[:, [0, 2]] = shifted[:, [0, 2]].clip(0, crop_w)
    shifted[:, [1, 3]] = shifted[:, [1, 3]].clip(0, crop_h)
    keep = ((shifted[:, 2] - shifted[:, 0]) >= min_box_side) & ((shifted[:, 3] - shifted[:, 1]) >= min_box_side)
    keep &= (shifted[:, 2] > shifted[:, 0]) & (shifted[:, 3] > shifted[:, 1])
    return shifted[keep], keep


@dataclass(frozen=True)
class InferenceView:
    """One test-time pass over an image: ``pixels`` (h, w, 3) and the boxes ``rois`` (R, 4) in its
    coordinates; ``box_scale`` (4,) maps original boxes to the resized, unflipped image."""

    pixels: np.ndarray
    rois: np.ndarray
    box_scale: np.ndarray
    flipped: bool

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) predicted in this view back to the original image's coordinates (in place)."""
        if self.flipped:
            boxes[..., [0, 2]] = self.pixels.shape[1] - boxes[..., [2, 0]]
        boxes /= self.box_scale
        return boxes


def inference_views(image: np.ndarray, boxes: np.ndarray, scales: Sequence[int], max_side: int,
               flip: bool) -> Iterator[InferenceView]:
    """The test-time passes, scales outer and flips inner: every scale unflipped, then flipped."""
    for scale in scales:
        resized, box_scale = resize(image, scale, max_side)
        rois = boxes * box_scale
        for flipped in ((False, True) if flip else (False,)):
            pixels, view_rois = hflip(resized, rois) if flipped else (resized, rois)
            yield InferenceView(pixels, view_rois, box_scale, flipped)


def rescale(image: np.ndarray, boxes: np.ndarray, shorter_side: int, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize` an image with its boxes (R, 4)."""
    resized, box_scale = resize(image, shorter_side, max_side)
    return resized, (boxes * box_scale).astype(np.float32)


def resize(image: np.ndarray, shorter_side: int, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the shorter side is ``shorter_side`` unless the longer would exceed ``max_side``.
    Returns the image and ``box_scale`` (4,) float32, ``[w'/W, h'/H, w'/W, h'/H]``, that maps boxes."""
    height, width = image.shape[:2]
    factor = scale_factor(height, width, shorter_side, max_side)
    new_w, new_h = max(1, int(round(width * factor))), max(1, int(round(height * factor)))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return resized, np.array([new_w / width, new_h / height] * 2, np.float32)


def scale_factor(height: int, width: int, shorter_side: int, max_side: int) -> float:
    """Factor that brings the shorter side to ``shorter_side`` with the longer side at most ``max_side``."""
    return min(shorter_side / min(height, width), max_side / max(height, width))
