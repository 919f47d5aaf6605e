"""``wsjds evaluate {voc,coco,segmentation}``: score saved predictions and write the metrics JSON.

    wsjds evaluate voc --root VOC2007 --split test --detections D.h5 --metric map [--use07|--no-use07] --out M.json
    wsjds evaluate voc --root VOC2007 --split trainval --detections D.h5 --metric corloc --out C.json
    wsjds evaluate voc --settings results/voc07/evaluation_settings.json --split test --detections D.h5 --metric map --out M.json
    wsjds evaluate failures --root VOC2007 --split trainval --detections D.h5 --instance-cover 0.7 --part-inside 0.8 --out F.json
    wsjds evaluate coco --annotations instances_val2017.json --detections D.json --iou-type segm --out M.json
    wsjds evaluate segmentation --root VOC2012 --split val --predictions PNG_DIR --out M.json
    wsjds evaluate classification --root R --split test --detections D.h5 --out M.json

The workflow's rules pass ``--settings`` (the dataset and the ``evaluation`` numbers, written from
the config by rule ``evaluation_settings``); by hand, give the dataset and the numbers as flags.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

from wsjds.data.classes import classes_for
from wsjds.data.coco import COCODataset
from wsjds.errors import DatasetError
from wsjds.data.kinds import CHAIN_KINDS, open_split, root_kind
from wsjds.evaluation.coco import IOU_TYPES, evaluate_coco, read_coco_detections
from wsjds.evaluation.corloc import CORLOC_DEFINITIONS, CORLOC_IOU_THRESHOLD, DEFAULT_CORLOC_DEFINITION, evaluate_corloc
from wsjds.evaluation.detections_io import read_detections
from wsjds.evaluation.failure_modes import evaluate_failure_modes
from wsjds.evaluation.ground_truth import load_ground_truth
from wsjds.evaluation.result import MetricResult
from wsjds.evaluation.segmentation import evaluate_voc_segmentation
from wsjds.evaluation.voc import DEVKIT_IOU_THRESHOLD, evaluate_voc_map
from wsjds.io import write_json
from wsjds.commands.settings_flags import evaluation_values, settings_or_flags

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("map", "corloc")
# VOC2010 replaced the 11-point AP by the area under the curve.
FIRST_AREA_METRIC_YEAR = 2010
_YEAR_IN_ROOT = re.compile(r"VOC(\d{4})", re.IGNORECASE)
_TRAINING_SPLITS = ("trainval", "train", "val")
_SETTINGS_HELP = ("evaluation settings JSON (the workflow's results/{ds}/evaluation_settings.json): the dataset, "
                  "its box annotations and the `evaluation` numbers, instead of --root, --kind, --boxes and the "
                  "numbers' flags")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="VOC mAP / CorLoc, COCO AP^b / AP^r, segmentation mIoU",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="evaluate_command", required=True, metavar="BENCHMARK")

    voc = actions.add_parser("voc", help="VOC devkit AP (mAP) or CorLoc on a VOC-layout split")
    voc.add_argument("--settings", help=_SETTINGS_HELP)
    voc.add_argument("--root", help="the VOC20XX directory (or the synthetic dataset's root)")
    voc.add_argument("--split", required=True, help="ImageSets/Main list, e.g. test (mAP) or trainval (CorLoc)")
    voc.add_argument("--kind", choices=CHAIN_KINDS, help="dataset kind (default: what the root's dataset.json says, else voc)")
    voc.add_argument("--boxes", help="a tags dataset's box annotations: VOC XML folder or COCO instances JSON")
    voc.add_argument("--detections", required=True,
                     help="detections .h5 (format wsjds.detections), a JSON list {image_id, category_id (0-based), "
                          "bbox [x, y, w, h], score}, or a directory of comp4_det_{split}_{class}.txt files")
    voc.add_argument("--metric", required=True, choices=METRICS)
    voc.add_argument("--use07", action=argparse.BooleanOptionalAction, default=None,
                     help="11-point AP (VOC2007) instead of the area under the curve; default: the area for a "
                          "synthetic root, else from the year in the root's name (VOC2007 -> 11-point)")
    voc.add_argument("--iou-threshold", type=float, default=None,
                     help=f"match when IoU > this (devkit and authors' CorLoc: {DEVKIT_IOU_THRESHOLD})")
    voc.add_argument("--corloc-definition", choices=CORLOC_DEFINITIONS,
                     help="authors: skip images whose instances are all difficult (WS-JDS, DRN; the default); "
                          "pcl: count every image with an instance (PCL, wetectron)")
    voc.add_argument("--cache-dir", help="keep parsed annotations here, keyed by the XML files' content")
    voc.add_argument("--out", required=True, help="metrics JSON to write (atomically)")
    voc.set_defaults(func=_run_voc)

    failures = actions.add_parser("failures", help="what the top box per (image, class) does: correct, merged "
                                                   "instances, a part only, other, missed")
    failures.add_argument("--settings", help=_SETTINGS_HELP)
    failures.add_argument("--root", help="the VOC20XX directory (or the synthetic dataset's root)")
    failures.add_argument("--split", required=True, help="ImageSets/Main list, usually trainval (as CorLoc)")
    failures.add_argument("--kind", choices=CHAIN_KINDS, help="dataset kind (default: what the root's dataset.json says, else voc)")
    failures.add_argument("--boxes", help="a tags dataset's box annotations: VOC XML folder or COCO instances JSON")
    failures.add_argument("--detections", required=True, help="detections, in any form `evaluate voc` reads")
    failures.add_argument("--iou-threshold", type=float,
                          help=f"correct when IoU > this (default {CORLOC_IOU_THRESHOLD}, as CorLoc)")
    failures.add_argument("--instance-cover", type=float,
                          help="an instance is covered when this fraction of its box lies inside the detection "
                               "(required without --settings)")
    failures.add_argument("--part-inside", type=float,
                          help="a part box has this fraction of its own area inside one instance's box "
                               "(required without --settings)")
    failures.add_argument("--cache-dir", help="keep parsed annotations here, keyed by the XML files' content")
    failures.add_argument("--out", required=True, help="JSON to write (atomically)")
    failures.set_defaults(func=_run_failures)

    coco = actions.add_parser("coco", help="COCO AP / AP50 / AP75 / S / M / L through pycocotools")
    coco.add_argument("--annotations", required=True, help="COCO instances JSON of the split")
    coco.add_argument("--detections", required=True,
                      help="detections .h5 (boxes), a package-form JSON list (string image ids, 0-based "
                           "category_id), or a standard COCO results JSON (integer image ids); masks as "
                           "'segmentation' RLE")
    coco.add_argument("--iou-type", default="bbox", choices=IOU_TYPES, help="bbox (AP^b) or segm (AP^r)")
    coco.add_argument("--out", required=True, help="metrics JSON to write (atomically)")
    coco.set_defaults(func=_run_coco)

    cls = actions.add_parser("classification", help="image-level classification AP of the detections' best scores "
                             "(no boxes needed)")
    cls.add_argument("--settings", help=_SETTINGS_HELP)
    cls.add_argument("--root", help="dataset root (VOC layout, synthetic or a prepared tags root)")
    cls.add_argument("--split", required=True)
    cls.add_argument("--kind", choices=CHAIN_KINDS, help="dataset kind (default: what the root's dataset.json says, else voc)")
    cls.add_argument("--detections", required=True, help="detections HDF5 (format wsjds.detections), COCO JSON or comp4 dir")
    cls.add_argument("--out", required=True, help="metrics JSON to write (atomically)")
    cls.set_defaults(func=_run_classification)

    seg = actions.add_parser("segmentation", help="semantic-segmentation mIoU on a VOC segmentation split")
    seg.add_argument("--root", required=True, help="the VOC20XX directory (or the synthetic dataset's root)")
    seg.add_argument("--split", required=True, help="ImageSets/Segmentation list, e.g. val")
    seg.add_argument("--kind", choices=("voc", "synthetic"), help="class list of the dataset (default: synthetic where the root's dataset.json says so, else voc)")
    seg.add_argument("--predictions", required=True,
                     help="directory of {id}.png label maps (class index + 1, 0 = background)")
    seg.add_argument("--out", required=True, help="metrics JSON to write (atomically)")
    seg.set_defaults(func=_run_segmentation)


def _run_voc(args: argparse.Namespace) -> int:
    settings_or_flags(args, "settings", evaluation_values, ("root",),
                      ("kind", "boxes", "use07", "iou_threshold", "corloc_definition"))
    kind = _kind(args)
    use07 = None
    if args.metric == "map":  # resolved first: a missing year fails before any file is read
        use07 = args.use07 if args.use07 is not None else kind == "voc" and _use07_from_root(args.root)
    start = time.perf_counter()
    gt = load_ground_truth(open_split(kind, args.root, args.split, boxes=args.boxes), cache_dir=args.cache_dir)
    classes = gt.classes
    dets = read_detections(args.detections, gt.image_ids, classes, split=args.split)
    loaded = time.perf_counter()
    if args.metric == "map":
        threshold = DEVKIT_IOU_THRESHOLD if args.iou_threshold is None else args.iou_threshold
        log.info("VOC AP on %s, split %s: %s metric, IoU > %g, %d detections", args.root, args.split,
                 "11-point (VOC2007)" if use07 else "area (VOC2010+)", threshold, len(dets))
        result = evaluate_voc_map(gt, dets, use07, threshold)
    else:
        if args.split not in _TRAINING_SPLITS:
            log.warning("CorLoc is a training-set measure (trainval, or train and val); computing it on %r",
                        args.split)
        threshold = CORLOC_IOU_THRESHOLD if args.iou_threshold is None else args.iou_threshold
        definition = args.corloc_definition or DEFAULT_CORLOC_DEFINITION
        log.info("CorLoc (%s definition) on %s, split %s: IoU > %g, %d detections", definition,
                 args.root, args.split, threshold, len(dets))
        result = evaluate_corloc(gt, dets, definition, threshold)
    done = time.perf_counter()
    log.info("read in %.2f s, evaluated in %.2f s", loaded - start, done - loaded)
    _write(args.out, result, {"root": str(args.root), "split": args.split, "detections": str(args.detections),
                              "classes": list(classes)})
    return 0


def _run_failures(args: argparse.Namespace) -> int:
    settings_or_flags(args, "settings", evaluation_values, ("root", "instance_cover", "part_inside"),
                      ("kind", "boxes", "iou_threshold"))
    threshold = CORLOC_IOU_THRESHOLD if args.iou_threshold is None else args.iou_threshold
    gt = load_ground_truth(open_split(_kind(args), args.root, args.split, boxes=args.boxes), cache_dir=args.cache_dir)
    classes = gt.classes
    dets = read_detections(args.detections, gt.image_ids, classes, split=args.split)
    result = evaluate_failure_modes(gt, dets, threshold, args.instance_cover, args.part_inside)
    log.info("failure modes on %s, split %s: %s", args.root, args.split,
             ", ".join(f"{k} {v:.3f}" for k, v in result.details["fractions"].items() if v is not None))
    _write(args.out, result, {"root": str(args.root), "split": args.split, "detections": str(args.detections),
                              "classes": list(classes)})
    return 0


def _run_coco(args: argparse.Namespace) -> int:
    dataset = COCODataset(args.annotations)
    dets, masks = read_coco_detections(args.detections, dataset)
    log.info("COCO %s on %s: %d detections", args.iou_type, args.annotations, len(dets))
    result = evaluate_coco(dataset, dets, args.iou_type, masks if args.iou_type == "segm" else None)
    _write(args.out, result, {"annotations": str(args.annotations), "detections": str(args.detections)})
    return 0


def _run_classification(args: argparse.Namespace) -> int:
    import numpy as np

    from wsjds.evaluation.classification import evaluate_classification, image_scores

    settings_or_flags(args, "settings", evaluation_values, ("root",), ("kind",))
    dataset = open_split(_kind(args), args.root, args.split)
    dets = read_detections(args.detections, dataset.ids, dataset.classes, split=args.split)
    labels = np.stack([dataset.image_labels(i) for i in dataset.ids])
    result = evaluate_classification(labels, image_scores(dets, len(dataset.classes)), dataset.classes)
    _write(args.out, result, {"root": str(args.root), "split": args.split, "detections": str(args.detections),
                              "classes": list(dataset.classes)})
    return 0


def _run_segmentation(args: argparse.Namespace) -> int:
    result = evaluate_voc_segmentation(args.root, args.split, classes_for(_kind(args)), args.predictions)
    _write(args.out, result, {"root": str(args.root), "split": args.split, "predictions": str(args.predictions)})
    return 0


def _kind(args: argparse.Namespace) -> str:
    """``--kind``, else what the root says: the synthetic generator's dataset.json, or VOC."""
    if args.kind is not None:
        return args.kind
    kind = root_kind(args.root)
    log.info("dataset kind %s, from %s", kind, "its dataset.json" if kind != "voc" else "no dataset.json of another kind")
    return kind


def _use07_from_root(root: str) -> bool:
    """11-point AP for VOC years before 2010, read from the root's name (e.g. .../VOC2007)."""
    match = _YEAR_IN_ROOT.search(Path(root).resolve().name) or _YEAR_IN_ROOT.search(Path(root).name)
    if match is None:
        raise DatasetError("cannot tell the VOC year from the root's name; pass --use07 (11-point AP, VOC2007) "
                           "or --no-use07 (area under the curve, VOC2010+)", path=root)
    year = int(match.group(1))
    log.info("VOC year %d from the root's name: %s", year, "11-point AP" if year < FIRST_AREA_METRIC_YEAR else
             "area under the curve")
    return year < FIRST_AREA_METRIC_YEAR


def _write(out: str, result: MetricResult, inputs: dict) -> None:
    payload = {**result.to_json(), **inputs}
    write_json(out, payload)
    mean = "undefined" if result.mean is None else f"{100 * result.mean:.2f}"
    log.info("%s = %s -> %s", result.metric, mean, out)
