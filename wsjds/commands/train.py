"""``wsjds train``: one CGL training round (resumable), and ``wsjds plot-training`` for the curves."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from wsjds.errors import ArtifactError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one CGL round, resuming where the last one stopped")
    add_round_arguments(parser, "train_settings")
    parser.set_defaults(func=run)
    plot = subparsers.add_parser("plot-training", help="plot the loss curves of a run's rounds")
    plot.add_argument("scalars", nargs="+", help="round scalar CSVs, in order")
    plot.add_argument("--out", required=True, help="PNG file")
    plot.add_argument("--title", default="")
    plot.add_argument("--dpi", type=int, default=100, help="pixels per inch (the workflow passes report.dpi)")
    plot.set_defaults(func=run_plot)


def add_round_arguments(parser: argparse.ArgumentParser, settings_rule: str) -> None:
    """The arguments every training round takes (CGL and Fast R-CNN)."""
    parser.add_argument("--settings", required=True,
                        help=f"JSON file of the resolved run settings (rule {settings_rule} writes it)")
    parser.add_argument("--proposals", required=True, help="proposal store of the training split")
    parser.add_argument("--round", type=int, required=True, help="1-based round number")
    parser.add_argument("--previous", help="checkpoint of the previous round (required from round 2)")
    parser.add_argument("--out", required=True, help="this round's checkpoint (written atomically)")
    parser.add_argument("--scalars", help="CSV of this round's per-update scalars")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch (default 1; rules pass their threads), shared by the "
                             "training.world_size processes")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from wsjds.data.kinds import open_split

    settings = read_run_settings(args.settings, "cgl", "wsjds frcnn train")
    data = settings["dataset"]
    source = open_split(data["kind"], data["root"], data["split"], data["include_difficult_labels"])
    return train_and_log(args, settings, source)


def read_run_settings(path: str, section: str, other_command: str) -> dict:
    """A run's settings.json, refused unless it holds ``section`` (``cgl`` or ``frcnn``: which stage
    trains it) and a dataset of a kind the chain trains on."""
    from wsjds.data.kinds import CHAIN_KINDS

    settings = json.loads(Path(path).read_text())
    if section not in settings:
        raise ArtifactError(f"these settings have no {section!r} section: they are another stage's (train "
                            f"them with `{other_command}`)", path=path)
    data = settings["dataset"]
    if data["kind"] not in CHAIN_KINDS:
        raise SystemExit(f"training reads datasets of kind {', '.join(CHAIN_KINDS)}; {data['name']} is {data['kind']}")
    return settings


def train_and_log(args: argparse.Namespace, settings: dict, source, **task) -> int:
    """Train round ``args.round`` of a run and log where it ended; ``task``: train_round's
    ``task_factory`` and ``targets`` for a stage other than CGL."""
    from wsjds.stages.train import train_round

    state = train_round(settings, source, args.proposals, args.round, args.out, args.previous, args.scalars,
                        args.device, progress=not args.no_progress, threads=args.threads, **task)
    last = state["scalars"][-1] if state["scalars"] else {}
    log.info("round %d done: visit %d, last loss %.4f", args.round, state["visit"], last.get("loss", float("nan")))
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from wsjds.report.curves import plot_training_curves

    plot_training_curves(args.scalars, args.out, args.title, args.dpi)
    return 0
