"""``wsjds <command> ...``: the entry point every Snakemake rule calls.

Each stage's sub-command lives in its own module under ``wsjds.commands`` and registers itself
through ``register(subparsers)``; the chosen sub-command's ``func(args)`` returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from wsjds import __version__
from wsjds.errors import UserError

COMMAND_MODULES: tuple[str, ...] = (
    "wsjds.commands.data",
    "wsjds.commands.synth",
    "wsjds.commands.proposals",
    "wsjds.commands.evaluate",
    "wsjds.commands.pseudo_gt",
    "wsjds.commands.pretrain",
    "wsjds.commands.train",
    "wsjds.commands.frcnn",
    "wsjds.commands.detect",
    "wsjds.commands.masks",
    "wsjds.commands.headline",
    "wsjds.commands.report",
    "wsjds.commands.predict",
)


# The thread pools a torch process reads at start (OpenMP, MKL, OpenBLAS).
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    set_cpu_threads(getattr(args, "threads", None) or 1)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        logging.getLogger("wsjds").error("%s", exc)
        return 2


def set_cpu_threads(threads: int) -> None:
    """Use exactly ``threads`` CPU threads (a job's Snakemake ``threads``; 1 for commands without
    ``--threads``). Set before torch starts its pools: on 2 shared cores a torch job with more
    threads than its share ran about 10x slower."""
    if threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {threads}")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


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
