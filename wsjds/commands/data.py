"""``wsjds data summary``: per-class image and object counts of a split, and a validation pass over
its annotations; with ``--check-files`` every image file's header (the cheap check the workflow runs
before any heavy stage), with ``--check-images`` every image decoded.

``wsjds data tags``: check a folder of images with a CSV of image-level tags and write the
normalised dataset root the chain reads (:mod:`wsjds.data.tags`)."""

from __future__ import annotations

import argparse
import json
import logging

from tqdm import tqdm

from wsjds.data.kinds import CHAIN_KINDS, open_split
from wsjds.data.summary import format_table, summarize, summarize_tags
from wsjds.io import write_json

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="inspect and validate datasets")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    summary = commands.add_parser("summary", help="per-class counts of a split")
    summary.add_argument("--root", required=True, help="the VOC20XX directory (JPEGImages, Annotations, ImageSets), "
                         "or a prepared tags root")
    summary.add_argument("--split", required=True, help="name of the split, e.g. trainval")
    summary.add_argument("--kind", default="voc", choices=CHAIN_KINDS, help="dataset kind (voc: VOC's class list)")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.add_argument("--out", help="also write the JSON summary to this file (atomically)")
    summary.add_argument("--check-files", action="store_true",
                         help="check every image file exists and its header has the annotation's size (no decoding)")
    summary.add_argument("--check-images", action="store_true",
                         help="decode every image and check its size against the annotation")
    summary.set_defaults(func=run_summary)

    tags = commands.add_parser("tags", help="check images + a CSV of tags and write the dataset root the chain reads")
    tags.add_argument("--settings", help="dataset settings JSON (the workflow's results/{ds}/dataset_settings.json): "
                                         "every option below but --out, instead of their flags")
    tags.add_argument("--images", help="folder of jpg / jpeg / png images (required without --settings)")
    tags.add_argument("--labels", help="CSV with the header image,tags (tags separated by spaces; required "
                                       "without --settings)")
    tags.add_argument("--classes", nargs="+", help="class names (default: the sorted tags of the CSV)")
    tags.add_argument("--train-split", help="name of the training split, e.g. trainval (required without --settings)")
    tags.add_argument("--test-split", help="name of the test split, e.g. test (required without --settings)")
    tags.add_argument("--test-fraction", type=float, help="fraction of the images drawn for the test split")
    tags.add_argument("--seed", type=int, help="seed of the test draw (default 0)")
    tags.add_argument("--split-file", help="CSV image,split instead of a random draw")
    tags.add_argument("--out", required=True, help="the dataset root to write (atomically)")
    tags.set_defaults(func=run_tags)


def run_summary(args: argparse.Namespace) -> int:
    dataset = open_split(args.kind, args.root, args.split)
    annotations = None
    if getattr(dataset, "has_boxes", True):
        annotations = {image_id: dataset.annotation(image_id)
                       for image_id in tqdm(dataset.ids, desc=f"annotations {args.split}", unit="img")}
    if args.check_files:
        for image_id in tqdm(dataset.ids, desc=f"image files {args.split}", unit="img"):
            dataset.check_image(image_id)
    if args.check_images:
        for image_id in tqdm(dataset.ids, desc=f"images {args.split}", unit="img"):
            dataset.read_image(image_id)
    counts = (summarize(annotations, dataset.classes) if annotations is not None else
              summarize_tags({i: dataset.image_labels(i) for i in dataset.ids}, dataset.classes))
    result = {"root": str(args.root), "split": args.split, **counts}
    totals = result["totals"]
    objects = ("no boxes" if totals["objects_nondifficult"] is None else
               f"{totals['objects_nondifficult'] + totals['objects_difficult']} objects "
               f"({totals['objects_difficult']} difficult)")
    log.info("%s/%s: %d images, %s", args.root, args.split, totals["images"], objects)
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_table(result))
    return 0


def run_tags(args: argparse.Namespace) -> int:
    from wsjds.commands.settings_flags import settings_or_flags
    from wsjds.data.tags import SplitRule, prepare_tags_dataset
    from wsjds.runs import load_settings

    settings_or_flags(args, "settings", lambda path: load_settings(path, ("tags",))["tags"],
                      ("images", "labels", "train_split", "test_split"),
                      ("classes", "test_fraction", "seed", "split_file"))
    seed = {} if args.seed is None else {"seed": args.seed}  # else SplitRule's default
    rule = SplitRule(args.train_split, args.test_split, args.test_fraction, split_file=args.split_file, **seed)
    manifest = prepare_tags_dataset(args.images, args.labels, args.out, rule, args.classes)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0
