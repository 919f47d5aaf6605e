"""``wsjds predict``: detections and masks of a trained run on new images (JSON + drawn PNG per image).

    wsjds predict --run results/synth/wsjds/frcnn --images photos/ --out predictions/
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="detect (and segment) new images with a trained run",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run directory: results/{ds}/{method}/frcnn (the final "
                        "detector) or results/{ds}/{method} (the WSOD detector)")
    parser.add_argument("--images", required=True, nargs="+", help="image files and / or folders (searched "
                        "recursively for jpg / jpeg / png)")
    parser.add_argument("--out", required=True, help="folder for {image}.json and {image}.png")
    parser.add_argument("--no-masks", action="store_true", help="boxes only, even where the run has a "
                        "segmentation branch")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default 1)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wsjds.stages.predict import Predictor, predict_images
    from wsjds.stages.train import resolve_device

    predictor = Predictor(args.run, resolve_device(args.device), with_masks=not args.no_masks)
    written = predict_images(predictor, args.images, args.out, progress=not args.no_progress)
    log.info("predicted %d images with %s -> %s", len(written), args.run, args.out)
    return 0
