"""Time VOC mAP and CorLoc on a VOC2007-test-sized case: 4,952 images, 20 classes, 100 detections each.

The ground truth is synthetic and built in memory (VOC07 test has ~2.4 objects per image, ~12 %
difficult); detections are random boxes, a third of them jittered copies of ground truth so the
matching does real work. Also times reading the same detections from the package's HDF5 and from
a JSON list, and loading the ground truth from 4,952 VOC XML files: parsed (cold), from the
content-keyed disk cache, and from the in-process cache. Prints seconds; ``--out`` writes JSON.

    python benchmarks/evaluation_speed.py [--images 4952] [--per-image 100] [--repeat 3] [--out t.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from wsjds.boxes import to_voc_xml, xyxy_to_xywh
from wsjds.data.classes import VOC_CLASSES
from wsjds.artifacts.detections import DetectionWriter
from wsjds.evaluation import (FlatDetections, GroundTruth, evaluate_corloc, evaluate_voc_map, load_voc_ground_truth,
                              read_detections)
from wsjds.evaluation import ground_truth as ground_truth_module

VOC07_TEST_IMAGES = 4952
DETECTIONS_PER_IMAGE = 100
MEAN_OBJECTS_PER_IMAGE = 2.4
DIFFICULT_FRACTION = 0.12
IMAGE_SIDE = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=VOC07_TEST_IMAGES)
    parser.add_argument("--per-image", type=int, default=DETECTIONS_PER_IMAGE)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the timings as JSON here")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    gt = synthetic_ground_truth(rng, args.images)
    dets = random_detections(rng, gt, args.per_image)
    timings: dict[str, float] = {}
    for use07 in (True, False):
        key = f"map_{'07' if use07 else '10'}_s"
        timings[key] = best_of(args.repeat, lambda: evaluate_voc_map(gt, dets, use07))
    timings["corloc_s"] = best_of(args.repeat, lambda: evaluate_corloc(gt, dets))

    with tempfile.TemporaryDirectory() as tmp:
        h5, js = Path(tmp) / "dets.h5", Path(tmp) / "dets.json"
        write_files(gt, dets, h5, js)
        timings["read_hdf5_s"] = best_of(args.repeat, lambda: read_detections(h5, gt.image_ids, gt.classes))
        timings["read_json_s"] = best_of(args.repeat, lambda: read_detections(js, gt.image_ids, gt.classes))
        check = read_detections(h5, gt.image_ids, gt.classes)
        assert evaluate_voc_map(gt, check, True).mean == evaluate_voc_map(gt, dets, True).mean
        timings.update(time_ground_truth(gt, Path(tmp)))

    result = {"images": args.images, "detections": len(dets), "objects": int(len(gt.labels)),
              "classes": len(gt.classes), "mAP_07": evaluate_voc_map(gt, dets, True).mean, **timings}
    for name, value in result.items():
        print(f"{name:>18}: {value:.3f}" if isinstance(value, float) else f"{name:>18}: {value}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def best_of(repeat: int, run) -> float:
    """Fastest wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_ground_truth(rng: np.random.Generator, num_images: int) -> GroundTruth:
    """Poisson-many objects per image (at least one), random classes and boxes, some difficult."""
    counts = np.maximum(rng.poisson(MEAN_OBJECTS_PER_IMAGE, num_images), 1)
    total = int(counts.sum())
    return GroundTruth(
        image_ids=tuple(f"{i:06d}" for i in range(num_images)),
        classes=VOC_CLASSES,
        image_index=np.repeat(np.arange(num_images), counts),
        boxes=random_boxes(rng, total),
        labels=rng.integers(0, len(VOC_CLASSES), total),
        difficult=rng.random(total) < DIFFICULT_FRACTION,
    )


