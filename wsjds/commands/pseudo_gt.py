"""``wsjds pseudo-gt``: mine pseudo ground truth from WSOD scores on the training split (HDF5 + JSON report).

    wsjds pseudo-gt --settings results/voc07/wsjds/pseudo_gt_settings.json \\
        --scores results/voc07/wsjds/detections/trainval.h5 \\
        --out results/voc07/wsjds/pseudo_gt.h5 --report results/voc07/wsjds/pseudo_gt_report.json

The settings file (rule ``pseudo_gt_settings``) holds the dataset, the training split, the policy
(config ``pseudo_gt``) and the matching of the sanity report (config ``evaluation``).
"""

from __future__ import annotations

import argparse
import logging

from wsjds.errors import ArtifactError
from wsjds.evaluation.ground_truth import ground_truth_from_annotations
from wsjds.data.kinds import CHAIN_KINDS
from wsjds.runs import dataset_section, load_settings, open_split
from wsjds.stages.pseudo_gt import PseudoGTPolicy, ReportMatching, make_pseudo_gt

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pseudo-gt", help="pseudo ground truth for Fast R-CNN retraining",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True,
                        help="pseudo_gt_settings.json (rule pseudo_gt_settings): dataset, split, policy, matching")
    parser.add_argument("--scores", required=True,
                        help="WSOD detections (format wsjds.detections) or raw per-proposal scores (wsjds.proposal_scores)")
    parser.add_argument("--out", required=True, help="pseudo_gt.h5 to write (atomically)")
    parser.add_argument("--report", required=True, help="sanity report JSON to write (atomically)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings, ("dataset", "split", "pseudo_gt", "matching"))
    try:
        policy = PseudoGTPolicy.from_config(settings["pseudo_gt"])
        matching = ReportMatching.from_config(settings["matching"])
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"bad pseudo-GT settings: {exc}", path=args.settings) from None
    dataset_section(settings, args.settings, (*CHAIN_KINDS, "coco"), ("name", "kind", "root", "include_difficult_labels"))
    split = settings["split"]
    split_data = open_split(settings, split)
    ground_truth = None
    if getattr(split_data, "has_boxes", True):   # a tags dataset without boxes: counts only
        ground_truth = ground_truth_from_annotations(split_data.ids, split_data.annotations(), split_data.classes)
    report = make_pseudo_gt(args.scores, split_data, args.out, args.report, dataset=settings["dataset"]["name"],
                            split=split, policy=policy, ground_truth=ground_truth, matching=matching)
    corloc = report["corloc"]
    log.info("pseudo GT: %d boxes; CorLoc against real boxes: %s", report["num_boxes"],
             "n/a" if corloc is None or corloc["mean"] is None else f"{100 * corloc['mean']:.2f}")
    return 0
