"""Object proposals: Selective Search in shards, importers for MCG / SS / EdgeBoxes / pickle, HDF5 store.

``with ProposalStore.open(path) as store: boxes, scores = store[image_id]`` gives (K, 4) float32
boxes in the package convention and (K,) float32 scores, highest first.
"""

from wsjds.proposals.dataset import DATASET_KINDS, ImageSource, open_image_source
from wsjds.proposals.importers import FORMATS, UnsafePickleError, import_proposals, load_mat, load_pickle, read_proposals
from wsjds.proposals.postprocess import ProposalPolicy, postprocess, validate_proposals
from wsjds.proposals.selective_search import MODES, SelectiveSearchParams, compute_shard, selective_search
from wsjds.proposals.store import (PROPOSALS_FORMAT, PROPOSALS_VERSION, ProposalStore, ProposalWriter,
                                   merge_proposal_shards)
from wsjds.artifacts.shards import parse_shard, shard_ids

__all__ = [
    "DATASET_KINDS",
    "FORMATS",
    "ImageSource",
    "MODES",
    "PROPOSALS_FORMAT",
    "PROPOSALS_VERSION",
    "ProposalPolicy",
    "ProposalStore",
    "ProposalWriter",
    "SelectiveSearchParams",
    "UnsafePickleError",
    "compute_shard",
    "import_proposals",
    "load_mat",
    "load_pickle",
    "merge_proposal_shards",
    "open_image_source",
    "parse_shard",
    "postprocess",
    "read_proposals",
    "selective_search",
    "shard_ids",
    "validate_proposals",
]
