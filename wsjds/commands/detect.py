"""``wsjds detect``: detections of a split by a WSOD or a Fast R-CNN run, with test-time augmentation,
in shards, then merged and exported (COCO results JSON, VOC comp4 files)."""

from __future__ import annotations

import argparse
import logging

from wsjds.runs import settings_and_split

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("detect", help="detect a split (or one shard of it) with a trained model")
    commands = parser.add_subparsers(dest="detect_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="detect the images of one shard")
    run.add_argument("--settings", required=True,
                     help="the run's detect_settings.json (rule detect_settings): dataset, classes, inference preset")
    run.add_argument("--checkpoint", required=True, help="trained round checkpoint (it holds the model's settings)")
    run.add_argument("--proposals", required=True, help="proposal store of the split")
    run.add_argument("--split", required=True)
    run.add_argument("--shard", default="0/1", help="INDEX/COUNT of the split's image list (default: all)")
    run.add_argument("--out", required=True, help="detections HDF5 to write")
    run.add_argument("--raw-scores", help="also write the per-proposal class scores here (pseudo-GT mining)")
    run.add_argument("--device", default="auto")
    run.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1; rules pass their threads)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=run_detect)

    merge = commands.add_parser("merge", help="join detection shards (every image of the split exactly once)")
    merge.add_argument("--settings", required=True, help="the run's detect_settings.json")
    merge.add_argument("--split", required=True)
    merge.add_argument("--out", required=True)
    merge.add_argument("shards", nargs="+")
    merge.set_defaults(func=run_merge)

    export = commands.add_parser("export", help="write a detections store as COCO results JSON and comp4 files")
    export.add_argument("--detections", required=True)
    export.add_argument("--coco-json", required=True)
    export.add_argument("--comp4-dir", required=True)
    export.set_defaults(func=run_export)


def run_detect(args: argparse.Namespace) -> int:
    from wsjds.stages.infer import InferenceConfig, detect_split
    from wsjds.runs import trained_scorer
    from wsjds.artifacts.shards import parse_shard, shard_ids
    from wsjds.stages.train import resolve_device

    settings, source = settings_and_split(args.settings, args.split, ("classes", "inference"))
    device = resolve_device(args.device)
    cfg = InferenceConfig.from_config(settings["inference"])
    scorer, name = trained_scorer(None, args.checkpoint, cfg, device, classes=settings["classes"])
    ids = shard_ids(source.ids, *parse_shard(args.shard))
    detect_split(scorer, source, args.proposals, ids, args.out, cfg, dataset=settings["dataset"]["name"],
                 split=args.split, classes=settings["classes"], source_name=name, raw_scores_out=args.raw_scores,
                 progress=not args.no_progress)
    log.info("detected %d images of %s (shard %s) -> %s", len(ids), args.split, args.shard, args.out)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from wsjds.artifacts.detections import DetectionStore
    from wsjds.artifacts.shards import merge_shards

    settings, source = settings_and_split(args.settings, args.split)
    count = merge_shards(DetectionStore, args.shards, args.out, source.ids, dataset=settings["dataset"]["name"],
                         split=args.split)
    log.info("merged %d shards: %d images -> %s", len(args.shards), count, args.out)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from wsjds.artifacts.detections import DetectionStore, to_coco_results, to_voc_comp4
    from wsjds.io import atomic_path

    with DetectionStore.open(args.detections) as store:
        to_coco_results(store, args.coco_json)
        with atomic_path(args.comp4_dir) as tmp:
            tmp.mkdir()
            to_voc_comp4(store, tmp)
    return 0
