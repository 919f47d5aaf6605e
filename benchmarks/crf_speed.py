"""Time the mask stage's dense CRF per image: VOC size (500 x 375, 20 classes + background) with the
parameters of config.yaml's ``masks`` section, and for comparison COCO size (640 x 480, 80 + 1 labels)
and the ``detected`` label set (background + a few detected classes).

The image is a real VOC2007 photo where the sample is on disk ($WSJDS_VOC_SAMPLE, default
../shared/data/voc2007_sample), else random colour blocks; the class probabilities are smooth random
maps (low-resolution noise upsampled bilinearly, as the segmentation branch's stride-8 output is).
Prints seconds per image (best of --repeat); ``--out`` writes JSON.

    python benchmarks/crf_speed.py [--repeat 3] [--out crf.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import yaml

from wsjds.stages.masks import MaskConfig, crf_class_maps

REPO = Path(__file__).resolve().parents[1]
VOC_SIZE = (375, 500)          # (H, W) of a typical VOC2007 image
COCO_SIZE = (480, 640)         # (H, W) of a typical COCO image
VOC_CLASSES, COCO_CLASSES = 20, 80
DETECTED_CLASSES = 2           # classes with detections in a typical image (the `detected` label set)
FEATURE_STRIDE = 8             # the segmentation branch's output stride (reference §1.4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config.yaml"))
    parser.add_argument("--dataset", default="voc07", help="whose masks settings to use (masks.datasets overrides)")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the timings as JSON here")
    args = parser.parse_args()

    params = MaskConfig.from_config(yaml.safe_load(Path(args.config).read_text())["masks"], args.dataset).params
    rng = np.random.default_rng(args.seed)
    cases = {
        "voc_all_labels": (VOC_SIZE, VOC_CLASSES, "all"),
        "voc_detected_labels": (VOC_SIZE, VOC_CLASSES, "detected"),
        "coco_all_labels": (COCO_SIZE, COCO_CLASSES, "all"),
        "coco_detected_labels": (COCO_SIZE, COCO_CLASSES, "detected"),
    }
    result: dict[str, object] = {"crf": asdict(params.crf), "image": image_source()}
    for name, (size, classes, label_set) in cases.items():
        image = test_image(rng, size)
        probs = smooth_probabilities(rng, classes, size)
        wanted = list(range(DETECTED_CLASSES))
        case = replace(params, crf_labels=label_set)
        labels = classes + 1 if label_set == "all" else DETECTED_CLASSES + 1
        seconds = best_of(args.repeat, lambda i=image, p=probs, w=wanted, c=case: crf_class_maps(i, p, w, c))
        result[name] = {"height": size[0], "width": size[1], "labels": labels, "seconds_per_image": seconds}
        print(f"{name:>22}: {size[1]}x{size[0]}, {labels:3d} labels, {seconds:.3f} s per image")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")


def image_source() -> str:
    sample = voc_sample_image()
    return str(sample) if sample else "random colour blocks"


def voc_sample_image() -> Path | None:
    root = Path(os.environ.get("WSJDS_VOC_SAMPLE", REPO.parent / "shared" / "data" / "voc2007_sample"))
    images = sorted((root / "VOC2007" / "JPEGImages").glob("*.jpg"))
    return images[0] if images else None


def test_image(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a VOC photo resized to ``size``, or random colour blocks."""
    height, width = size
    sample = voc_sample_image()
    if sample is not None:
        bgr = cv2.imread(str(sample), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(cv2.resize(bgr, (width, height))[:, :, ::-1])
    blocks = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
    return cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)


def smooth_probabilities(rng: np.random.Generator, classes: int, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) float32 in (0, 1): stride-8 logit noise, upsampled bilinearly, through a sigmoid."""
    height, width = size
    small = rng.normal(-2.0, 2.0, (classes, height // FEATURE_STRIDE, width // FEATURE_STRIDE)).astype(np.float32)
    up = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in small])
    return 1.0 / (1.0 + np.exp(-up))


def best_of(repeat: int, run) -> float:
    """Fastest wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
