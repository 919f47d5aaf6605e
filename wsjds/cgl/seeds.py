"""Segmentation seeds from localization maps (reference §3.3; paper §3.2 thresholds)."""

from __future__ import annotations

import torch

IGNORE = 0.5   # seed value of pixels the seed loss skips


def segmentation_seeds(maps: torch.Tensor, labels: torch.Tensor, y: torch.Tensor, tau: float = 0.7,
                       fg_threshold: float = 0.1, bg_threshold: float = 0.005) -> torch.Tensor:
    """Per-class targets M (C, H, W) with values 1 (foreground), 0 (background), 0.5 (ignore).

    ``maps`` (C, H, W) max-normalised localization maps; ``labels`` (C,) in {0, 1}; ``y`` (C,) image
    scores. Absent classes are background everywhere; a present class scoring below ``tau`` is
    ignored everywhere; otherwise map >= fg -> 1, map <= bg -> 0, in between -> ignore. Class
    channels are independent (several classes may claim one pixel).
    """
    seeds = torch.full_like(maps, IGNORE)
    seeds[maps >= fg_threshold] = 1.0
    seeds[maps <= bg_threshold] = 0.0
    present = (labels > 0.5).view(-1, 1, 1)
    confident = (y.detach() >= tau).view(-1, 1, 1)
    seeds = torch.where(present & ~confident, torch.full_like(seeds, IGNORE), seeds)
    return torch.where(present, seeds, torch.zeros_like(seeds))
