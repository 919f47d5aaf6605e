"""Cyclic Guidance Learning operations (reference §2-§4): small pure functions with documented shapes."""

from wsjds.cgl.localization import gated_max_normalise, localization_maps
from wsjds.cgl.losses import (CenterLoss, balanced_seed_loss, crf_boundary_loss, min_entropy_loss,
                              pooled_image_loss, weighted_mil_loss)
from wsjds.cgl.proposal_weights import csc_weights
from wsjds.cgl.seeds import IGNORE, segmentation_seeds

__all__ = [
    "CenterLoss", "IGNORE", "balanced_seed_loss", "crf_boundary_loss", "csc_weights", "gated_max_normalise",
    "localization_maps", "min_entropy_loss", "pooled_image_loss", "segmentation_seeds", "weighted_mil_loss",
]
