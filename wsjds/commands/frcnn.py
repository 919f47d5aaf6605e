"""``wsjds frcnn train``: one round of Fast R-CNN retraining on a CGL run's pseudo GT (resumable)."""

from __future__ import annotations

import argparse

from wsjds.commands.train import add_round_arguments, read_run_settings, train_and_log


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("frcnn", help="Fast R-CNN retraining on pseudo ground truth")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", help="train one Fast R-CNN round, resuming where the last one stopped")
    add_round_arguments(train, "frcnn_settings")
    train.add_argument("--targets", required=True, help="the pseudo-GT store to train on")
    train.add_argument("--wsod-checkpoint",
                       help="the WSOD model to start from (required when frcnn.<preset>.init is 'wsod')")
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from functools import partial

    from wsjds.data.kinds import open_split
    from wsjds.stages.frcnn import FastRCNNTask, PseudoGTImages
    from wsjds.stages.train import load_checkpoint

    settings = read_run_settings(args.settings, "frcnn", "wsjds train")
    wsod_state = None
    if settings["frcnn"]["init"] == "wsod":
        if not args.wsod_checkpoint:
            raise SystemExit(f"{args.settings}: frcnn init is 'wsod'; give --wsod-checkpoint (the WSOD model)")
        wsod_state = load_checkpoint(args.wsod_checkpoint)["model"]
    data = settings["dataset"]
    source = PseudoGTImages(open_split(data["kind"], data["root"], data["split"]).image_path, args.targets)
    return train_and_log(args, settings, source, task_factory=partial(FastRCNNTask, wsod_state=wsod_state),
                         targets=args.targets)
