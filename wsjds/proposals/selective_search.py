"""Selective Search proposals from OpenCV contrib (``cv2.ximgproc.segmentation``), computed in shards.

OpenCV's final ranking of the regions draws on the C library's ``rand()``: two runs on one image
give the same *set* of boxes in different orders (checked with OpenCV 5.0), and reseeding with
``srand`` makes the order repeat. We reseed before every image, so each image's ranking depends
only on the image and the seed, not on the shard it falls in or what ran before it.
Selective Search has no scores: all are 0, and the stable sort in post-processing keeps
OpenCV's ranking.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from wsjds.proposals.dataset import ImageSource
from wsjds.proposals.postprocess import ProposalPolicy, postprocess
from wsjds.proposals.store import SHARD_PARAMETER, ProposalWriter

log = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("fast", "quality")
SOURCE_NAME = "selective_search"


@dataclass(frozen=True)
class SelectiveSearchParams:
    """Settings of one Selective Search run (config ``proposals.selective_search``).

    ``mode``: ``fast`` or ``quality`` (OpenCV's two strategy sets). ``resize_max_side``: images
    whose longer side exceeds this are shrunk to it before the search and the boxes scaled back
    (0 = never resize). ``sigma``, ``base_k``, ``inc_k``: the graph segmentation's smoothing and
    its k = base_k, base_k + inc_k, ... thresholds. ``seed``: C ``rand()`` seed set before each image.
    """

    mode: str
    resize_max_side: int
    sigma: float
    base_k: int
    inc_k: int
    seed: int

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"selective search mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.resize_max_side < 0 or self.base_k < 1 or self.inc_k < 1 or self.sigma <= 0 or self.seed < 0:
            raise ValueError(f"invalid selective search settings: {self}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "SelectiveSearchParams":
        """Config ``proposals.selective_search`` as the field types (the store records them)."""
        return cls(str(cfg["mode"]), int(cfg["resize_max_side"]), float(cfg["sigma"]), int(cfg["base_k"]),
                   int(cfg["inc_k"]), int(cfg["seed"]))


def selective_search(image_rgb: np.ndarray, params: SelectiveSearchParams) -> np.ndarray:
    """Raw Selective Search boxes of one (H, W, 3) uint8 RGB image -> (K, 4) float32 in the
    package convention and the original image's coordinates, in OpenCV's rank order."""
    height, width = image_rgb.shape[:2]
    image = np.ascontiguousarray(image_rgb[:, :, ::-1])  # OpenCV expects BGR
    scale = 1.0
    if params.resize_max_side and max(width, height) > params.resize_max_side:
        scale = params.resize_max_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_h, small_w = image.shape[:2]

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(image)
    if params.mode == "fast":
        search.switchToSelectiveSearchFast(params.base_k, params.inc_k, params.sigma)
    else:
        search.switchToSelectiveSearchQuality(params.base_k, params.inc_k, params.sigma)
    _seed_c_rand(params.seed)
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # (x, y, w, h), resized pixels

    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    boxes *= np.array([width / small_w, height / small_h] * 2)
    return boxes.astype(np.float32)


def compute_shard(source: ImageSource, image_ids: Sequence[str], out: str | Path, *, dataset: str, split: str,
                  params: SelectiveSearchParams, policy: ProposalPolicy, shard: tuple[int, int],
                  progress: bool = True) -> dict[str, float]:
    """Run Selective Search + post-processing on ``image_ids`` and write them to the store ``out``.

    Returns timing figures: ``images``, ``seconds``, ``mean_raw_boxes``, ``mean_boxes``.
    """
    parameters = {**asdict(params), **policy.as_dict(), "opencv": cv2.__version__,
                  SHARD_PARAMETER: f"{shard[0]}/{shard[1]}"}
    raw_total = kept_total = 0
    start = time.perf_counter()
    with ProposalWriter(out, dataset=dataset, split=split, source=SOURCE_NAME, parameters=parameters) as writer:
        for image_id in tqdm(image_ids, desc=f"selective search {split} {shard[0]}/{shard[1]}",
                             file=sys.stderr, disable=not progress):
            image = source.read_image(image_id)
            height, width = image.shape[:2]
            raw = selective_search(image, params)
            boxes, scores = postprocess(raw, None, width, height, policy, image_id=image_id,
                                        path=source.image_path(image_id))
            writer.append(image_id, width, height, boxes, scores)
            raw_total += len(raw)
            kept_total += len(boxes)
    seconds = time.perf_counter() - start
    n = max(1, len(image_ids))
    stats = {"images": len(image_ids), "seconds": seconds, "mean_raw_boxes": raw_total / n,
             "mean_boxes": kept_total / n}
    log.info("shard %d/%d: %d images in %.1f s (%.2f s/image), %.0f raw / %.0f kept boxes per image",
             shard[0], shard[1], len(image_ids), seconds, seconds / n, stats["mean_raw_boxes"], stats["mean_boxes"])
    return stats


def set_num_threads(threads: int) -> None:
    """Threads OpenCV may use (1 per job: Snakemake runs shards side by side)."""
    cv2.setNumThreads(threads)


_srand: Callable[[int], None] | None = None


def _seed_c_rand(seed: int) -> None:
    """Seed the C library's ``rand()``, which OpenCV's Selective Search ranking draws from."""
    global _srand
    if _srand is None:
        try:
            libc_srand = ctypes.CDLL(None).srand
            libc_srand.argtypes = [ctypes.c_uint]
            libc_srand.restype = None
            _srand = libc_srand
        except (OSError, AttributeError):
            log.warning("cannot reach the C library's srand(); Selective Search box order will vary between runs")
            _srand = lambda _seed: None  # noqa: E731
    _srand(seed)
