"""``wsjds data summary``: per-class image and object counts of a VOC-layout split, and a validation
pass over its annotations; with ``--check-files`` every image file's header (the cheap check the
workflow runs before any heavy stage), with ``--check-images`` every image decoded."""

from __future__ import annotations

import argparse
import json
import logging

from tqdm import tqdm

from wsjds.data.classes import classes_for
from wsjds.data.summary import format_table, summarize
from wsjds.data.voc import VOCDataset
from wsjds.io import write_json

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect and validate datasets")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    summary = commands.add_parser("summary", help="per-class counts of a VOC-layout split")
    summary.add_argument("--root", required=True, help="the VOC20XX directory (JPEGImages, Annotations, ImageSets)")
    summary.add_argument("--split", required=True, help="name of the ImageSets/Main list, e.g. trainval")
    summary.add_argument("--classes", default="voc", choices=["voc", "synthetic"], help="class list of the dataset")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.add_argument("--out", help="also write the JSON summary to this file (atomically)")
    summary.add_argument("--check-files", action="store_true",
                         help="check every image file exists and its header has the annotation's size (no decoding)")
    summary.add_argument("--check-images", action="store_true",
                         help="decode every image and check its size against the annotation")
    summary.set_defaults(func=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    dataset = VOCDataset(args.root, args.split, classes_for(args.classes))
    annotations = {image_id: dataset.annotation(image_id)
                   for image_id in tqdm(dataset.ids, desc=f"annotations {args.split}", unit="img")}
    if args.check_files:
        for image_id in tqdm(dataset.ids, desc=f"image files {args.split}", unit="img"):
            dataset.check_image(image_id)
    if args.check_images:
        for image_id in tqdm(dataset.ids, desc=f"images {args.split}", unit="img"):
            dataset.read_image(image_id)
    result = {"root": str(args.root), "split": args.split, **summarize(annotations, dataset.classes)}
    log.info("%s/%s: %d images, %d objects (%d difficult)", args.root, args.split, result["totals"]["images"],
             result["totals"]["objects_nondifficult"] + result["totals"]["objects_difficult"],
             result["totals"]["objects_difficult"])
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_table(result))
    return 0
