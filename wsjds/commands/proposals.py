"""``wsjds proposals {compute,merge,import}``: the proposal stage's command line (called by rules/proposals.smk).

    wsjds proposals compute --settings results/voc07/proposals/trainval_settings.json --shard 0/8 --out S0.h5
    wsjds proposals merge   --settings results/voc07/proposals/trainval_settings.json --out P.h5 S0.h5 ... S7.h5
    wsjds proposals import  --settings results/voc07/proposals/trainval_settings.json --input MCG.tgz --out P.h5

The settings file (rule ``proposal_settings``) holds the dataset, the split, its post-processing
policy and the Selective Search settings or the imported format (config ``proposals``).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from wsjds.artifacts.shards import parse_shard, shard_ids
from wsjds.errors import ArtifactError
from wsjds.proposals.dataset import DATASET_KINDS, open_image_source
from wsjds.proposals.importers import FORMATS, import_proposals
from wsjds.proposals.postprocess import ProposalPolicy
from wsjds.proposals.selective_search import SelectiveSearchParams, compute_shard, set_num_threads
from wsjds.proposals.store import merge_proposal_shards
from wsjds.runs import dataset_section, load_settings

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("proposals", help="compute, merge or import object proposals (HDF5 store)",
                                   description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="proposals_command", required=True, metavar="ACTION")

    compute = actions.add_parser("compute", help="Selective Search on one shard of a split")
    _common_arguments(compute)
    compute.add_argument("--shard", type=_shard, default=(0, 1), metavar="INDEX/COUNT",
                         help="0-based shard of COUNT contiguous blocks of the split list (default 0/1)")
    compute.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one per job)")
    compute.add_argument("--out", required=True, help="shard store to write (.h5)")
    compute.set_defaults(func=_run_compute)

    merge = actions.add_parser("merge", help="join shard stores; every id of the split exactly once")
    _common_arguments(merge)
    merge.add_argument("--out", required=True, help="store of the whole split (.h5)")
    merge.add_argument("shards", nargs="+", help="shard stores written by `wsjds proposals compute`")
    merge.set_defaults(func=_run_merge)

    imp = actions.add_parser("import", help="convert MCG / Selective Search / EdgeBoxes .mat or a pickle")
    _common_arguments(imp)
    imp.add_argument("--input", required=True,
                     help="the file or directory to import (the settings' import_format: mcg: directory or tarball "
                          "of per-image .mat; ss-mat / edgeboxes-mat: one .mat per split; pkl: Detectron-style "
                          "{boxes, scores, indexes|ids})")
    imp.add_argument("--out", required=True, help="store to write (.h5)")
    imp.set_defaults(func=_run_import)


def _run_compute(args: argparse.Namespace) -> int:
    settings = _settings(args.settings, "selective_search")
    policy, params = _typed(args.settings, settings, "selective_search")
    set_num_threads(args.threads)
    data, split = settings["dataset"], settings["split"]
    source = open_image_source(data["kind"], data["root"], split)
    ids = shard_ids(source.ids, *args.shard)
    log.info("Selective Search (%s) on shard %d/%d of %s/%s: %d of %d images",
             params.mode, *args.shard, data["name"], split, len(ids), len(source.ids))
    compute_shard(source, ids, args.out, dataset=data["name"], split=split, params=params,
                  policy=policy, shard=args.shard, progress=args.progress)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    settings = _settings(args.settings)
    data, split = settings["dataset"], settings["split"]
    source = open_image_source(data["kind"], data["root"], split)
    merge_proposal_shards(args.shards, args.out, expected_ids=source.ids, dataset=data["name"], split=split,
                          image_size=source.image_size, progress=args.progress)
    return 0


def _run_import(args: argparse.Namespace) -> int:
    settings = _settings(args.settings, "import_format")
    policy, _ = _typed(args.settings, settings, None)
    data, split = settings["dataset"], settings["split"]
    source = open_image_source(data["kind"], data["root"], split)
    import_proposals(settings["import_format"], args.input, source, args.out, dataset=data["name"], split=split,
                     policy=policy, progress=args.progress)
    return 0


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True,
                        help="the split's proposal settings (rule proposal_settings, "
                             "results/{ds}/proposals/{split}_settings.json)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="tqdm progress bar on stderr")


def _settings(path: str, *sections: str) -> dict[str, Any]:
    """The settings with their sections, a dataset kind proposals can read and a known import format."""
    settings = load_settings(path, ("dataset", "split", "policy", *sections))
    dataset_section(settings, path, DATASET_KINDS)
    if "import_format" in sections and settings["import_format"] not in FORMATS:
        raise ArtifactError(f"unknown import_format {settings['import_format']!r}; expected one of {list(FORMATS)}",
                            path=path)
    return settings


def _typed(path: str, settings: dict[str, Any], search: str | None
           ) -> tuple[ProposalPolicy, SelectiveSearchParams | None]:
    """The settings' policy (and Selective Search parameters), or an ArtifactError naming the file."""
    try:
        policy = ProposalPolicy.from_config(settings["policy"])
        params = None if search is None else SelectiveSearchParams.from_config(settings[search])
    except (KeyError, ValueError) as exc:
        raise ArtifactError(f"bad proposal settings: {exc}", path=path) from None
    return policy, params


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
