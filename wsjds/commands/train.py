"""``wsjds train``: one CGL training round (resumable), and ``wsjds train plot`` for the curves."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one CGL round, resuming where the last one stopped")
    parser.add_argument("--settings", required=True,
                        help="JSON file of the resolved run settings (rule train_settings writes it)")
    parser.add_argument("--proposals", required=True, help="proposal store of the training split")
    parser.add_argument("--round", type=int, required=True, help="1-based round number")
    parser.add_argument("--previous", help="checkpoint of the previous round (required from round 2)")
    parser.add_argument("--out", required=True, help="this round's checkpoint (written atomically)")
    parser.add_argument("--scalars", help="CSV of this round's per-update scalars")
    parser.add_argument("--targets", help="Fast R-CNN runs: the pseudo-GT store to train on")
    parser.add_argument("--wsod-checkpoint", help="Fast R-CNN runs with init 'wsod': the WSOD model to start from")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (default 1; rules pass their threads), shared by the "
                             "training.world_size processes")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)
    plot = subparsers.add_parser("plot-training", help="plot the loss curves of a run's rounds")
    plot.add_argument("scalars", nargs="+", help="round scalar CSVs, in order")
    plot.add_argument("--out", required=True, help="PNG file")
    plot.add_argument("--title", default="")
    plot.add_argument("--dpi", type=int, default=100, help="pixels per inch (the workflow passes report.dpi)")
    plot.set_defaults(func=run_plot)


def run(args: argparse.Namespace) -> int:
    from wsjds.data.kinds import CHAIN_KINDS, open_split
    from wsjds.train import train_round

    settings = json.loads(Path(args.settings).read_text())
    data = settings["dataset"]
    if data["kind"] not in CHAIN_KINDS:
        raise SystemExit(f"training reads datasets of kind {', '.join(CHAIN_KINDS)}; {data['name']} is {data['kind']}")
    task_factory, targets = None, None
    if "frcnn" in settings:
        from functools import partial

        from wsjds.frcnn import FastRCNNTask, PseudoGTImages
        from wsjds.train import load_checkpoint

        if not args.targets:
            raise SystemExit("a Fast R-CNN run needs --targets (the pseudo-GT store)")
        wsod_state = load_checkpoint(args.wsod_checkpoint)["model"] if settings["frcnn"]["init"] == "wsod" else None
        task_factory, targets = partial(FastRCNNTask, wsod_state=wsod_state), args.targets
        source = PseudoGTImages(open_split(data["kind"], data["root"], data["split"]).image_path, args.targets)
    else:
        source = open_split(data["kind"], data["root"], data["split"], data["include_difficult_labels"])
    state = train_round(settings, source, args.proposals, args.round, args.out, args.previous, args.scalars,
                        args.device, progress=not args.no_progress, task_factory=task_factory, targets=targets,
                        threads=args.threads)
    last = state["scalars"][-1] if state["scalars"] else {}
    log.info("round %d done: visit %d, last loss %.4f", args.round, state["visit"], last.get("loss", float("nan")))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from wsjds.report.curves import plot_training_curves

    plot_training_curves(args.scalars, args.out, args.title, args.dpi)
    return 0
