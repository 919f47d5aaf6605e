"""``wsjds headline``: the one JSON a user asks for: the retrained detector's test mAP per class,
the WSOD mAP and CorLoc it came from, the pseudo-GT quality, the config hash and the commit."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from wsjds import __version__


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("headline", help="assemble results/{ds}_frcnn_map.json")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--frcnn-map", required=True, help="metrics JSON of the retrained detector (test mAP)")
    parser.add_argument("--wsod-map", required=True, help="metrics JSON of the WSOD detector (test mAP)")
    parser.add_argument("--corloc", required=True, help="metrics JSON of the WSOD CorLoc (trainval)")
    parser.add_argument("--pseudo-gt-report", required=True)
    parser.add_argument("--config-hash", required=True)
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wsjds.io import write_json

    frcnn, wsod, corloc = (json.loads(Path(p).read_text()) for p in (args.frcnn_map, args.wsod_map, args.corloc))
    report = json.loads(Path(args.pseudo_gt_report).read_text())
    headline = {
        "dataset": args.dataset, "method": args.method,
        "frcnn_map": {"mean": frcnn["mean"], "per_class": frcnn["per_class"]},
        "wsod_map": {"mean": wsod["mean"], "per_class": wsod["per_class"]},
        "wsod_corloc": {"mean": corloc["mean"], "per_class": corloc["per_class"]},
        "pseudo_gt": {key: report[key] for key in ("corloc", "precision") if key in report},
        "config_hash": args.config_hash, "commit": _commit(), "wsjds_version": __version__,
    }
    write_json(args.out, headline)
    print(f"{args.dataset}: Fast R-CNN mAP {frcnn['mean']:.4f} (WSOD mAP {wsod['mean']:.4f}, "
          f"CorLoc {corloc['mean']:.4f})")
    return 0


def _commit() -> str:
    """The checkout's commit (suffixed -dirty with local changes), or 'unknown' outside git."""
    package_dir = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package_dir,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")