def random_detections(rng: np.random.Generator, gt: GroundTruth, per_image: int) -> FlatDetections:
    """``per_image`` detections per image: a third jittered ground truth of the image, the rest random."""
    num_images = len(gt.image_ids)
    image_index = np.repeat(np.arange(num_images), per_image)
    boxes = random_boxes(rng, image_index.size)
    labels = rng.integers(0, len(gt.classes), image_index.size)
    near = rng.random(image_index.size) < 1 / 3
    first_gt = np.searchsorted(gt.image_index, image_index)
    count_gt = np.searchsorted(gt.image_index, image_index, side="right") - first_gt
    pick = first_gt + (rng.random(image_index.size) * count_gt).astype(np.int64)
    near &= count_gt > 0
    jitter = rng.normal(0, 10, (int(near.sum()), 4))
    jittered = gt.boxes[pick[near]] + jitter
    jittered[:, 2:] = np.maximum(jittered[:, 2:], jittered[:, :2] + 1)
    boxes[near] = jittered
    labels[near] = gt.labels[pick[near]]
    return FlatDetections.from_lists(gt.image_ids, image_index, boxes, rng.random(image_index.size), labels)


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, IMAGE_SIDE * 0.8, (n, 2))
    wh = rng.uniform(10, IMAGE_SIDE * 0.5, (n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, IMAGE_SIDE)], axis=1).astype(np.float32)


def time_ground_truth(gt: GroundTruth, tmp: Path) -> dict[str, float]:
    """Write ``gt`` as VOC XML files, then time loading it: parsed, from the disk cache, from memory."""
    root, cache = tmp / "VOC2007", tmp / "cache"
    write_voc_xml(gt, root)
    timings = {}
    ground_truth_module._MEMORY_CACHE.clear()
    start = time.perf_counter()
    loaded = load_voc_ground_truth(root, "test", gt.classes, cache_dir=cache)
    timings["gt_parse_xml_s"] = time.perf_counter() - start
    assert np.array_equal(loaded.labels, gt.labels) and np.array_equal(loaded.difficult, gt.difficult)
    ground_truth_module._MEMORY_CACHE.clear()
    start = time.perf_counter()
    load_voc_ground_truth(root, "test", gt.classes, cache_dir=cache)
    timings["gt_disk_cache_s"] = time.perf_counter() - start
    timings["gt_memory_cache_s"] = best_of(3, lambda: load_voc_ground_truth(root, "test", gt.classes))
    return timings


def write_voc_xml(gt: GroundTruth, root: Path) -> None:
    """Minimal devkit XML per image (integer 1-based coordinates) and ImageSets/Main/test.txt."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "test.txt").write_text("".join(f"{i}\n" for i in gt.image_ids))
    xml_boxes = np.round(to_voc_xml(gt.boxes)).astype(int)
    xml_boxes[:, :2] = np.maximum(xml_boxes[:, :2], 1)
    starts = np.searchsorted(gt.image_index, np.arange(len(gt.image_ids) + 1))
    for i, image_id in enumerate(gt.image_ids):
        objects = "".join(
            f"<object><name>{gt.classes[gt.labels[k]]}</name><difficult>{int(gt.difficult[k])}</difficult>"
            f"<bndbox><xmin>{xml_boxes[k, 0]}</xmin><ymin>{xml_boxes[k, 1]}</ymin><xmax>{xml_boxes[k, 2]}</xmax>"
            f"<ymax>{xml_boxes[k, 3]}</ymax></bndbox></object>" for k in range(starts[i], starts[i + 1]))
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>{IMAGE_SIDE}</width><height>{IMAGE_SIDE}</height></size>{objects}</annotation>")


def write_files(gt: GroundTruth, dets: FlatDetections, h5: Path, js: Path) -> None:
    starts = np.searchsorted(dets.image_index, np.arange(len(gt.image_ids) + 1))
    with DetectionWriter(h5, dataset="bench", split="test", classes=gt.classes, source="benchmark",
                         parameters={}) as writer:
        for i, image_id in enumerate(gt.image_ids):
            rows = slice(starts[i], starts[i + 1])
            writer.append(image_id, IMAGE_SIDE, IMAGE_SIDE, dets.boxes[rows], dets.scores[rows], dets.labels[rows])
    xywh = xyxy_to_xywh(dets.boxes).tolist()
    entries = [{"image_id": gt.image_ids[i], "category_id": c, "bbox": b, "score": s}
               for i, c, b, s in zip(dets.image_index.tolist(), dets.labels.tolist(), xywh, dets.scores.tolist())]
    js.write_text(json.dumps(entries))


if __name__ == "__main__":
    main()
