"""WSDDN detection branch (reference §1.2) and the clamped image-level BCE (reference §2.2).

One image per forward pass, as in the authors' code: the softmax over proposals runs over that
image's R proposals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_pool


@dataclass
class WSDDNOutput:
    """``x`` (R, C) proposal scores x_rc = softmax_c(fc8c) * softmax_r(fc8d); ``y`` (C,) image scores
    y_c = sum_r x_rc; ``drop7`` (R, D) fc7 features after ReLU and dropout (the center loss's input)."""

    x: torch.Tensor
    y: torch.Tensor
    drop7: torch.Tensor


class WSDDNHead(nn.Module):
    """RoI max-pooling -> (optional x(1 + proposal score) boost) -> fc6 -> fc7 -> two streams."""

    def __init__(self, in_channels: int, fc_dim: int, num_classes: int, roi_size: int = 7,
                 spatial_scale: float = 1 / 8, dropout: float = 0.5, score_boost: bool = True,
                 fc6: nn.Linear | None = None, fc7: nn.Linear | None = None):
        super().__init__()
        self.roi_size, self.spatial_scale, self.score_boost = roi_size, spatial_scale, score_boost
        self.fc6 = fc6 if fc6 is not None else nn.Linear(in_channels * roi_size**2, fc_dim)
        self.fc7 = fc7 if fc7 is not None else nn.Linear(fc_dim, fc_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc8c = nn.Linear(fc_dim, num_classes)
        self.fc8d = nn.Linear(fc_dim, num_classes)
        for layer in (self.fc8c, self.fc8d):
            caffe2_xavier_(layer)

    def forward(self, features: torch.Tensor, rois: torch.Tensor,
                proposal_scores: torch.Tensor | None = None) -> WSDDNOutput:
        """``features`` (1, C5, h, w); ``rois`` (R, 4) package-convention boxes in input-image pixels;
        ``proposal_scores`` (R,) or None."""
        pooled = roi_pool(features, caffe_rois(rois), self.roi_size, self.spatial_scale)  # (R, C5, 7, 7)
        if self.score_boost and proposal_scores is not None:
            pooled = pooled * (1.0 + proposal_scores).view(-1, 1, 1, 1)
        hidden = self.dropout(F.relu(self.fc6(pooled.flatten(1))))
        drop7 = self.dropout(F.relu(self.fc7(hidden)))
        x, y = two_stream_scores(self.fc8c(drop7), self.fc8d(drop7))
        return WSDDNOutput(x=x, y=y, drop7=drop7)


def two_stream_scores(cls_logits: torch.Tensor, det_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """WSDDN's two streams: x = softmax over classes (R, C) * softmax over proposals (R, C); y = sum_r x."""
    x = F.softmax(cls_logits, dim=1) * F.softmax(det_logits, dim=0)
    return x, x.sum(dim=0)


def image_bce(p: torch.Tensor, t: torch.Tensor, eps: float = 1e-20, grad_clip: float = 1e4) -> torch.Tensor:
    """Sum over classes of BCE(p_c, t_c) on probabilities (reference §2.2), safe for p in {0, 1}.

    Computed in fp32 with each log clamped at ``eps``; the gradient w.r.t. ``p`` is clipped to
    [-grad_clip, grad_clip] (the authors clip only from above; the lower bound keeps p -> 0 finite).
    ``p`` and ``t`` have the same shape (..., C); returns a scalar.
    """
    return _ClampedBCE.apply(p.float(), t.float(), eps, grad_clip)


class _ClampedBCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p: torch.Tensor, t: torch.Tensor, eps: float, grad_clip: float) -> torch.Tensor:
        ctx.save_for_backward(p, t)
        ctx.eps, ctx.grad_clip = eps, grad_clip
        loss = -(t * torch.log(p.clamp_min(eps)) + (1 - t) * torch.log((1 - p).clamp_min(eps)))
        return loss.sum()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        p, t = ctx.saved_tensors
        eps = ctx.eps
        grad = -t / p.clamp_min(eps) + (1 - t) / (1 - p).clamp_min(eps)
        grad = (grad * grad_output).clamp(-ctx.grad_clip, ctx.grad_clip)
        return grad, None, None, None


def caffe2_xavier_(layer: nn.Module) -> None:
    """Caffe2's XavierFill (uniform in +-sqrt(3 / fan_in)) and zero bias, as the authors' new layers."""
    weight = layer.weight
    fan_in = weight.shape[1] * (weight[0, 0].numel() if weight.dim() > 2 else 1)
    bound = math.sqrt(3.0 / fan_in)
    nn.init.uniform_(weight, -bound, bound)
    nn.init.zeros_(layer.bias)


def caffe_rois(rois: torch.Tensor, batch_index: torch.Tensor | None = None) -> torch.Tensor:
    """(R, 4) continuous boxes -> (R, 5) [batch, x1, y1, x2 - 1, y2 - 1] for ``roi_pool``, which follows
    Caffe's inclusive-pixel convention (it adds 1 to the rounded width), like the authors' RoIPoolF.
    ``batch_index`` (R,) names each box's image in a batch; None: all in image 0."""
    inclusive = torch.cat([rois[:, :2], rois[:, 2:] - 1.0], dim=1)
    index = rois.new_zeros(len(rois), 1) if batch_index is None else batch_index.to(rois.dtype).view(-1, 1)
    return torch.cat([index, inclusive], dim=1)
