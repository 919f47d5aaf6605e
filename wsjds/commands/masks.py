"""``wsjds masks``: instance masks for detections, in shards, merged, exported and scored.

Variants: ``crf`` / ``nocrf`` (the segmentation branch's class maps with and without the dense CRF,
cut to each box) and the box baselines ``bb`` / ``ell``; exported as COCO segmentation results and
scored with COCO AP^r (and AP^b of the boxes).

    wsjds masks run --detections D.h5 --split test --shard 0/4 --settings mask_settings.json \\
        --checkpoint R.pt --crf-out crf.h5 --nocrf-out nocrf.h5
    wsjds masks run --detections D.h5 --split test --bb-out bb.h5 --ell-out ell.h5
    wsjds masks merge --detections D.h5 --out test.crf.h5 SHARD.h5 ...
    wsjds masks export --masks test.crf.h5 --annotations instances_test.json --coco-json crf.json
    wsjds masks evaluate --annotations instances_test.json --variant crf=crf.json --variant bb=bb.json --out M.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wsjds.errors import ArtifactError
from wsjds.artifacts.mask_store import BOX_VARIANTS, MODEL_VARIANTS, VARIANTS
from wsjds.runs import settings_and_split

log = logging.getLogger(__name__)

UNAVAILABLE_REASON = "the method has no segmentation branch, so only the box baselines exist"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("masks", help="instance masks for detections (CRF, no CRF, BB, ELL)",
                                   description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="masks_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="masks for the detections of one shard of a split")
    run.add_argument("--detections", required=True, help="detections store of the split (format wsjds.detections)")
    run.add_argument("--split", required=True)
    run.add_argument("--shard", default="0/1", help="INDEX/COUNT of the detections' image list (default: all)")
    for variant in VARIANTS:
        run.add_argument(f"--{variant}-out", help=f"write the {variant} masks here")
    run.add_argument("--settings", help="mask_settings.json (rule mask_settings: dataset, classes, mask "
                                        "parameters; needed for crf / nocrf)")
    run.add_argument("--checkpoint", help="trained round checkpoint, holding the model's settings (crf / nocrf)")
    run.add_argument("--device", default="auto", help="device of the network pass (the CRF runs on CPU)")
    run.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1; rules pass their threads)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=run_masks)

    merge = commands.add_parser("merge", help="join mask shards of one variant (every image exactly once)")
    merge.add_argument("--detections", required=True, help="the detections the masks are for (their image list)")
    merge.add_argument("--out", required=True)
    merge.add_argument("shards", nargs="+")
    merge.set_defaults(func=run_merge)

    export = commands.add_parser("export", help="write a mask store as a COCO segmentation results JSON")
    export.add_argument("--masks", required=True)
    export.add_argument("--coco-json", required=True, help="results JSON to write")
    export.add_argument("--annotations", help="COCO instances JSON of the split: standard COCO ids (integer image "
                                              "ids, the file's category ids); without it the package's form")
    export.set_defaults(func=run_export)

    evaluate = commands.add_parser("evaluate", help="COCO AP^r per mask variant and AP^b of the boxes")
    evaluate.add_argument("--annotations", required=True, help="COCO instances JSON with masks")
    evaluate.add_argument("--variant", action="append", required=True, metavar="NAME=JSON",
                          help="a variant's exported results (repeat); AP^b comes from their boxes")
    evaluate.add_argument("--unavailable", nargs="*", default=[], choices=VARIANTS,
                          help="variants the method cannot make (recorded in the output)")
    evaluate.add_argument("--out", required=True, help="metrics JSON to write (atomically)")
    evaluate.set_defaults(func=run_evaluate)


def run_masks(args: argparse.Namespace) -> int:
    import torch

    from wsjds.artifacts.detections import DetectionStore
    from wsjds.stages.masks import MaskParams, write_masks
    from wsjds.artifacts.shards import parse_shard, shard_ids

    outputs = {v: getattr(args, f"{v}_out") for v in VARIANTS if getattr(args, f"{v}_out")}
    if not outputs:
        raise SystemExit("wsjds masks run: give at least one of " + ", ".join(f"--{v}-out" for v in VARIANTS))
    model_variants = [v for v in outputs if v in MODEL_VARIANTS]
    with DetectionStore.open(args.detections, split=args.split) as detections:
        ids = shard_ids(detections.image_ids, *parse_shard(args.shard))
        provenance = {"detections": str(args.detections), "detections_source": detections.header.source}
        model = params = source = device = None
        if model_variants:
            missing = [f"--{name}" for name in ("settings", "checkpoint") if getattr(args, name) is None]
            if missing:
                raise SystemExit(f"wsjds masks run: variants {model_variants} need {', '.join(missing)}")
            settings, source = settings_and_split(args.settings, args.split, ("masks",))
            params = MaskParams.from_json(settings["masks"])
            model, device = _trained_model(args, detections)
            provenance["checkpoint"] = str(args.checkpoint)
        write_masks(ids, detections, outputs, dataset=detections.header.dataset, split=args.split, params=params,
                    model=model, source=source, device=device, provenance=provenance, progress=not args.no_progress)
    log.info("masks %s of %d images of %s (shard %s)", "/".join(outputs), len(ids), args.split, args.shard)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from wsjds.artifacts.detections import DetectionStore
    from wsjds.artifacts.mask_store import MaskStore
    from wsjds.artifacts.shards import merge_shards

    with DetectionStore.open(args.detections) as detections:
        header = detections.header
        ids = detections.image_ids
    count = merge_shards(MaskStore, args.shards, args.out, ids, dataset=header.dataset, split=header.split)
    log.info("merged %d mask shards: %d images -> %s", len(args.shards), count, args.out)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from wsjds.data.coco import COCODataset
    from wsjds.artifacts.mask_store import MaskStore, to_coco_segm_results

    category_ids = known = None
    with MaskStore.open(args.masks) as store:
        if args.annotations:
            dataset = COCODataset(args.annotations)
            if dataset.classes != store.classes:
                raise ArtifactError(f"annotation classes {list(dataset.classes)} differ from the masks' "
                                   f"{list(store.classes)}", path=args.annotations)
            category_ids = sorted(dataset.coco.getCatIds())
            known = [int(i) for i in dataset.ids]
        to_coco_segm_results(store, args.coco_json, category_ids, known)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from wsjds.io import write_json

    variants = {}
    for item in args.variant:
        name, sep, path = item.partition("=")
        if not sep or name not in VARIANTS or not path:
            raise SystemExit(f"wsjds masks evaluate: --variant wants NAME=JSON with NAME in {list(VARIANTS)}, "
                             f"got {item!r}")
        variants[name] = Path(path)
    result = evaluate_instance_segmentation(args.annotations, variants)
    result["unavailable"] = {name: UNAVAILABLE_REASON for name in args.unavailable}
    write_json(args.out, result)
    summary = ", ".join(f"{k} {_pct(v)}" for k, v in result["AP_r"].items())
    log.info("AP^b %s; AP^r %s -> %s", _pct(result["AP_b"]), summary, args.out)
    return 0


def evaluate_instance_segmentation(annotations: str | Path, variants: dict[str, Path]) -> dict:
    """COCO AP^r of each variant's exported masks and AP^b of their (shared) detection boxes.

    Returns ``{"AP_b", "AP_r": {variant: AP}, "box": metric, "masks": {variant: metric}, ...}`` with
    each metric as :meth:`MetricResult.to_json` (the 12 COCO numbers under ``stats``). The variants
    must carry the same detections (boxes, scores, classes), or the AP^b would be ambiguous.
    """
    import numpy as np

    from wsjds.data.coco import COCODataset
    from wsjds.evaluation.coco import evaluate_coco, read_coco_detections

    if not variants:
        raise ValueError("no mask variants to evaluate")
    dataset = COCODataset(annotations)
    masks, first = {}, None
    for name, path in variants.items():
        dets, segmentations = read_coco_detections(path, dataset)
        if first is None:
            first = (path, dets)
            box = evaluate_coco(dataset, dets, "bbox")
        elif not (np.array_equal(dets.boxes, first[1].boxes) and np.array_equal(dets.labels, first[1].labels)
                  and np.array_equal(dets.scores, first[1].scores)
                  and np.array_equal(dets.image_index, first[1].image_index)):
            raise ArtifactError(f"the detections differ from those of {first[0]}: every variant must mask the "
                               "same detections", path=path)
        masks[name] = evaluate_coco(dataset, dets, "segm", segmentations).to_json()
    return {"metric": "coco_instance_segmentation", "annotations": str(annotations), "num_images": len(dataset),
            "AP_b": box.mean, "AP_r": {name: m["mean"] for name, m in masks.items()},
            "box": box.to_json(), "masks": masks, "inputs": {name: str(p) for name, p in variants.items()}}


def _trained_model(args: argparse.Namespace, detections):
    """The trained network, rebuilt from the settings its checkpoint holds (as ``wsjds detect`` does)."""
    import json

    from wsjds.runs import trained_wsjds
    from wsjds.stages.train import load_checkpoint, resolve_device

    state = load_checkpoint(args.checkpoint)
    settings = json.loads(state["settings"])
    if tuple(settings["classes"]) != tuple(detections.classes):
        raise ArtifactError(f"the detections' classes {list(detections.classes)} differ from the classes of the "
                            f"run of {args.checkpoint}: {settings['classes']}", path=detections.path)
    if not settings["method"]["segmentation"]:
        raise SystemExit(f"wsjds masks run: method {settings['method_name']!r} has no segmentation branch; "
                         f"only {', '.join(BOX_VARIANTS)} masks exist for it")
    device = resolve_device(args.device)
    return trained_wsjds(settings, state).to(device), device


def _pct(value) -> str:
    return "undefined" if value is None else f"{100 * value:.2f}"
