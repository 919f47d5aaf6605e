"""``wsjds report``: the pages and figures of `snakemake --report` (rules/report.smk).

    wsjds report metrics-table --title T --wsod-map M.json --wsod-corloc C.json [--frcnn-map F.json] \\
        [--instance-seg I.json] [--paper-method wsjds] --out metrics.html
    wsjds report pr-curves --root R --kind synthetic --split test --detections D.h5 --use07 \\
        --iou-threshold 0.5 --columns 5 --panel-inches 2.6 --dpi 100 --out pr.png
    wsjds report pr-curves --settings results/synth/report_settings.json --split test --detections D.h5 --out pr.png
    wsjds report figure4 --settings S.json --checkpoint R.pt --proposals P.h5 --split test --images 4 \\
        --scale 208 --max-side 320 --map-min-score 0 --panel-inches 2.4 --dpi 100 --out fig4.png
    wsjds report ablation --dataset synth --config-hash H --seeds 11 12 \
        --run wsddn 11 M.json C.json [F.json] --run wsddn 12 ... [--failures wsddn 11 FM.json ...] \
        --panel-inches 3.6 --dpi 100 \
        --out-json results/synth_ablation.json --out-plot results/synth_ablation.png

The workflow's rules pass ``--settings`` (``--report-settings`` for figure4): the dataset, the
evaluation numbers and the figures' numbers, written from the config by rule ``report_settings``;
by hand, give them as flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from wsjds.commands.settings_flags import report_values, settings_or_flags
from wsjds.data.kinds import CHAIN_KINDS
from wsjds.errors import ArtifactError, UserError

log = logging.getLogger(__name__)


def _settings_help(item: str) -> str:
    return (f"report settings JSON (the workflow's results/{{ds}}/report_settings.json): its {item!r} figure numbers "
            "and the dataset, instead of their flags")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="metrics tables, PR curves, the Fig. 4 figure, the ablation",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="report_command", required=True, metavar="ITEM")

    table = actions.add_parser("metrics-table", help="per-class AP / CorLoc of a run, beside the paper's (HTML)")
    table.add_argument("--title", required=True)
    table.add_argument("--wsod-map", required=True, help="metrics JSON of the WSOD detector's test mAP")
    table.add_argument("--wsod-corloc", required=True, help="metrics JSON of the WSOD detector's CorLoc")
    table.add_argument("--frcnn-map", help="metrics JSON of the retrained Fast R-CNN's test mAP")
    table.add_argument("--instance-seg", help="JSON of `wsjds masks evaluate` (AP^b, AP^r per variant)")
    table.add_argument("--paper-method", help="put the paper's VOC2007 columns of this method beside ours "
                                              "(wsddn, parallel, det2seg, seg2det, wsjds); omit for other datasets")
    table.add_argument("--out", required=True, help="HTML file to write (atomically)")
    table.set_defaults(func=run_metrics_table)

    pr = actions.add_parser("pr-curves", help="precision-recall curve per class of saved detections (PNG)")
    pr.add_argument("--settings", help=_settings_help("pr-curves"))
    pr.add_argument("--root", help="the VOC20XX directory (or the synthetic dataset's root)")
    pr.add_argument("--kind", choices=CHAIN_KINDS, help="class list of the dataset (default voc)")
    pr.add_argument("--boxes", help="a tags dataset's box annotations: VOC XML folder or COCO instances JSON")
    pr.add_argument("--split", required=True)
    pr.add_argument("--detections", required=True, help="detections .h5, JSON list or comp4 directory")
    pr.add_argument("--use07", action=argparse.BooleanOptionalAction,
                    help="11-point AP (VOC2007) in the panel titles, else the area under the curve")
    pr.add_argument("--iou-threshold", type=float, help="a match needs IoU > this")
    pr.add_argument("--columns", type=int, help="panels per row")
    pr.add_argument("--panel-inches", type=float, help="side of one panel")
    pr.add_argument("--dpi", type=int)
    pr.add_argument("--title", default="")
    pr.add_argument("--out", required=True, help="PNG file to write (atomically)")
    pr.set_defaults(func=run_pr_curves)

    fig = actions.add_parser("figure4", help="image, localization map, seeds, segmentation for a few images (PNG)")
    fig.add_argument("--settings", required=True, help="the CGL run's settings.json")
    fig.add_argument("--checkpoint", required=True, help="its trained round checkpoint")
    fig.add_argument("--proposals", required=True, help="proposals of the split")
    fig.add_argument("--split", required=True)
    fig.add_argument("--report-settings", help="report settings JSON (the workflow's results/{ds}/report_settings.json): "
                                               "its 'figure4' numbers, instead of their flags")
    fig.add_argument("--images", type=int, help="the first N images of the split, one column each")
    fig.add_argument("--scale", type=int, help="test scale (shorter side)")
    fig.add_argument("--max-side", type=int, help="cap on the longer side")
    fig.add_argument("--map-min-score", type=float,
                     help="show a labelled class's map when its image score reaches this (0: always)")
    fig.add_argument("--panel-inches", type=float, help="side of one cell")
    fig.add_argument("--dpi", type=int)
    fig.add_argument("--device", default="auto")
    fig.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1; rules pass their threads)")
    fig.add_argument("--title", default="")
    fig.add_argument("--out", required=True, help="PNG file to write (atomically)")
    fig.set_defaults(func=run_figure4)

    gallery = actions.add_parser("gallery", help="test images with the detector's boxes and masks drawn (PNG)")
    gallery.add_argument("--settings", help=_settings_help("gallery"))
    gallery.add_argument("--root", help="dataset root the detections are of")
    gallery.add_argument("--kind", choices=CHAIN_KINDS)
    gallery.add_argument("--split", required=True)
    gallery.add_argument("--detections", required=True, help="detections HDF5 (format wsjds.detections)")
    gallery.add_argument("--masks", help="mask HDF5 of the same detections (wsjds masks)")
    gallery.add_argument("--images", type=int, help="the first N images of the split")
    gallery.add_argument("--columns", type=int, help="panels per row")
    gallery.add_argument("--panel-inches", type=float, help="side of one panel")
    gallery.add_argument("--min-score", type=float, help="draw detections scoring at least this")
    gallery.add_argument("--max-boxes", type=int, help="at most this many per image, best first")
    gallery.add_argument("--dpi", type=int)
    gallery.add_argument("--title", default="")
    gallery.add_argument("--out", required=True, help="PNG file to write (atomically)")
    gallery.set_defaults(func=run_gallery)

    abl = actions.add_parser("ablation", help="the Table 1 ablation over methods and seeds (JSON and PNG)")
    abl.add_argument("--dataset", required=True)
    abl.add_argument("--config-hash", required=True, help="wsjds.workflow.config_hash of the run's config")
    abl.add_argument("--settings", help=_settings_help("ablation"))
    abl.add_argument("--seeds", type=int, nargs="+", help="the training seeds of every method")
    abl.add_argument("--run", action="append", nargs="+", required=True, metavar="ARG",
                     help="METHOD SEED WSOD_MAP CORLOC [FRCNN_MAP]: one method trained with one seed, its metrics "
                          "JSONs (test mAP, trainval CorLoc, Fast R-CNN test mAP); repeat for every method and seed")
    abl.add_argument("--failures", action="append", nargs=3, default=[], metavar=("METHOD", "SEED", "JSON"),
                     help="the `wsjds evaluate failures` JSON of a run (trainval); give one for every run of a "
                          "method or none")
    abl.add_argument("--panel-inches", type=float, help="side of one metric's panel")
    abl.add_argument("--dpi", type=int)
    abl.add_argument("--show-paper", action=argparse.BooleanOptionalAction,
                     help="mark the paper's VOC2007 means in the plot (for VOC2007 runs)")
    abl.add_argument("--title", default="")
    abl.add_argument("--out-json", required=True, help="summary JSON to write (atomically)")
    abl.add_argument("--out-plot", required=True, help="PNG file to write (atomically)")
    abl.set_defaults(func=run_ablation)


def run_metrics_table(args: argparse.Namespace) -> int:
    from wsjds.report.paper import TABLE1_WSOD_AP, paper_reference
    from wsjds.report.tables import metrics_table, read_metrics, write_metrics_html

    if args.paper_method is not None and args.paper_method not in TABLE1_WSOD_AP:
        raise SystemExit(f"wsjds report metrics-table: --paper-method must be one of {sorted(TABLE1_WSOD_AP)}, "
                         f"got {args.paper_method!r}")
    sources = {"wsod_map": args.wsod_map, "wsod_corloc": args.wsod_corloc}
    frcnn = None
    if args.frcnn_map:
        sources["frcnn_map"] = args.frcnn_map
        frcnn = read_metrics(args.frcnn_map, "map")
    table = metrics_table(args.title, read_metrics(args.wsod_map, "map"), read_metrics(args.wsod_corloc, "corloc"),
                          frcnn, paper_reference(args.paper_method) if args.paper_method else None, sources)
    instance_seg = _read_instance_seg(args.instance_seg) if args.instance_seg else None
    write_metrics_html(table, args.out, instance_seg)
    log.info("metrics table of %d classes, %d columns -> %s", len(table.classes), len(table.columns), args.out)
    return 0


def run_pr_curves(args: argparse.Namespace) -> int:
    from wsjds.data.kinds import open_split
    from wsjds.evaluation.detections_io import read_detections
    from wsjds.evaluation.ground_truth import load_ground_truth
    from wsjds.report.pr_curves import PRFigureStyle, plot_pr_curves

    settings_or_flags(args, "settings", lambda path: report_values(path, "pr_curves"),
                      ("root", "use07", "iou_threshold", "columns", "panel_inches", "dpi"), ("kind", "boxes"))
    gt = load_ground_truth(open_split(args.kind or "voc", args.root, args.split, boxes=args.boxes))
    classes = gt.classes
    dets = read_detections(args.detections, gt.image_ids, classes, split=args.split)
    aps = plot_pr_curves(gt, dets, args.out, PRFigureStyle(args.columns, args.panel_inches, args.dpi), args.use07,
                         args.iou_threshold, args.title)
    log.info("PR curves of %d classes (%d detections) -> %s; AP %s", len(aps), len(dets), args.out,
             {name: round(ap, 4) for name, ap in aps.items()})
    return 0


def run_figure4(args: argparse.Namespace) -> int:
    import torch

    from wsjds.report.figure4 import Figure4Settings, Figure4Style, figure4
    from wsjds.runs import settings_and_split, trained_wsjds
    from wsjds.stages.train import load_checkpoint, resolve_device

    settings_or_flags(args, "report_settings", lambda path: report_values(path, "figure4"),
                      ("images", "scale", "max_side", "map_min_score", "panel_inches", "dpi"))
    if args.images < 1:
        raise SystemExit(f"wsjds report figure4: --images must be >= 1, got {args.images}")
    settings, source = settings_and_split(args.settings, args.split)
    if "frcnn" in settings or "cgl" not in settings:
        raise ArtifactError("figure4 needs a CGL run's settings (Fast R-CNN runs have no localization maps)",
                           path=args.settings)
    device = resolve_device(args.device)
    model = trained_wsjds(settings, load_checkpoint(args.checkpoint)).to(device)
    ids = source.ids[: args.images]
    if len(ids) < args.images:
        log.warning("split %s has %d images; showing all of them (asked for %d)", args.split, len(ids), args.images)
    figure4(model, source, args.proposals, ids, settings["classes"],
            Figure4Settings.from_run(settings, args.scale, args.max_side, args.map_min_score),
            Figure4Style(args.panel_inches, args.dpi), args.out, seeds=bool(settings["method"]["det_to_seg"]),
            device=device, title=args.title)
    log.info("Fig. 4 of %d images of %s -> %s", len(ids), args.split, args.out)
    return 0


def run_gallery(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from wsjds.data.kinds import open_split
    from wsjds.artifacts.detections import DetectionStore
    from wsjds.artifacts.mask_store import MaskStore
    from wsjds.report.gallery import GalleryStyle, plot_gallery

    settings_or_flags(args, "settings", lambda path: report_values(path, "gallery"),
                      ("root", "kind", "images", "columns", "panel_inches", "min_score", "max_boxes", "dpi"))
    if args.images < 1 or args.columns < 1:
        raise SystemExit(f"wsjds report gallery: --images and --columns must be >= 1, got {args.images}, {args.columns}")
    source = open_split(args.kind, args.root, args.split)
    style = GalleryStyle(args.images, args.columns, args.panel_inches, args.min_score, args.max_boxes, args.dpi)
    with ExitStack() as stack:
        detections = stack.enter_context(DetectionStore.open(args.detections, split=args.split))
        masks = stack.enter_context(MaskStore.open(args.masks, split=args.split)) if args.masks else None
        ids = detections.image_ids[: args.images]
        drawn = plot_gallery(source, detections, ids, args.out, style, masks, args.title)
    log.info("gallery of %d images of %s, %d boxes -> %s", len(ids), args.split, drawn, args.out)
    return 0


def run_ablation(args: argparse.Namespace) -> int:
    from wsjds.io import write_json
    from wsjds.report.ablation import METRICS, AblationRun, ablation_summary, plot_ablation

    settings_or_flags(args, "settings", lambda path: report_values(path, "ablation"),
                      ("seeds", "panel_inches", "dpi"), ("show_paper",))
    runs = []
    for values in args.run:
        if len(values) not in (4, 5) or not values[1].isdigit():
            raise SystemExit(f"wsjds report ablation: --run takes METHOD SEED WSOD_MAP CORLOC [FRCNN_MAP], "
                             f"got {values}")
        method, seed, wsod_map, corloc, *frcnn = values
        runs.append(AblationRun(method, int(seed), Path(wsod_map), Path(corloc), Path(frcnn[0]) if frcnn else None))
    failures = {}
    for method, seed, path in args.failures:
        if not seed.isdigit():
            raise SystemExit(f"wsjds report ablation: --failures takes METHOD SEED JSON, got {[method, seed, path]}")
        failures[(method, int(seed))] = Path(path)
    unknown = sorted(set(failures) - {(run.method, run.seed) for run in runs})
    if unknown:
        raise SystemExit(f"wsjds report ablation: --failures of {unknown[0]} has no --run")
    runs = [dataclasses.replace(run, failures=failures.get((run.method, run.seed))) for run in runs]
    try:
        summary = ablation_summary(args.dataset, args.seeds, runs, args.config_hash)
    except UserError:
        raise
    except ValueError as exc:
        raise SystemExit(f"wsjds report ablation: {exc}") from None
    write_json(args.out_json, summary)
    plot_ablation(summary, args.out_plot, args.panel_inches, args.dpi, args.title, bool(args.show_paper))
    for method, entry in summary["methods"].items():
        log.info("%s: %s", method, ", ".join(f"{key} {100 * entry[key]['mean']:.2f} %" for key in METRICS
                                              if key in entry))
    log.info("%d methods x %d seeds -> %s, %s", len(summary["methods"]), len(args.seeds), args.out_json, args.out_plot)
    return 0


def _read_instance_seg(path: str) -> dict:
    from wsjds.report.tables import read_json_file

    file = Path(path)
    data = read_json_file(file, "instance-segmentation metrics file")
    if not isinstance(data, dict) or "AP_r" not in data or "AP_b" not in data:
        raise ArtifactError("not a `wsjds masks evaluate` file: no AP_b / AP_r", path=file)
    return data
