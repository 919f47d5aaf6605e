"""``wsjds pseudo-gt``: mine pseudo ground truth from WSOD scores on the training split (HDF5 + JSON report).

    wsjds pseudo-gt --kind voc --root VOC2007 --split trainval --dataset voc07 \\
        --scores results/voc07/wsjds/detections/trainval.h5 --policy top1 \\
        --out results/voc07/wsjds/pseudo_gt.h5 --report results/voc07/wsjds/pseudo_gt_report.json
"""

from __future__ import annotations

import argparse
import logging

from wsjds.data.coco import COCODataset
from wsjds.data.kinds import CHAIN_KINDS, open_split
from wsjds.evaluation.ground_truth import ground_truth_from_annotations
from wsjds.evaluation.corloc import CORLOC_DEFINITIONS
from wsjds.stages.pseudo_gt import POLICIES, PseudoGTPolicy, ReportMatching, make_pseudo_gt

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = (*CHAIN_KINDS, "coco")
USAGE_ERROR = 2  # the exit code argparse uses for bad arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pseudo-gt", help="pseudo ground truth for Fast R-CNN retraining",
                                   description=__doc__.splitlines()[0])
    group = parser.add_argument_group("dataset")
    group.add_argument("--kind", required=True, choices=KINDS, help="dataset layout and class list")
    group.add_argument("--root", help="dataset root (voc, synthetic, tags)")
    group.add_argument("--annotations", help="COCO instances JSON of the split (coco)")
    group.add_argument("--split", required=True, help="training split, e.g. trainval")
    group.add_argument("--dataset", required=True, help="dataset name; must match the scores file (e.g. voc07)")
    group.add_argument("--include-difficult-labels", action=argparse.BooleanOptionalAction, default=False,
                       help="count difficult objects as image labels (config datasets.<ds>.include_difficult_labels)")
    parser.add_argument("--scores", required=True,
                        help="WSOD detections (format wsjds.detections) or raw per-proposal scores (wsjds.proposal_scores)")
    policy = parser.add_argument_group("policy (config pseudo_gt)")
    policy.add_argument("--policy", default="top1", choices=POLICIES,
                        help="top1: the top box per positive class (paper); threshold: every box with score >= "
                             "--score-threshold; topk: the --top-k best")
    policy.add_argument("--score-threshold", type=float, help="threshold policy: minimum score")
    policy.add_argument("--top-k", type=int, help="topk policy: boxes per positive class")
    policy.add_argument("--fallback-top1", action=argparse.BooleanOptionalAction, default=True,
                        help="threshold policy: keep the top box when none reaches the threshold (authors' code)")
    report = parser.add_argument_group("sanity report against real boxes (config evaluation)")
    report.add_argument("--iou-threshold", type=float, required=True, help="a pseudo box is correct when IoU > this")
    report.add_argument("--corloc-definition", required=True, choices=CORLOC_DEFINITIONS)
    parser.add_argument("--out", required=True, help="pseudo_gt.h5 to write (atomically)")
    parser.add_argument("--report", required=True, help="sanity report JSON to write (atomically)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy = PseudoGTPolicy(args.policy, args.score_threshold, args.top_k, args.fallback_top1)
    except ValueError as exc:
        return _usage_error(str(exc))
    if args.kind == "coco":
        if not args.annotations:
            return _usage_error("--kind coco needs --annotations")
        split_data = COCODataset(args.annotations, include_difficult_labels=args.include_difficult_labels)
    else:
        if not args.root:
            return _usage_error(f"--kind {args.kind} needs --root")
        split_data = open_split(args.kind, args.root, args.split, args.include_difficult_labels)
    ground_truth = None
    if getattr(split_data, "has_boxes", True):   # a tags dataset without boxes: counts only
        ground_truth = ground_truth_from_annotations(split_data.ids, split_data.annotations(), split_data.classes)
    report = make_pseudo_gt(args.scores, split_data, args.out, args.report, dataset=args.dataset, split=args.split,
                            policy=policy, ground_truth=ground_truth,
                            matching=ReportMatching(args.iou_threshold, args.corloc_definition))
    corloc = report["corloc"]
    log.info("pseudo GT: %d boxes; CorLoc against real boxes: %s", report["num_boxes"],
             "n/a" if corloc is None or corloc["mean"] is None else f"{100 * corloc['mean']:.2f}")
    return 0


def _usage_error(message: str) -> int:
    log.error("wsjds pseudo-gt: %s", message)
    return USAGE_ERROR
