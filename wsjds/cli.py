"""``wsjds <command> ...``: the entry point every Snakemake rule calls.

Each stage's sub-command lives in its own module under ``wsjds.commands`` and registers itself
through ``register(subparsers)``; the chosen sub-command's ``func(args)`` returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from wsjds import __version__
from wsjds.data.errors import DatasetError

COMMAND_MODULES: tuple[str, ...] = (
    "wsjds.commands.data",
    "wsjds.commands.synth",
    "wsjds.commands.proposals",
    "wsjds.commands.evaluate",
    "wsjds.commands.pseudo_gt",
    "wsjds.commands.pretrain",
    "wsjds.commands.train",
    "wsjds.commands.detect",
    "wsjds.commands.masks",
    "wsjds.commands.headline",
    "wsjds.commands.report",
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except DatasetError as exc:
        logging.getLogger("wsjds").error("%s", exc)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsjds", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"wsjds {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


if __name__ == "__main__":
    sys.exit(main())
