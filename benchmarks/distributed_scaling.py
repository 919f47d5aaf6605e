"""Training throughput with 1 and N processes (wsjds.distributed) on this machine's CPU cores, and
whether the N-process weights equal the 1-process ones.

Trains the first ``--updates`` SGD updates of a run (its settings file, as rule train_settings
writes it) as one round, once per (world size, threads per process) in ``--layouts``, and prints
images per second (wall clock, the processes' start included) and the largest weight difference
to the first layout and to the first with the same threads per process (0: bit-identical):

    python benchmarks/distributed_scaling.py --settings results/synth/wsjds/settings.json \
        --proposals results/synth/proposals/trainval.h5 --updates 30 --layouts 1x2 1x1 2x1
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True)
    parser.add_argument("--proposals", required=True)
    parser.add_argument("--updates", type=int, default=30, help="updates of effective_batch images")
    parser.add_argument("--layouts", nargs="+", default=["1x2", "1x1", "2x1"],
                        help="PROCESSESxTHREADS per run, e.g. 2x1: two processes of one thread")
    parser.add_argument("--gradient-sum", default="visit_order", choices=["visit_order", "rank_order"])
    parser.add_argument("--open-gates", action="store_true",
                        help="cgl.tau 0: every visit computes the localization maps (the costly CGL visit)")
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args()

    import torch

    from wsjds.runs import open_split
    from wsjds.stages.train import load_checkpoint, train_round

    base = json.loads(Path(args.settings).read_text())
    source = open_split(base, base["dataset"]["split"])
    results, models = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts:
            processes, threads = (int(n) for n in layout.split("x"))
            settings = copy.deepcopy(base)
            usable = sum(source.image_labels(i).any() for i in source.ids)     # training skips label-less images
            batch = settings["training"]["effective_batch"]
            settings["training"].update(world_size=processes, rounds=1, epochs=args.updates * batch / usable)
            settings["distributed"]["gradient_sum"] = args.gradient_sum
            if args.open_gates:
                settings["cgl"]["tau"] = 0.0
            torch.set_num_threads(threads)           # the one-process run trains here
            out = Path(tmp) / layout / "round1.pt"
            tic = time.perf_counter()
            train_round(settings, source, args.proposals, 1, out, None, progress=False, threads=processes * threads)
            wall = time.perf_counter() - tic
            state = load_checkpoint(out)
            row = {"processes": processes, "threads_per_process": threads, "updates": args.updates,
                   "images": state["visit"], "wall_s": round(wall, 1), "images_per_s": round(state["visit"] / wall, 2)}
            first = models.setdefault("first", state["model"])
            same_threads = models.setdefault(threads, state["model"])
            row["max_abs_weight_difference_to_first_layout"] = _largest_difference(first, state["model"])
            row["max_abs_weight_difference_to_same_threads"] = _largest_difference(same_threads, state["model"])
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def _largest_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


if __name__ == "__main__":
    main()
