"""Instance masks for detected boxes: the segmentation branch's class maps, CRF-refined, cut to each box.

One image at a time (reference §6.4, and the paper's "upsampled to the input size, then a fully
connected CRF", §4.2):

1. :func:`class_probabilities`: the network at one test scale (optionally also mirrored), logits
   upsampled bilinearly with ``align_corners=True`` (as the authors' upsampling op, reference §1.4)
   straight to the original image size, then a per-class sigmoid -> (C, H, W).
2. :func:`crf_class_maps`: a dense CRF over [background = 1 - max_c p_c, p_c] with the reference's
   unary (-log of a softmax over those probabilities, floored; reference §1.3, §2.6b), on the
   original image; a class's map is its refined probability > ``threshold``.
   :func:`threshold_class_maps` is the variant without the CRF (the authors' actual test path).
3. :func:`cut_to_box`: every detection of class c gets c's map restricted to its box, so all boxes
   of a class share one class-level map (reference §6.4).

The two box-only baselines of the paper's COCO table (Table 5): :func:`box_mask` (BB: the box) and
:func:`ellipse_mask` (ELL: the ellipse inscribed in the box). Masks are stored as COCO RLE
(``wsjds.artifacts.mask_store``).

Pixel rule: pixel (row j, column i) covers [i, i + 1) x [j, j + 1) (``wsjds.boxes``); it belongs to a
box, or an ellipse, when its centre (i + 0.5, j + 0.5) does. For integer boxes the BB mask is
exactly the box's pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from wsjds.crf import CRFParams, dense_crf
from wsjds.errors import ArtifactError
from wsjds.data.images import rgb_tensor
from wsjds.data.transforms import resize
from wsjds.artifacts.mask_store import MODEL_VARIANTS, VARIANTS, MaskWriter, encode_rle

if TYPE_CHECKING:   # torch loads only when masks are made, so the CLI starts fast
    import torch

log = logging.getLogger(__name__)

# Which labels enter the CRF: every class (as the reference's unary, §1.3) or only the classes the
# image has detections of (fewer labels -> proportionally faster; COCO has 80 classes).
CRF_LABEL_SETS: tuple[str, ...] = ("all", "detected")

PIXEL_CENTRE = 0.5   # offset of a pixel's centre from its top-left corner (continuous coordinates)


@dataclass(frozen=True)
class MaskParams:
    """How masks are made from the network (the ``masks`` section of config.yaml, sources there).

    ``scale`` / ``max_side``: the single test scale (shorter side) and its cap; ``flip`` averages the
    mirrored pass; ``threshold`` binarises a class probability; ``crf_labels`` one of
    :data:`CRF_LABEL_SETS`; ``unary_floor`` clips the CRF unary from below."""

    scale: int
    max_side: int
    flip: bool
    threshold: float
    crf_labels: str = "all"
    crf: CRFParams = field(default_factory=CRFParams)
    unary_floor: float = 1e-4      # reference §2.6b: the unary is clipped below at 1e-4

    def __post_init__(self) -> None:
        if self.crf_labels not in CRF_LABEL_SETS:
            raise ValueError(f"crf_labels must be one of {list(CRF_LABEL_SETS)}, got {self.crf_labels!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    def to_json(self) -> dict[str, Any]:
        """JSON form (the CRF parameters nested under ``crf``), stored in the mask files' ``parameters``."""
        return {"scale": self.scale, "max_side": self.max_side, "flip": self.flip, "threshold": self.threshold,
                "crf_labels": self.crf_labels, "unary_floor": self.unary_floor, "crf": asdict(self.crf)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "MaskParams":
        """Inverse of :meth:`to_json`."""
        return cls(data["scale"], data["max_side"], data["flip"], data["threshold"], data["crf_labels"],
                   CRFParams.from_config(data["crf"]), data["unary_floor"])


@dataclass(frozen=True)
class MaskConfig:
    """The ``masks`` section of config.yaml resolved for one dataset (``masks.datasets.<ds>`` overrides)."""

    variants: tuple[str, ...]
    shards: int
    params: MaskParams

    @classmethod
    def from_config(cls, section: Mapping[str, Any], ds: str) -> "MaskConfig":
        merged = {k: v for k, v in section.items() if k != "datasets"}
        merged.update(section.get("datasets", {}).get(ds, {}))
        params = MaskParams(scale=int(merged["scale"]), max_side=int(merged["max_side"]), flip=bool(merged["flip"]),
                            threshold=float(merged["threshold"]), crf_labels=merged["crf_labels"],
                            crf=CRFParams.from_config(merged["crf"]), unary_floor=float(merged["crf"]["unary_floor"]))
        unknown = sorted(set(merged["variants"]) - set(VARIANTS))
        if unknown:
            raise ValueError(f"masks.variants: unknown {unknown}; known {list(VARIANTS)}")
        return cls(tuple(merged["variants"]), int(merged["shards"]), params)


def class_probabilities(model: torch.nn.Module, image: np.ndarray, params: MaskParams,
                        device: torch.device) -> np.ndarray:
    """Per-class probabilities at the image's own size: (C, H, W) float32 for ``image`` (H, W, 3) RGB uint8.

    The network runs at ``params.scale`` (shorter side, capped by ``max_side``); its logits are
    upsampled with align_corners=True to (H, W) and put through a sigmoid. With ``flip`` the
    mirrored pass is mirrored back and the two probability maps are averaged.
    """
    import torch
    import torch.nn.functional as F

    if getattr(model, "segmentation", None) is None:
        raise ValueError("the model has no segmentation branch: CRF masks need one (use the bb / ell baselines)")
    height, width = image.shape[:2]
    resized, _ = resize(image, params.scale, params.max_side)
    total = None
    passes = (False, True) if params.flip else (False,)
    for flipped in passes:
        pixels = np.ascontiguousarray(resized[:, ::-1]) if flipped else resized
        tensor = rgb_tensor(pixels)[None].to(device)
        with torch.no_grad():
            logits = model.segmentation(model.features(tensor)).float()          # (1, C, h, w)
        up = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)
        probs = torch.sigmoid(up[0])
        if flipped:
            probs = probs.flip(-1)
        total = probs if total is None else total + probs
    return (total / len(passes)).cpu().numpy().astype(np.float32)


