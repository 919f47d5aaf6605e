"""The embedded synthetic dataset: VOC layout + COCO JSON + segmentation PNGs, from a seed.

It is built to reproduce the two failure modes WS-JDS is about, on cluttered backgrounds:

* **several instances of one class** in an image, often side by side (``cluster_prob``), which a
  weakly supervised detector tends to merge into one box;
* **a small discriminative part**: ``beetle``, ``fish`` and ``kite`` share one generic body (an
  ellipse with a texture from the shared pool) and differ only by a small marker at one end; the
  same bodies appear headless among the distractors, so only the marker is evidence for the class
  and a weakly supervised detector boxes the marker instead of the whole object.

``ring``, ``star`` and ``cross`` are recognised by their whole silhouette. Every fill comes from
one texture pool shared by objects, distractors and clutter, so colour alone never gives a class
away. Objects may be cut by the image border (``truncated``) and occluded by later shapes up to
``max_occlusion``; objects that are barely visible, tiny, or whose marker is hidden are
``difficult`` (and void in the PNGs, as in VOC). The same seed gives the same bytes.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

from wsjds import __version__
from wsjds.boxes import mask_to_box, to_voc_xml, xyxy_to_xywh
from wsjds.data.classes import SYNTH_CLASSES
from wsjds.data.sources import SYNTHETIC_MANIFEST_FORMAT
from wsjds.io import atomic_path

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("trainval", "test")
SHAPE_CLASSES: tuple[str, ...] = ("ring", "star", "cross")
PART_CLASSES: tuple[str, ...] = ("beetle", "fish", "kite")
# Distractor shapes, in the order _Scene draws them: the generic body without evidence, a random
# polygon, and a body with a marker of no class.
DISTRACTOR_KINDS: tuple[str, ...] = ("body", "polygon", "plain_marker_body")
VOID = 255

# Marker ("head") patterns of the part classes: two saturated colours each (RGB). Shared-pool
# textures are drawn with lower saturation so they never imitate a marker.
_MARKERS: dict[str, tuple[str, tuple[int, int, int], tuple[int, int, int]]] = {
    "beetle": ("checker", (250, 210, 0), (15, 15, 15)),
    "fish": ("target", (230, 25, 25), (250, 250, 250)),
    "kite": ("stripes", (25, 70, 235), (250, 250, 250)),
}
# Geometry constants of the silhouettes (fractions of the object's extent).
_RING_INNER = 0.55          # inner / outer radius of a ring
_STAR_INNER = 0.45          # inner / outer radius of a star's points
_STAR_POINTS = 5
_CROSS_ARM = 0.34           # arm width / cross extent
_BODY_ASPECT = (0.42, 0.62)  # minor / major axis of the generic body
_HEAD_OFFSET = 0.47         # marker centre distance from body centre / body length
_CLUSTER_SPACING = (0.75, 1.05)  # centre distance / object extent for side-by-side instances
_PLACEMENT_TRIES = 30
_MIN_HEAD_VISIBLE = 0.5     # a part object whose marker is less visible than this is difficult


@dataclass(frozen=True)
class SynthConfig:
    """Generator knobs (config.yaml ``datasets.<synth>.generator``; these defaults equal ``synth``)."""

    seed: int = 0
    num_trainval: int = 160
    num_test: int = 80
    min_side: int = 160
    max_side: int = 224
    object_size: tuple[float, float] = (0.22, 0.55)
    max_classes_per_image: int = 2
    extra_instance_prob: float = 0.55
    max_instances_per_class: int = 4
    cluster_prob: float = 0.5
    distractors: tuple[int, int] = (1, 4)
    max_occlusion: float = 0.55
    difficult_visible_fraction: float = 0.45
    difficult_min_side: int = 10
    head_fraction: float = 0.3
    void_border: int = 1
    jpeg_quality: int = 90

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "SynthConfig":
        """From config ``datasets.<synth>.generator`` (or a subset of it): each value cast to its
        field's type, so ``min_side: 160.0`` generates the same bytes as ``160``."""
        values = {}
        for knob in fields(cls):
            if knob.name in section:
                value, default = section[knob.name], knob.default
                values[knob.name] = (tuple(_cast(v, type(default[0]), knob.name) for v in value)
                                     if isinstance(default, tuple) else _cast(value, type(default), knob.name))
        return cls(**values)

    def __post_init__(self) -> None:
        checks = {
            "min_side <= max_side": self.min_side <= self.max_side,
            "object_size is [low, high] with 0 < low <= high <= 1": 0 < self.object_size[0] <= self.object_size[1] <= 1,
            "distractors is [min, max] with 0 <= min <= max": 0 <= self.distractors[0] <= self.distractors[1],
            "max_classes_per_image <= number of classes": 1 <= self.max_classes_per_image <= len(SYNTH_CLASSES),
            "num_trainval >= 1 and num_test >= 1": self.num_trainval >= 1 and self.num_test >= 1,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid synthetic generator settings: {'; '.join(failed)} ({self})")


def _cast(value: Any, kind: type, name: str) -> Any:
    """``value`` as ``kind``; a fractional number for an integer knob is an error, not a truncation."""
    cast = kind(value)
    if kind is int and cast != value:
        raise ValueError(f"synthetic generator knob {name} must be an integer, got {value!r}")
    return cast


@dataclass
class SynthObject:
    """One annotated object: class index, visible mask (H, W) bool, flags."""

    label: int
    mask: np.ndarray
    difficult: bool
    truncated: bool
    box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))


