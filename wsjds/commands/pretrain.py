"""``wsjds pretrain``: pretrain a trunk on synthetic scenes (the synthetic stand-in for ImageNet)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="pretrain a trunk on synthetic scenes and write it as a VGG16 state dict",
        description="Supervised classification of the RoI-pooled items of synthetic scenes; BatchNorm folded into the "
                    "convs at the end; the trunk and fc6/fc7 are written in torchvision's VGG16 key layout.")
    parser.add_argument("--settings", required=True,
                        help="JSON of the resolved settings (rule pretrain_settings writes it)")
    parser.add_argument("--out", required=True, help="weights file (written atomically)")
    parser.add_argument("--report", required=True, help="JSON report: held-out accuracy, loss per epoch")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1; rules pass their threads)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch   # imported here so other sub-commands start without loading torch

    from wsjds.stages.pretrain import pretrain_trunk

    settings = json.loads(Path(args.settings).read_text())
    result = pretrain_trunk(settings, args.out, args.report, progress=not args.no_progress)
    print(json.dumps({"accuracy": result["accuracy"], "folded_accuracy": result["folded_accuracy"]}))
    return 0