def crf_unary(probs: np.ndarray, classes: Sequence[int], floor: float) -> np.ndarray:
    """The reference's CRF unary for labels [background, *classes]: (1 + K, H, W) energies.

    ``probs`` (C, H, W) per-class probabilities. Background = 1 - max over all C classes; the
    energies are -log of a softmax over the K + 1 probabilities (not logits), floored at ``floor``
    (reference §1.3 ``mask_fc8_unary``, §2.6b)."""
    background = 1.0 - probs.max(axis=0, keepdims=True)
    stacked = np.concatenate([background, probs[list(classes)]], axis=0).astype(np.float32)   # all in [0, 1]
    log_softmax = stacked - stacked.max(axis=0, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(axis=0, keepdims=True))
    return np.maximum(-log_softmax, floor).astype(np.float32)


def crf_class_maps(image: np.ndarray, probs: np.ndarray, classes: Sequence[int],
                   params: MaskParams) -> dict[int, np.ndarray]:
    """CRF-refined binary maps ``{class: (H, W) bool}`` for ``classes`` (the ones to be masked).

    The CRF runs over [background, all C classes] or [background, ``classes``] (``params.crf_labels``);
    a class's map is its refined probability Q > ``params.threshold``."""
    wanted = sorted({int(c) for c in classes})
    if not wanted:
        return {}
    labels = list(range(probs.shape[0])) if params.crf_labels == "all" else wanted
    q = dense_crf(image, crf_unary(probs, labels, params.unary_floor), params.crf)
    row = {c: 1 + k for k, c in enumerate(labels)}
    return {c: q[row[c]] > params.threshold for c in wanted}


def threshold_class_maps(probs: np.ndarray, classes: Sequence[int], threshold: float) -> dict[int, np.ndarray]:
    """Binary maps without the CRF: ``{class: probs[class] > threshold}`` (reference §6.4)."""
    return {int(c): probs[int(c)] > threshold for c in sorted({int(c) for c in classes})}


