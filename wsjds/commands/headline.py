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
    parser.add_argument("--frcnn-map", help="metrics JSON of the retrained detector (test mAP)")
    parser.add_argument("--wsod-map", help="metrics JSON of the WSOD detector (test mAP)")
    parser.add_argument("--corloc", help="metrics JSON of the WSOD CorLoc (trainval)")
    parser.add_argument("--frcnn-cls-map", help="image-level classification AP of the retrained detector (test)")
    parser.add_argument("--wsod-cls-map", help="image-level classification AP of the WSOD detector (test)")
    parser.add_argument("--pseudo-gt-report", required=True)
    parser.add_argument("--config-hash", required=True)
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=run)


BOX_METRICS_SKIPPED = ("skipped: the dataset has no box annotations (set datasets.{ds}.boxes to a VOC XML folder "
                       "or a COCO JSON to measure mAP and CorLoc)")


def run(args: argparse.Namespace) -> int:
    from wsjds.io import write_json

    box = [args.frcnn_map, args.wsod_map, args.corloc]
    if any(box) and not all(box):
        raise SystemExit("wsjds headline: --frcnn-map, --wsod-map and --corloc go together")
    if not any(box) and not (args.frcnn_cls_map and args.wsod_cls_map):
        raise SystemExit("wsjds headline: without box metrics, --frcnn-cls-map and --wsod-cls-map are needed")
    report = json.loads(Path(args.pseudo_gt_report).read_text())
    headline: dict = {"dataset": args.dataset, "method": args.method}
    summary = []
    if all(box):
        frcnn, wsod, corloc = (_read(p) for p in box)
        headline.update({"frcnn_map": _metric(frcnn), "wsod_map": _metric(wsod), "wsod_corloc": _metric(corloc)})
        summary.append(f"Fast R-CNN mAP {frcnn['mean']:.4f} (WSOD mAP {wsod['mean']:.4f}, CorLoc {corloc['mean']:.4f})")
    else:
        headline["box_metrics"] = BOX_METRICS_SKIPPED.format(ds=args.dataset)
        summary.append("no box annotations: box metrics skipped")
    if args.frcnn_cls_map:
        frcnn_cls, wsod_cls = _read(args.frcnn_cls_map), _read(args.wsod_cls_map)
        headline.update({"frcnn_cls_map": _metric(frcnn_cls), "wsod_cls_map": _metric(wsod_cls)})
        summary.append(f"image classification mAP {frcnn_cls['mean']:.4f} (WSOD {wsod_cls['mean']:.4f})")
    headline["pseudo_gt"] = {key: report[key] for key in ("corloc", "precision", "boxes_per_class")
                             if report.get(key) is not None}
    headline.update({"config_hash": args.config_hash, "commit": _commit(), "wsjds_version": __version__})
    write_json(args.out, headline)
    print(f"{args.dataset}: " + "; ".join(summary))
    return 0


def _read(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _metric(result: dict) -> dict:
    return {"mean": result["mean"], "per_class": result["per_class"]}


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
