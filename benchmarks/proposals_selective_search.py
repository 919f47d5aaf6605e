"""Selective Search on the real VOC2007 sample: boxes per image, seconds per image, recall of the GT.

For each mode (fast, quality) every image of the given splits goes through the same path as the
pipeline (``selective_search`` + ``postprocess`` with the config's VOC settings). Reported per
mode: raw and kept (top ``max_per_image_train``) boxes per image, wall and CPU seconds per image
(one OpenCV thread; wall time is sensitive to other load on the machine, CPU time much less), and
the recall of the ground-truth boxes at IoU 0.5 and 0.7 by the kept boxes (non-difficult GT, and
all GT). Usage::

    python benchmarks/proposals_selective_search.py [--root VOC2007] [--workers 2] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

from wsjds.boxes import box_iou
from wsjds.data.voc import VOCDataset
from wsjds.proposals import MODES, ProposalPolicy, SelectiveSearchParams, postprocess, selective_search
from wsjds.proposals.selective_search import set_num_threads

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "voc2007_sample" / "VOC2007"
IOU_THRESHOLDS = (0.5, 0.7)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("WSJDS_VOC_SAMPLE", DEFAULT_ROOT.parent)) / "VOC2007")
    parser.add_argument("--splits", nargs="+", default=["trainval", "test"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml", help="proposal settings come from here")
    parser.add_argument("--resize-max-side", type=int, default=None, help="override the config's value")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes, one OpenCV thread each")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    settings = yaml.safe_load(args.config.read_text())["proposals"]
    ss = dict(settings["selective_search"])
    if args.resize_max_side is not None:
        ss["resize_max_side"] = args.resize_max_side
    policy = ProposalPolicy(min_side=settings["min_side"], max_per_image=settings["max_per_image_train"],
                            whole_image_fallback=settings["whole_image_fallback"])
    jobs = [(str(args.root), split, image_id) for split in args.splits
            for image_id in VOCDataset(args.root, split).ids][: args.limit]

    report = {"images": len(jobs), "splits": args.splits, "policy": policy.as_dict(), "opencv": cv2.__version__,
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "workers": args.workers, "load_average_at_start": os.getloadavg(), "modes": {}}
    for mode in args.modes:
        params = SelectiveSearchParams(**{**ss, "mode": mode})
        start = time.perf_counter()
        with ProcessPoolExecutor(args.workers, initializer=set_num_threads, initargs=(1,)) as pool:
            rows = list(pool.map(_measure, jobs, [params] * len(jobs), [policy] * len(jobs), chunksize=1))
        report["modes"][mode] = _summarise(rows, params, time.perf_counter() - start)
        print(f"{mode}: {json.dumps(report['modes'][mode])}", file=sys.stderr)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _measure(job: tuple[str, str, str], params: SelectiveSearchParams, policy: ProposalPolicy) -> dict:
    """One image: timings, box counts and per-GT best IoU with the kept boxes."""
    root, split, image_id = job
    dataset = VOCDataset(root, split)
    image = dataset.read_image(image_id)
    height, width = image.shape[:2]
    wall, cpu = time.perf_counter(), time.process_time()
    raw = selective_search(image, params)
    boxes, _ = postprocess(raw, None, width, height, policy, image_id=image_id)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ann = dataset.annotation(image_id)
    best = box_iou(ann.boxes, boxes).max(axis=1) if len(ann.boxes) else np.zeros(0)
    return {"wall": wall, "cpu": cpu, "raw": len(raw), "kept": len(boxes), "best_iou": best.tolist(),
            "difficult": ann.difficult.tolist()}


def _summarise(rows: list[dict], params: SelectiveSearchParams, elapsed: float) -> dict:
    best = np.array([v for r in rows for v in r["best_iou"]])
    difficult = np.array([v for r in rows for v in r["difficult"]], dtype=bool)
    summary = {
        "params": params.__dict__,
        "raw_boxes_per_image_mean": statistics.fmean(r["raw"] for r in rows),
        "boxes_per_image_mean": statistics.fmean(r["kept"] for r in rows),
        "boxes_per_image_median": statistics.median(r["kept"] for r in rows),
        "boxes_per_image_min": min(r["kept"] for r in rows),
        "seconds_per_image_wall_mean": statistics.fmean(r["wall"] for r in rows),
        "seconds_per_image_wall_median": statistics.median(r["wall"] for r in rows),
        "seconds_per_image_cpu_mean": statistics.fmean(r["cpu"] for r in rows),
        "elapsed_seconds": elapsed,
        "gt_boxes_nondifficult": int((~difficult).sum()),
        "gt_boxes_all": int(len(best)),
    }
    for threshold in IOU_THRESHOLDS:
        summary[f"recall@{threshold}_nondifficult"] = float((best[~difficult] >= threshold).mean())
        summary[f"recall@{threshold}_all"] = float((best >= threshold).mean())
    return summary


if __name__ == "__main__":
    sys.exit(main())
