"""The CGL losses (reference §2): weighted MIL, balanced seed BCE, constrain-to-boundary (dense CRF),
min-entropy, multi-centre center loss, and the pooled image loss of an unguided segmentation branch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsjds.cgl.seeds import IGNORE
from wsjds.crf import CRFParams, dense_crf
from wsjds.model.wsddn import image_bce

LOG_FLOOR = 1e-20    # the authors' clamp inside every log (reference §2.2, §2.4)


def weighted_mil_loss(x: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor,
                      eps: float = LOG_FLOOR, grad_clip: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """(L+, L-) of reference §2.3: y+_c = sum_r max(W, 0) x_rc against t_c, y-_c = sum_r max(-W, 0) x_rc
    against 0. ``x`` (R, C); ``weights`` (R, C), constant; ``labels`` (C,). With W = 1 this is WSDDN's
    BCE and L- = 0."""
    weights = weights.detach().to(x.dtype)
    y_pos = (weights.clamp_min(0) * x).sum(dim=0)
    y_neg = ((-weights).clamp_min(0) * x).sum(dim=0)
    return image_bce(y_pos, labels, eps, grad_clip), image_bce(y_neg, torch.zeros_like(labels), eps, grad_clip)


def balanced_seed_loss(logits: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Class-balanced sigmoid BCE (reference §2.6a). ``logits`` and ``seeds`` (C, H, W); seeds in
    {0, 0.5 = ignore, 1}. Per class: mean over its foreground pixels + mean over its background
    pixels (an empty set adds nothing); summed over classes."""
    logits = logits.float()
    positive = (seeds > IGNORE).float()
    negative = (seeds < IGNORE).float()
    loss_pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    loss_neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (_masked_mean(loss_pos, positive) + _masked_mean(loss_neg, negative)).sum()


def crf_boundary_loss(logits: torch.Tensor, image: np.ndarray, params: CRFParams, unary_floor: float = 1e-4,
                      double_sigmoid: bool = False) -> torch.Tensor:
    """Constrain-to-boundary loss (reference §2.6b) at feature resolution.

    ``logits`` (C, h, w) segmentation logits; ``image`` (h, w, 3) uint8, the input image resized to
    the feature grid. Target q = a dense CRF's refinement of [background = 1 - max_c sigma, sigma_c]
    (unary as the authors build it: -log of a softmax over those probabilities, floored), no
    gradient. Loss: per class, balanced means over q > 0.5 and q < 0.5 of q log(q / p), summed.
    p = sigma(z); ``double_sigmoid`` reproduces the authors' p = sigma(sigma(z)) bug.
    """
    probs = torch.sigmoid(logits.float())
    with torch.no_grad():
        labels = torch.cat([1 - probs.amax(dim=0, keepdim=True), probs])            # (C + 1, h, w)
        unary = (-torch.log_softmax(labels, dim=0)).clamp_min(unary_floor)
        q = dense_crf(image, unary.cpu().numpy(), params)
        q = np.clip(q, unary_floor, None)
        q = torch.from_numpy(q / q.sum(axis=0, keepdims=True)).to(probs.device)[1:]  # (C, h, w)
    p = torch.sigmoid(probs) if double_sigmoid else probs
    kl = q * (torch.log(q.clamp_min(LOG_FLOOR)) - torch.log(p.clamp_min(LOG_FLOOR)))
    return (_masked_mean(kl, (q > 0.5).float()) + _masked_mean(kl, (q < 0.5).float())).sum()


def min_entropy_loss(x: torch.Tensor, labels: torch.Tensor, eps: float = LOG_FLOOR) -> torch.Tensor:
    """Reference §2.4: sum over proposals and present classes of -x log x, divided by 1 + R * K."""
    present = labels > 0.5
    k = int(present.sum())
    if k == 0:
        return x.sum() * 0.0
    xs = x[:, present].float()
    return (-(xs * torch.log(xs.clamp_min(eps)))).sum() / (1 + x.shape[0] * k)


def pooled_image_loss(logits: torch.Tensor, labels: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Image-level BCE on log-sum-exp pooled segmentation logits: how a segmentation branch learns on
    its own when no detection guidance reaches it (the `parallel` and `seg2det` variants).
    ``logits`` (C, h, w); ``labels`` (C,); larger ``sharpness`` -> closer to max pooling."""
    flat = logits.float().flatten(1)
    pooled = (torch.logsumexp(sharpness * flat, dim=1) - np.log(flat.shape[1])) / sharpness
    return F.binary_cross_entropy_with_logits(pooled, labels.float(), reduction="sum")


class CenterLoss(nn.Module):
    """Multi-centre center loss (reference §2.5) with centres updated outside SGD.

    Each class has ``num_centres`` centres (buffers). For a present class, the ``top_k`` proposals by
    x_rc pick their nearest centre; the loss pulls their features towards it. Statistics accumulate
    until :meth:`update_centres` moves each centre by ``lr * sum(f - C) / (count * top_k + 1)``.
    """

    def __init__(self, num_classes: int, feature_dim: int, num_centres: int = 5, top_k: int = 10,
                 lr: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        self.top_k, self.lr = top_k, lr
        self.register_buffer("centres", torch.randn(num_classes, num_centres, feature_dim, generator=generator))
        self.register_buffer("delta", torch.zeros(num_classes, num_centres, feature_dim))
        self.register_buffer("counts", torch.zeros(num_classes, num_centres))

    def forward(self, features: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``features`` (R, D) drop7; ``x`` (R, C); ``labels`` (C,). Returns the scalar loss and
        accumulates the centre statistics."""
        present = torch.nonzero(labels > 0.5).flatten()
        if present.numel() == 0:
            return features.sum() * 0.0
        k = min(self.top_k, features.shape[0])
        top = x.detach()[:, present].topk(k, dim=0).indices.T                  # (K, k)
        chosen = features[top]                                                 # (K, k, D)
        centres = self.centres[present]                                        # (K, M, D)
        distances = torch.cdist(chosen.detach().float(), centres.float()).pow(2).sum(dim=1)   # (K, M)
        nearest = distances.argmin(dim=1)                                      # (K,)
        target = centres[torch.arange(len(present)), nearest]                  # (K, D)
        diff = chosen - target[:, None, :]
        loss = diff.pow(2).sum() / (2 * len(present) * self.top_k * features.shape[1])
        with torch.no_grad():
            self.delta[present, nearest] += diff.detach().sum(dim=1).to(self.delta.dtype)
            self.counts[present, nearest] += 1
        return loss

    @torch.no_grad()
    def update_centres(self) -> None:
        step = self.lr * self.delta / (self.counts[..., None] * self.top_k + 1)
        self.centres += step
        self.delta.zero_()
        self.counts.zero_()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-class mean of ``values`` over ``mask`` (C, H, W) -> (C,); 0 where the mask is empty."""
    total = (values * mask).flatten(1).sum(dim=1)
    count = mask.flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