def box_window(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel window ``(col0, row0, col1, row1)`` (end-exclusive) of the pixels whose centres lie in
    ``box`` ``(x1, y1, x2, y2)`` (half-open), clipped to the image. Empty windows have col1 <= col0."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    col0, col1 = (int(np.clip(np.ceil(v - PIXEL_CENTRE), 0, width)) for v in (x1, x2))
    row0, row1 = (int(np.clip(np.ceil(v - PIXEL_CENTRE), 0, height)) for v in (y1, y2))
    return col0, row0, col1, row1


def cut_to_box(class_map: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``class_map`` (H, W) bool with everything outside ``box`` set to False (reference §6.4)."""
    height, width = class_map.shape
    col0, row0, col1, row1 = box_window(box, width, height)
    out = np.zeros((height, width), dtype=bool)
    out[row0:row1, col0:col1] = class_map[row0:row1, col0:col1]
    return out


def box_mask(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """BB baseline: (H, W) bool, the pixels of ``box``."""
    col0, row0, col1, row1 = box_window(box, width, height)
    out = np.zeros((height, width), dtype=bool)
    out[row0:row1, col0:col1] = True
    return out


def ellipse_mask(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """ELL baseline: (H, W) bool, the pixels whose centres lie in the largest ellipse inside ``box``
    (axis-aligned, centred on the box, semi-axes half its width and height)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    out = np.zeros((height, width), dtype=bool)
    a, b = (x2 - x1) / 2.0, (y2 - y1) / 2.0
    if a <= 0 or b <= 0:
        return out
    col0, row0, col1, row1 = box_window(box, width, height)
    if col1 <= col0 or row1 <= row0:
        return out
    xs = (np.arange(col0, col1) + PIXEL_CENTRE - (x1 + a)) / a
    ys = (np.arange(row0, row1) + PIXEL_CENTRE - (y1 + b)) / b
    out[row0:row1, col0:col1] = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
    return out


def detection_masks(variant: str, boxes: np.ndarray, labels: np.ndarray, width: int, height: int,
                    class_maps: Mapping[int, np.ndarray] | None = None) -> list[np.ndarray]:
    """One (H, W) bool mask per detection: ``bb`` / ``ell`` from the box alone, ``crf`` / ``nocrf``
    from ``class_maps`` (the class's map cut to the box)."""
    if variant == "bb":
        return [box_mask(box, width, height) for box in boxes]
    if variant == "ell":
        return [ellipse_mask(box, width, height) for box in boxes]
    if variant not in MODEL_VARIANTS:
        raise ValueError(f"unknown mask variant {variant!r}; known {list(VARIANTS)}")
    if class_maps is None:
        raise ValueError(f"variant {variant!r} needs the class maps")
    return [cut_to_box(class_maps[int(label)], box) for box, label in zip(boxes, labels)]


def write_masks(image_ids: Sequence[str], detections: Any, outputs: Mapping[str, Any], *, dataset: str, split: str,
                params: MaskParams | None = None, model: torch.nn.Module | None = None, source: Any = None,
                device: torch.device | None = None, provenance: Mapping[str, Any] | None = None,
                progress: bool = True) -> int:
    """Masks of ``image_ids`` for the detections in ``detections`` (a :class:`~wsjds.artifacts.detections.DetectionStore`),
    one mask file per entry of ``outputs`` ``{variant: path}`` (each written atomically).

    ``crf`` / ``nocrf`` need ``params``, the trained ``model`` (with a segmentation branch), ``device``
    and ``source`` (``read_image(id)`` -> (H, W, 3) RGB uint8 of the detections' image size). The
    class maps are computed once per image and shared by its detections and variants; an image
    without detections costs nothing. ``provenance`` goes into every file's parameters. Returns the
    number of images.
    """
    unknown = sorted(set(outputs) - set(VARIANTS))
    if unknown or not outputs:
        raise ValueError(f"mask outputs must name variants among {list(VARIANTS)}, got {sorted(outputs)}")
    model_variants = [v for v in outputs if v in MODEL_VARIANTS]
    if model_variants and (params is None or model is None or source is None or device is None):
        raise ValueError(f"variants {model_variants} need the mask parameters, the model, its device and the images")
    base = dict(provenance or {})
    crf_seconds: list[float] = []
    with ExitStack() as stack:
        writers = {}
        for variant, path in outputs.items():
            parameters = {**base, "variant": variant}
            if variant in MODEL_VARIANTS:
                parameters.update(params.to_json())
            writers[variant] = stack.enter_context(MaskWriter(path, dataset=dataset, split=split,
                                                              classes=detections.classes, source="wsjds masks",
                                                              parameters=parameters))
        for image_id in tqdm(image_ids, desc=f"masks {split}", unit="img", disable=not progress):
            dets = detections[image_id]
            width, height = detections.image_size(image_id)
            maps: dict[str, Mapping[int, np.ndarray]] = {}
            if model_variants and len(dets):
                image = source.read_image(image_id)
                if image.shape[:2] != (height, width):
                    raise ArtifactError(f"image is {image.shape[1]}x{image.shape[0]} but the detections say "
                                       f"{width}x{height}", path=detections.path, image_id=image_id)
                probs = class_probabilities(model, image, params, device)
                classes = np.unique(dets.labels).tolist()
                if "nocrf" in outputs:
                    maps["nocrf"] = threshold_class_maps(probs, classes, params.threshold)
                if "crf" in outputs:
                    start = time.perf_counter()
                    maps["crf"] = crf_class_maps(image, probs, classes, params)
                    crf_seconds.append(time.perf_counter() - start)
            for variant, writer in writers.items():
                masks = detection_masks(variant, dets.boxes, dets.labels, width, height, maps.get(variant, {}))
                writer.append(image_id, width, height, dets.boxes, dets.scores, dets.labels,
                              [encode_rle(m) for m in masks])
    if crf_seconds:
        log.info("dense CRF: %.3f s per image over %d images", float(np.mean(crf_seconds)), len(crf_seconds))
    return len(image_ids)
