"""``wsjds proposals {compute,merge,import}``: the proposal stage's command line (called by rules/proposals.smk).

    wsjds proposals compute --kind voc --root R --split trainval --dataset voc07 --shard 0/8 --out S0.h5 ...
    wsjds proposals merge   --kind voc --root R --split trainval --dataset voc07 --out P.h5 S0.h5 ... S7.h5
    wsjds proposals import  --format mcg --input MCG.tgz --kind voc --root R --split trainval --dataset voc07 --out P.h5 ...
"""

from __future__ import annotations

import argparse
import logging

from wsjds.proposals.dataset import DATASET_KINDS, open_image_source
from wsjds.proposals.importers import FORMATS, import_proposals
from wsjds.proposals.postprocess import ProposalPolicy
from wsjds.proposals.selective_search import MODES, SelectiveSearchParams, compute_shard, set_num_threads
from wsjds.proposals.store import merge_proposal_shards
from wsjds.artifacts.shards import parse_shard, shard_ids

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("proposals", help="compute, merge or import object proposals (HDF5 store)",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="proposals_command", required=True, metavar="ACTION")

    compute = actions.add_parser("compute", help="Selective Search on one shard of a split")
    _dataset_arguments(compute)
    _policy_arguments(compute)
    group = compute.add_argument_group("Selective Search (config proposals.selective_search)")
    group.add_argument("--mode", required=True, choices=MODES, help="OpenCV strategy set")
    group.add_argument("--resize-max-side", required=True, type=int,
                       help="shrink images whose longer side exceeds this many px before the search (0: never)")
    group.add_argument("--sigma", required=True, type=float, help="graph segmentation smoothing")
    group.add_argument("--base-k", required=True, type=int, help="first graph segmentation threshold k")
    group.add_argument("--inc-k", required=True, type=int, help="step between thresholds k")
    group.add_argument("--seed", required=True, type=int, help="C rand() seed set before each image (box order)")
    compute.add_argument("--shard", type=_shard, default=(0, 1), metavar="INDEX/COUNT",
                         help="0-based shard of COUNT contiguous blocks of the split list (default 0/1)")
    compute.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one per job)")
    compute.add_argument("--out", required=True, help="shard store to write (.h5)")
    compute.set_defaults(func=_run_compute, parser=compute)

    merge = actions.add_parser("merge", help="join shard stores; every id of the split exactly once")
    _dataset_arguments(merge)
    merge.add_argument("--out", required=True, help="store of the whole split (.h5)")
    merge.add_argument("shards", nargs="+", help="shard stores written by `wsjds proposals compute`")
    merge.set_defaults(func=_run_merge, parser=merge)

    imp = actions.add_parser("import", help="convert MCG / Selective Search / EdgeBoxes .mat or a pickle")
    imp.add_argument("--format", required=True, choices=FORMATS, dest="fmt",
                     help="mcg: directory or tarball of per-image .mat; ss-mat / edgeboxes-mat: one .mat per "
                          "split; pkl: Detectron-style {boxes, scores, indexes|ids}")
    imp.add_argument("--input", required=True, help="the file or directory to import")
    _dataset_arguments(imp)
    _policy_arguments(imp)
    imp.add_argument("--out", required=True, help="store to write (.h5)")
    imp.set_defaults(func=_run_import, parser=imp)


def _run_compute(args: argparse.Namespace) -> int:
    set_num_threads(args.threads)
    policy = _policy(args)
    try:
        params = SelectiveSearchParams(mode=args.mode, resize_max_side=args.resize_max_side, sigma=args.sigma,
                                       base_k=args.base_k, inc_k=args.inc_k, seed=args.seed)
    except ValueError as exc:
        args.parser.error(str(exc))
    source = open_image_source(args.kind, args.root, args.split)
    ids = shard_ids(source.ids, *args.shard)
    log.info("Selective Search (%s) on shard %d/%d of %s/%s: %d of %d images",
             params.mode, *args.shard, args.dataset, args.split, len(ids), len(source.ids))
    compute_shard(source, ids, args.out, dataset=args.dataset, split=args.split, params=params,
                  policy=policy, shard=args.shard, progress=args.progress)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    source = open_image_source(args.kind, args.root, args.split)
    merge_proposal_shards(args.shards, args.out, expected_ids=source.ids, dataset=args.dataset, split=args.split,
                          image_size=source.image_size, progress=args.progress)
    return 0


def _run_import(args: argparse.Namespace) -> int:
    policy = _policy(args)
    source = open_image_source(args.kind, args.root, args.split)
    import_proposals(args.fmt, args.input, source, args.out, dataset=args.dataset, split=args.split,
                     policy=policy, progress=args.progress)
    return 0


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dataset")
    group.add_argument("--kind", required=True, choices=DATASET_KINDS, help="dataset layout and class list")
    group.add_argument("--root", required=True, help="dataset root (a VOC20XX-layout directory)")
    group.add_argument("--split", required=True, help="image list, e.g. trainval")
    group.add_argument("--dataset", required=True, help="dataset name recorded in the store (e.g. voc07, synth)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="tqdm progress bar on stderr")


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("post-processing (config proposals)")
    group.add_argument("--min-side", required=True, type=float,
                       help="drop boxes whose width or height is below this many px")
    group.add_argument("--max-per-image", required=True, type=int, help="keep at most this many boxes per image")
    group.add_argument("--whole-image-fallback", action=argparse.BooleanOptionalAction, default=False,
                       help="give an image left without proposals the whole-image box instead of failing")


def _policy(args: argparse.Namespace) -> ProposalPolicy:
    try:
        return ProposalPolicy(min_side=args.min_side, max_per_image=args.max_per_image,
                              whole_image_fallback=args.whole_image_fallback)
    except ValueError as exc:
        args.parser.error(str(exc))


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
