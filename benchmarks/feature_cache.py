"""CPU seconds per training visit with and without the frozen-feature cache, on the synthetic default.

Builds a run's training task from its settings (as ``wsjds train`` does), then times ``--visits``
visits of the run's own visit sequence twice over the same images: the second pass finds every
view in the cache. Reports process CPU seconds per visit (robust when other jobs share the cores)
and wall seconds, for the cache off, its misses and its hits.

    python benchmarks/feature_cache.py --settings results/synth/wsjds/settings.json \
        --proposals results/synth/proposals/trainval.h5 --checkpoint results/synth/wsjds/round1.pt --visits 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True)
    parser.add_argument("--proposals", required=True)
    parser.add_argument("--visits", type=int, default=40)
    parser.add_argument("--progress", type=float, default=0.5, help="training progress of the visits (guidance on < 0.83)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", help="a round checkpoint of the run: its model decides how often gates open")
    args = parser.parse_args()

    import torch

    from wsjds.cgl.task import CGLTask
    from wsjds.data.dataset import TrainingImages
    from wsjds.runs import open_split
    from wsjds.stages.train import TrainingConfig

    torch.set_num_threads(args.threads)
    settings = json.loads(Path(args.settings).read_text())
    cfg = TrainingConfig.from_config(settings["training"])
    source = open_split(settings, settings["dataset"]["split"])
    data = TrainingImages(source, args.proposals, cfg.augmentation, cfg.seed, cfg.max_proposals,
                          total_visits=args.visits)
    samples = [data[v] for v in range(args.visits)]
    results = {}
    for label, cached in (("no cache", False), ("cache", True)):
        torch.manual_seed(0)
        task = CGLTask({**settings, "training": {**settings["training"], "feature_cache": cached}}, torch.device("cpu"))
        if args.checkpoint:
            task.model.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True)["model"])
        task.model.train()
        passes = ["misses", "hits"] if cached else ["all"]
        for name in passes:
            cpu, wall, opened = time.process_time(), time.perf_counter(), 0
            for sample in samples:
                torch.manual_seed(sample.visit)
                objective = task.objective(sample, args.progress)
                objective.loss.backward(inputs=task.model.trainable_parameters())
                task.model.zero_grad(set_to_none=True)
                opened += objective.stats["gate_open"]
            results[f"{label} ({name})"] = {
                "cpu_s_per_visit": round((time.process_time() - cpu) / len(samples), 4),
                "wall_s_per_visit": round((time.perf_counter() - wall) / len(samples), 4),
                "gate_open_visits": int(opened)}
    print(json.dumps({"settings": args.settings, "checkpoint": args.checkpoint, "method": settings["method_name"], "visits": args.visits,
                      "threads": args.threads, "progress": args.progress, "results": results}, indent=2))


if __name__ == "__main__":
    main()
