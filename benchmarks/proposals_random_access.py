"""Random access into a 5,000-image proposal store: time to open it and to read one image's proposals.

Builds a store shaped like VOC07 trainval Selective Search output (``--images`` images of 500 x 375
px, ``--boxes`` boxes each, random but valid), then reads ``--reads`` random ids, one at a time,
through ``ProposalStore.__getitem__`` (boxes and scores). The file was just written, so it sits in
the OS page cache: this measures the library's per-read cost, not the disk. Usage::

    python benchmarks/proposals_random_access.py [--images 5000] [--boxes 2000] [--reads 5000] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wsjds.proposals import ProposalStore, ProposalWriter

WIDTH, HEIGHT = 500, 375  # a typical VOC image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=2000, help="boxes per image (Selective Search gives ~2k)")
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    ids = [f"{i:06d}" for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "proposals.h5"
        start = time.perf_counter()
        with ProposalWriter(path, dataset="bench", split="trainval", source="random", parameters={}) as writer:
            for image_id in ids:
                writer.append(image_id, WIDTH, HEIGHT, *_random_proposals(rng, args.boxes))
        write_seconds = time.perf_counter() - start

        start = time.perf_counter()
        store = ProposalStore.open(path, dataset="bench", split="trainval")
        open_seconds = time.perf_counter() - start
        order = rng.choice(ids, size=args.reads)
        times = []
        with store:
            for image_id in order:
                t = time.perf_counter()
                boxes, scores = store[image_id]
                times.append(time.perf_counter() - t)
                assert boxes.shape == (args.boxes, 4) and scores.shape == (args.boxes,)
        size = path.stat().st_size

    times_us = np.array(times) * 1e6
    report = {
        "images": args.images, "boxes_per_image": args.boxes, "reads": args.reads,
        "file_mib": size / 2**20, "write_seconds": write_seconds, "open_ms": open_seconds * 1e3,
        "read_us_median": float(np.median(times_us)), "read_us_p90": float(np.percentile(times_us, 90)),
        "read_us_p99": float(np.percentile(times_us, 99)), "read_us_max": float(times_us.max()),
        "read_us_mean": statistics.fmean(times_us),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _random_proposals(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 4) float32 valid boxes inside the image and (count,) float32 descending scores."""
    x = np.sort(rng.uniform(0, WIDTH, size=(count, 2)), axis=1)
    y = np.sort(rng.uniform(0, HEIGHT, size=(count, 2)), axis=1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1] + 1e-3, y[:, 1] + 1e-3], axis=1).clip(0, [WIDTH, HEIGHT] * 2)
    return boxes.astype(np.float32), np.sort(rng.uniform(size=count))[::-1].astype(np.float32)


if __name__ == "__main__":
    sys.exit(main())