@dataclass
class SynthImage:
    image: np.ndarray               # (H, W, 3) uint8 RGB
    objects: list[SynthObject]


def generate_dataset(out: str | Path, config: SynthConfig = SynthConfig()) -> dict:
    """Write the whole dataset under ``out`` (atomically: a temporary directory renamed at the end).

    Returns the manifest (also written to ``out/dataset.json``): counts per split and the config.
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        for folder in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets/Segmentation",
                       "SegmentationClass", "SegmentationObject", "annotations"):
            (tmp / folder).mkdir(parents=True)
        manifest = {"format": SYNTHETIC_MANIFEST_FORMAT, "version": 1, "producer": f"wsjds {__version__}",
                    "classes": list(SYNTH_CLASSES), "config": asdict(config), "splits": {}}
        next_id = 1
        for split_index, split in enumerate(SPLITS):
            count = config.num_trainval if split == "trainval" else config.num_test
            ids = [f"{next_id + i:06d}" for i in range(count)]
            next_id += count
            images = {}
            for i, image_id in enumerate(tqdm(ids, desc=f"synth {split}", unit="img")):
                rng = np.random.default_rng([config.seed, split_index, i])
                sample = generate_image(rng, config)
                _write_voc_files(tmp, image_id, sample, config)
                images[image_id] = sample
            _write_image_sets(tmp, split, ids, images)
            _write_coco_json(tmp / "annotations" / f"instances_{split}.json", images)
            manifest["splits"][split] = {
                "images": len(ids),
                "objects": sum(len(s.objects) for s in images.values()),
                "difficult": sum(o.difficult for s in images.values() for o in s.objects),
            }
            log.info("synth %s: %s", split, manifest["splits"][split])
        (tmp / "dataset.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def generate_image(rng: np.random.Generator, config: SynthConfig) -> SynthImage:
    """Render one image and its objects from ``rng`` (the only source of randomness)."""
    width = int(rng.integers(config.min_side, config.max_side + 1))
    height = int(rng.integers(config.min_side, config.max_side + 1))
    pad = int(np.ceil(config.object_size[1] * min(width, height))) + 2
    scene = _Scene(rng, width, height, pad, config)
    scene.paint_background()

    n_classes = int(rng.integers(1, config.max_classes_per_image + 1))
    classes = rng.choice(len(SYNTH_CLASSES), size=n_classes, replace=False)
    plan: list[tuple[str, int | None, tuple[float, float] | None, float]] = []
    for label in classes:
        count = 1
        while count < config.max_instances_per_class and rng.random() < config.extra_instance_prob:
            count += 1
        size = rng.uniform(*config.object_size) * min(width, height)
        centres = _cluster_centres(rng, count, size, width, height) if rng.random() < config.cluster_prob else [None] * count
        for centre in centres:
            plan.append(("object", int(label), centre, size * rng.uniform(0.9, 1.1)))
    n_distractors = int(rng.integers(config.distractors[0], config.distractors[1] + 1))
    for _ in range(n_distractors):
        position = int(rng.integers(0, len(plan) + 1))
        plan.insert(position, ("distractor", None, None, rng.uniform(*config.object_size) * min(width, height)))

    for kind, label, centre, size in plan:
        scene.place(kind, label, centre, size)
    return scene.finish()


def generate_pretraining_scene(rng: np.random.Generator, config: SynthConfig, side: int,
                               labels: np.ndarray, size_range: tuple[float, float]) -> PretrainingScene:
    """One square scene (side x side) for trunk pretraining, with a labelled box per visible item.

    ``labels`` index ``SYNTH_CLASSES + DISTRACTOR_KINDS``: each is one object of that class or one
    distractor of that kind, ``size_range`` x ``side`` across, placed at random on the generator's
    textured clutter background as in a dataset image (so features are learnt in context, the
    way a detector's RoIs see them). Items left less visible than
    ``config.difficult_visible_fraction``, or part objects whose marker is hidden, get no box.
    """
    count = len(SYNTH_CLASSES) + len(DISTRACTOR_KINDS)
    bad = [int(label) for label in labels if not 0 <= label < count]
    if bad:
        raise ValueError(f"pretraining scene label {bad[0]} is outside 0..{count - 1}")
    scene = _Scene(rng, side, side, int(np.ceil(size_range[1] * side)) + 2, config)
    scene.paint_background()
    for label in labels:
        size = rng.uniform(*size_range) * side
        if label < len(SYNTH_CLASSES):
            scene.place("object", int(label), None, size)
        else:
            scene.place("distractor", None, None, size, distractor_kind=int(label) - len(SYNTH_CLASSES))
    return scene.labelled_items()


@dataclass
class PretrainingScene:
    """A pretraining scene: ``image`` (H, W, 3) uint8 RGB; ``boxes`` (K, 4) float32 visible boxes
    (package convention); ``labels`` (K,) int64 indices into ``SYNTH_CLASSES + DISTRACTOR_KINDS``."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


class _Scene:
    """A padded canvas that items are painted onto in z-order, tracking which item owns each pixel."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, pad: int, config: SynthConfig):
        self.rng, self.width, self.height, self.pad, self.config = rng, width, height, pad, config
        self.shape = (height + 2 * pad, width + 2 * pad)
        self.canvas = np.zeros(self.shape + (3,), np.float32)
        self.owner = np.full(self.shape, -1, np.int32)
        self.items: list[dict] = []   # per painted item: label (None for distractors), full mask, head mask

    def paint_background(self) -> None:
        rng, (h, w) = self.rng, self.shape
        grid = rng.integers(2, 5)
        coarse = np.stack([_pool_colour(rng) for _ in range(grid * grid)]).reshape(grid, grid, 3)
        self.canvas[:] = cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(int(rng.integers(3, 9))):   # textured clutter patches, half transparent
            mask = _random_blob(rng, self.shape, rng.uniform(0.1, 0.35) * min(self.width, self.height),
                                self.pad, self.width, self.height)
            _paint(self.canvas, mask, lambda yy, xx: _texture(rng, yy, xx), alpha=0.5)

    def place(self, kind: str, label: int | None, centre: tuple[float, float] | None, size: float,
              distractor_kind: int | None = None) -> None:
        """Try positions until the item occludes no earlier object beyond ``max_occlusion``.
        ``distractor_kind`` (an index into DISTRACTOR_KINDS) fixes a distractor's shape; None draws it."""
        angle = self.rng.uniform(0, 180)
        for attempt in range(_PLACEMENT_TRIES):
            if centre is not None and attempt < _PLACEMENT_TRIES // 3:
                jitter = self.rng.normal(0, 0.05 * size, 2)
                cx, cy = centre[0] + jitter[0], centre[1] + jitter[1]
            else:
                cx, cy = self.rng.uniform(0, self.width), self.rng.uniform(0, self.height)
            full, head = self._shape_masks(kind, label, (cx + self.pad, cy + self.pad), size, angle,
                                           distractor_kind)
            if full.any() and self._occlusion_ok(full):
                break
        else:
            return  # no acceptable position: the item is left out
        _paint(self.canvas, full, lambda yy, xx: _texture(self.rng, yy, xx))
        if head is not None:
            head, head_centre, head_diameter = head
            name = SYNTH_CLASSES[label] if kind == "object" else None
            _paint(self.canvas, head, lambda yy, xx: _marker(name, self.rng, head_centre, head_diameter, yy, xx))
        self.owner[full] = len(self.items)
        self.items.append({"label": label if kind == "object" else None, "full": full, "head": head,
                           "distractor_kind": distractor_kind})

    def finish(self) -> SynthImage:
        """The image and its annotated objects (distractors carry no annotation)."""
        image, owner = self._render()
        objects = []
        for index, item in enumerate(self.items):
            if item["label"] is None:
                continue
            seen = self._visibility(index, item, owner)
            if seen is not None:
                objects.append(SynthObject(item["label"], *seen))
        return SynthImage(image, objects)

    def labelled_items(self) -> "PretrainingScene":
        """The image and a box per clearly visible item, objects and distractors alike, labelled by
        class (objects) or by ``len(SYNTH_CLASSES)`` + distractor kind."""
        image, owner = self._render()
        boxes, labels = [], []
        for index, item in enumerate(self.items):
            seen = self._visibility(index, item, owner)
            if seen is None or seen[1]:   # gone, or difficult
                continue
            boxes.append(seen[3])
            labels.append(item["label"] if item["label"] is not None
                          else len(SYNTH_CLASSES) + item["distractor_kind"])
        return PretrainingScene(image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64))

    def _render(self) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 image with sensor noise, and (H, W) owner indices, without the padding."""
        p = self.pad
        noise = self.rng.normal(0, 4.0, self.canvas.shape).astype(np.float32)
        image = np.clip(self.canvas + noise, 0, 255).round().astype(np.uint8)[p:p + self.height, p:p + self.width]
        return image, self.owner[p:p + self.height, p:p + self.width]

    def _visibility(self, index: int, item: dict, owner: np.ndarray) -> tuple | None:
        """(visible mask, difficult, truncated, box) of item ``index``, or None when no pixel shows."""
        cfg, p = self.config, self.pad
        visible = owner == index
        box = mask_to_box(visible)
        if box is None:
            return None
        full_area = item["full"].sum()
        inside = item["full"][p:p + self.height, p:p + self.width].sum()
        difficult = (visible.sum() < cfg.difficult_visible_fraction * full_area
                     or min(box[2] - box[0], box[3] - box[1]) < cfg.difficult_min_side)
        if item["head"] is not None:
            head_full = item["head"].sum()
            head_visible = (item["head"][p:p + self.height, p:p + self.width] & visible).sum()
            difficult = difficult or head_visible < _MIN_HEAD_VISIBLE * head_full
        return visible, bool(difficult), bool(inside < full_area), box

    def _occlusion_ok(self, new_mask: np.ndarray) -> bool:
        for index, item in enumerate(self.items):
            if item["label"] is None:
                continue
            remaining = np.count_nonzero((self.owner == index) & ~new_mask)
            if remaining < (1.0 - self.config.max_occlusion) * np.count_nonzero(item["full"]):
                return False
        return True

    def _shape_masks(self, kind: str, label: int | None, centre: tuple[float, float], size: float,
                     angle: float, distractor_kind: int | None = None) -> tuple[np.ndarray, tuple | None]:
        """Full mask and, for bodies with a marker, (marker mask, marker centre, marker diameter),
        on the padded canvas."""
        name = SYNTH_CLASSES[label] if kind == "object" else None
        if name in SHAPE_CLASSES:
            return _silhouette(name, self.shape, centre, size, angle), None
        if name in PART_CLASSES:
            return _body_with_head(self.rng, self.shape, centre, size, angle, self.config.head_fraction)
        # Distractors: headless bodies (the generic body without evidence), polygons, or bodies with
        # a marker that belongs to no class.
        choice = self.rng.integers(0, len(DISTRACTOR_KINDS)) if distractor_kind is None else distractor_kind
        if choice == 0:
            return _body(self.rng, self.shape, centre, size, angle), None
        if choice == 1:
            return _random_polygon(self.rng, self.shape, centre, size), None
        return _body_with_head(self.rng, self.shape, centre, size, angle, self.config.head_fraction)


def _cluster_centres(rng: np.random.Generator, count: int, size: float, width: int,
                     height: int) -> list[tuple[float, float]]:
    """Centres of ``count`` instances in a row, a little more than one object apart."""
    direction = rng.uniform(0, 2 * np.pi)
    step = size * rng.uniform(*_CLUSTER_SPACING)
    dx, dy = np.cos(direction) * step, np.sin(direction) * step
    start_x = width / 2 - dx * (count - 1) / 2 + rng.uniform(-0.25, 0.25) * width
    start_y = height / 2 - dy * (count - 1) / 2 + rng.uniform(-0.25, 0.25) * height
    return [(start_x + k * dx, start_y + k * dy) for k in range(count)]


def _silhouette(name: str, shape: tuple[int, int], centre: tuple[float, float], size: float,
                angle: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    radius = size / 2
    cx, cy = centre
    if name == "ring":
        center = (int(round(cx)), int(round(cy)))
        cv2.circle(canvas, center, int(round(radius)), 1, -1)
        cv2.circle(canvas, center, int(round(radius * _RING_INNER)), 0, -1)
    elif name == "star":
        k = np.arange(2 * _STAR_POINTS)
        r = np.where(k % 2 == 0, radius, radius * _STAR_INNER)
        theta = np.deg2rad(angle) + k * np.pi / _STAR_POINTS
        cv2.fillPoly(canvas, [_points(cx + r * np.cos(theta), cy + r * np.sin(theta))], 1)
    elif name == "cross":
        arm = radius * _CROSS_ARM
        for a in (angle, angle + 90):
            rect = ((cx, cy), (2 * radius, 2 * arm), a)
            cv2.fillPoly(canvas, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 1)
    return canvas.astype(bool)


def _body(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], size: float,
          angle: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    axes = (int(round(size / 2)), int(round(size / 2 * rng.uniform(*_BODY_ASPECT))))
    cv2.ellipse(canvas, (int(round(centre[0])), int(round(centre[1]))), axes, angle, 0, 360, 1, -1)
    return canvas.astype(bool)


def _body_with_head(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float],
                    size: float, angle: float, head_fraction: float) -> tuple[np.ndarray, tuple]:
    body = _body(rng, shape, centre, size, angle)
    head = np.zeros(shape, np.uint8)
    side = rng.choice([-1.0, 1.0])
    hx = centre[0] + side * _HEAD_OFFSET * size * np.cos(np.deg2rad(angle))
    hy = centre[1] + side * _HEAD_OFFSET * size * np.sin(np.deg2rad(angle))
    radius = max(2, int(round(head_fraction * size / 2)))
    cv2.circle(head, (int(round(hx)), int(round(hy))), radius, 1, -1)
    head = head.astype(bool)
    return body | head, (head, (hx, hy), 2.0 * radius + 1)


def _random_polygon(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float],
                    size: float) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    n = int(rng.integers(3, 7))
    theta = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = size / 2 * rng.uniform(0.5, 1.0, n)
    cv2.fillPoly(canvas, [_points(centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta))], 1)
    return canvas.astype(bool)


def _random_blob(rng: np.random.Generator, shape: tuple[int, int], size: float, pad: int, width: int,
                 height: int) -> np.ndarray:
    centre = (pad + rng.uniform(0, width), pad + rng.uniform(0, height))
    if rng.random() < 0.5:
        return _random_polygon(rng, shape, centre, size)
    return _body(rng, shape, centre, size, rng.uniform(0, 180))


def _points(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return np.round(np.stack([xs, ys], axis=1)).astype(np.int32)


def _pool_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour of the shared pool: any hue, moderate saturation and value (never marker-like)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(20, 150), rng.uniform(70, 215)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _paint(canvas: np.ndarray, mask: np.ndarray, pattern, alpha: float = 1.0) -> None:
    """Blend ``pattern(yy, xx)`` into ``canvas`` where ``mask`` is set, working on the mask's
    bounding box only; ``yy``/``xx`` are that box's absolute pixel coordinates (h, w) float32."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    sy, sx = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    yy, xx = np.mgrid[sy, sx].astype(np.float32)
    local, region = mask[sy, sx], canvas[sy, sx]
    region[local] = (1.0 - alpha) * region[local] + alpha * pattern(yy, xx)[local]


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A fill from the shared pool: noisy solid, two-tone stripes or mottled. (h, w, 3) float32."""
    h, w = yy.shape
    kind = rng.integers(0, 3)
    base = _pool_colour(rng)
    if kind == 0:
        return np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    if kind == 1:
        other = _pool_colour(rng)
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(4, 12)
        phase = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period) > 0
        return np.where(phase[..., None], base, other).astype(np.float32)
    coarse = rng.normal(0, 35, (8, 8, 3)).astype(np.float32)
    return base + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _marker(name: str | None, rng: np.random.Generator, centre: tuple[float, float], diameter: float,
            yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """The marker pattern of class ``name`` (or a class-less one) centred on the head. (h, w, 3)."""
    cx, cy = centre
    if name is None:  # distractor marker: a plain disc with a light rim, no class pattern
        colour = _pool_colour(rng)
        rim = np.hypot(xx - cx, yy - cy) > 0.35 * diameter
        return np.where(rim[..., None], colour, 0.6 * colour).astype(np.float32)
    pattern, first, second = _MARKERS[name]
    cell = diameter / 3
    if pattern == "checker":
        phase = ((np.floor((xx - cx) / cell) + np.floor((yy - cy) / cell)) % 2) == 0
    elif pattern == "target":
        phase = (np.floor(np.hypot(xx - cx, yy - cy) / (diameter / 6)) % 2) == 0
    else:
        phase = (np.floor(((xx - cx) + (yy - cy)) / cell) % 2) == 0
    return np.where(phase[..., None], np.float32(first), np.float32(second)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Writers: VOC XML / JPEG / palette PNGs, ImageSets lists, COCO instances JSON.
# ------------------------------------------------------------------------------------------------

def voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (256 RGB triplets, flattened)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette.extend((r, g, b))
    return palette


def _write_voc_files(root: Path, image_id: str, sample: SynthImage, config: SynthConfig) -> None:
    Image.fromarray(sample.image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=config.jpeg_quality)
    height, width = sample.image.shape[:2]
    class_map = np.zeros((height, width), np.uint8)
    object_map = np.zeros((height, width), np.uint8)
    for number, obj in enumerate(sample.objects, start=1):
        class_map[obj.mask] = VOID if obj.difficult else obj.label + 1
        object_map[obj.mask] = VOID if obj.difficult else number
    if config.void_border > 0:
        kernel = np.ones((2 * config.void_border + 1,) * 2, np.uint8)
        border = cv2.dilate(object_map, kernel) != cv2.erode(object_map, kernel)
        class_map[border] = VOID
        object_map[border] = VOID
    palette = voc_palette()
    for folder, array in (("SegmentationClass", class_map), ("SegmentationObject", object_map)):
        png = Image.fromarray(array)
        png.putpalette(palette)
        png.save(root / folder / f"{image_id}.png")
    (root / "Annotations" / f"{image_id}.xml").write_bytes(_voc_xml(image_id, width, height, sample.objects))


def _voc_xml(image_id: str, width: int, height: int, objects: list[SynthObject]) -> bytes:
    annotation = ET.Element("annotation")
    ET.SubElement(annotation, "folder").text = "VOCsynth"
    ET.SubElement(annotation, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(annotation, "source")
    ET.SubElement(source, "database").text = "wsjds synthetic"
    size = ET.SubElement(annotation, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(annotation, "segmented").text = "1"
    for obj in objects:
        node = ET.SubElement(annotation, "object")
        ET.SubElement(node, "name").text = SYNTH_CLASSES[obj.label]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        bndbox = ET.SubElement(node, "bndbox")
        xmin, ymin, xmax, ymax = to_voc_xml(obj.box[None])[0]
        for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ET.SubElement(bndbox, tag).text = str(int(round(value)))
    ET.indent(annotation)
    return ET.tostring(annotation, encoding="utf-8") + b"\n"


def _write_image_sets(root: Path, split: str, ids: list[str], images: dict[str, SynthImage]) -> None:
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    for label, name in enumerate(SYNTH_CLASSES):
        lines = []
        for image_id in ids:
            flags = [o.difficult for o in images[image_id].objects if o.label == label]
            value = -1 if not flags else (1 if not all(flags) else 0)   # devkit: 1 / 0 only difficult / -1
            lines.append(f"{image_id} {value:2d}\n")
        (root / "ImageSets" / "Main" / f"{name}_{split}.txt").write_text("".join(lines))


def _write_coco_json(path: Path, images: dict[str, SynthImage]) -> None:
    """COCO instances JSON of the same images: ids are the integer value of the VOC ids, category
    ids are class index + 1, boxes and RLE masks are the visible extents; ``difficult`` and
    ``truncated`` ride along as extra fields."""
    coco = {"info": {"description": "wsjds synthetic dataset", "version": str(__version__)},
            "licenses": [], "images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n, "supercategory": "synthetic"} for i, n in enumerate(SYNTH_CLASSES)]}
    annotation_id = 1
    for image_id, sample in images.items():
        height, width = sample.image.shape[:2]
        coco["images"].append({"id": int(image_id), "file_name": f"{image_id}.jpg", "width": width, "height": height})
        for obj in sample.objects:
            rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
            coco["annotations"].append({
                "id": annotation_id, "image_id": int(image_id), "category_id": obj.label + 1,
                "bbox": [float(v) for v in xyxy_to_xywh(obj.box[None])[0]],
                "area": float(obj.mask.sum()), "iscrowd": 0,
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
                "difficult": int(obj.difficult), "truncated": int(obj.truncated),
            })
            annotation_id += 1
    path.write_text(json.dumps(coco, sort_keys=True) + "\n")
