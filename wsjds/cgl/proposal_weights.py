"""Proposal weights from a map ("CSC", the paper's Eq. 3 as the authors' code computes it, reference §4).

For each present class the map is binarised, and every proposal is scored by how much of its *frame*
(the box minus the box shrunk by ``context_scale``) is foreground, minus how much of its *context*
(the box grown by ``context_scale``, minus the box) is. Scores are normalised per class, blended
with the image score, and become the weights W of the weighted MIL loss (W < 0 -> negative part).
"""

from __future__ import annotations

import torch

INVALID_SCORE = -1.0   # normalised score of an invalid RoI when the class has positive scores


def csc_weights(maps: torch.Tensor, rois: torch.Tensor, labels: torch.Tensor, y: torch.Tensor,
                fg_threshold: float = 0.1, context_scale: float = 1.8, sqrt_area: bool = True) -> torch.Tensor:
    """Weights W (R, C) in [1 - 2 y_c, 1]; exactly 1 for absent classes.

    ``maps`` (C, H, W) max-normalised maps in the RoIs' pixel frame; ``rois`` (R, 4) package-convention
    boxes; ``labels`` (C,); ``y`` (C,) image scores. ``sqrt_area`` divides foreground counts by the
    square root of the region's area (the localization-map instance) instead of the area (the mask
    instance). No gradient flows through W.
    """
    with torch.no_grad():
        num_classes, height, width = maps.shape
        weights = torch.ones(len(rois), num_classes, dtype=torch.float32, device=maps.device)
        present = torch.nonzero(labels > 0.5).flatten()
        if present.numel() == 0 or len(rois) == 0:
            return weights
        binary = (maps[present] >= fg_threshold).float()                    # (P, H, W)
        integral = torch.nn.functional.pad(binary.cumsum(1).cumsum(2), (1, 0, 1, 0))   # (P, H+1, W+1)

        # The authors' RoIs are inclusive pixel boxes: x2 is the last column (continuous x2 - 1).
        x1, y1 = torch.round(rois[:, 0]), torch.round(rois[:, 1])
        x2, y2 = torch.round(rois[:, 2] - 1.0), torch.round(rois[:, 3] - 1.0)
        valid = (x1 >= 0) & (y1 >= 0) & (x1 < x2) & (y1 < y2) & (x2 < width) & (y2 < height)
        w, h = x2 - x1, y2 - y1
        xc, yc = (x1 + x2) / 2, (y1 + y2) / 2
        inner = [torch.round(xc - w / context_scale / 2), torch.round(yc - h / context_scale / 2),
                 torch.round(xc + w / context_scale / 2), torch.round(yc + h / context_scale / 2)]
        outer = [torch.round((xc - context_scale * w / 2).clamp(0, width - 1)),
                 torch.round((yc - context_scale * h / 2).clamp(0, height - 1)),
                 torch.round((xc + context_scale * w / 2).clamp(0, width - 1)),
                 torch.round((yc + context_scale * h / 2).clamp(0, height - 1))]
        box = [x1, y1, x2, y2]

        f_box, a_box = _region_sum(integral, box, width, height)
        f_in, a_in = _region_sum(integral, inner, width, height)
        f_out, a_out = _region_sum(integral, outer, width, height)
        frame_fg, frame_area = f_box - f_in, (a_box - a_in).clamp_min(1)
        context_fg, context_area = f_out - f_box, (a_out - a_box).clamp_min(1)
        if sqrt_area:
            frame_area, context_area = frame_area.sqrt(), context_area.sqrt()
        scores = frame_fg / frame_area - context_fg / context_area             # (P, R)

        normalised = _normalise(scores, valid)
        y_present = y.detach().float()[present].view(-1, 1)
        weights[:, present] = (y_present * normalised + (1 - y_present)).T
        return weights


def _region_sum(integral: torch.Tensor, box: list[torch.Tensor], width: int, height: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground count (P, R) and inclusive pixel area (R,) of boxes [x1, y1, x2, y2] (inclusive).

    Coordinates are clamped into the map for the lookup; callers discard invalid boxes."""
    x1, y1, x2, y2 = (c.long() for c in box)
    x1, x2 = x1.clamp(0, width - 1), x2.clamp(0, width - 1)
    y1, y2 = y1.clamp(0, height - 1), y2.clamp(0, height - 1)
    x2, y2 = torch.maximum(x2, x1), torch.maximum(y2, y1)
    count = (integral[:, y2 + 1, x2 + 1] - integral[:, y1, x2 + 1]
             - integral[:, y2 + 1, x1] + integral[:, y1, x1])
    area = ((x2 - x1 + 1) * (y2 - y1 + 1)).to(integral.dtype)
    return count, area


def _normalise(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per class (row): positives / max, non-positives / |min|, invalid -> -1; all ones when no
    valid RoI scores above zero (reference §4.1 step 3)."""
    masked = torch.where(valid, scores, torch.zeros_like(scores))
    top = masked.amax(dim=1, keepdim=True).clamp_min(0)                       # m+ (P, 1)
    bottom = masked.amin(dim=1, keepdim=True).clamp_max(0)                    # m- (P, 1)
    positive = scores / top.clamp_min(torch.finfo(scores.dtype).tiny)
    negative = torch.where(bottom < 0, scores / bottom.abs().clamp_min(torch.finfo(scores.dtype).tiny),
                           torch.zeros_like(scores))
    out = torch.where(scores > 0, positive, negative)
    out = torch.where(valid, out, torch.full_like(out, INVALID_SCORE))
    return torch.where(top > 0, out, torch.ones_like(out))
