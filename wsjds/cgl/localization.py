"""Localization maps ("CPG", reference §3.1-3.2): detection -> pixels, by back-propagation.

For each positive class c whose image score y_c reaches tau, the gradient of 1/2 sum_r x_rc^2 with
respect to the input pixels, |.|, max over colour channels, then divided by its maximum. The
per-class backward passes run as one batched backward (``is_grads_batched``) where autograd supports
it, else in a loop.
"""

from __future__ import annotations

import torch


def localization_maps(x: torch.Tensor, image: torch.Tensor, labels: torch.Tensor, y: torch.Tensor,
                      tau: float = 0.7, batched: bool = True, skip_max_one: bool = False) -> torch.Tensor:
    """Maps (C, H, W) in [0, 1]; zero for classes that are absent or below ``tau``.

    ``x`` (R, C) proposal scores, part of a graph that reaches ``image`` (1, 3, H, W, requires_grad);
    ``labels`` (C,) image labels in {0, 1}; ``y`` (C,) image scores. The graph is retained for the
    training loss's own backward pass. Dropout masks and RoI-pool argmaxes are those of the forward
    pass, as in the authors' code. No parameter receives a gradient.
    """
    num_classes = x.shape[1]
    height, width = image.shape[-2:]
    active = torch.nonzero((labels > 0.5) & (y.detach() >= tau)).flatten()
    maps = image.new_zeros(num_classes, height, width)
    if active.numel() == 0:
        return maps
    seeds = x.new_zeros(active.numel(), *x.shape)                  # (K, R, C): d(1/2 sum x^2)/dx = x
    seeds[torch.arange(active.numel()), :, active] = x.detach()[:, active].T
    gradients = _input_gradients(x, image, seeds, batched)         # (K, 3, H, W)
    raw = gradients.abs().amax(dim=1)                              # (K, H, W)
    gate = torch.zeros(num_classes, dtype=torch.bool, device=x.device)
    gate[active] = True
    maps[active] = raw.to(maps.dtype)
    return gated_max_normalise(maps, gate, skip_max_one=skip_max_one)


def gated_max_normalise(maps: torch.Tensor, gate: torch.Tensor, skip_max_one: bool = False) -> torch.Tensor:
    """CPGScale (reference §3.2): map / max(map) for gated classes, zero elsewhere. (C, H, W) -> (C, H, W).

    A map whose maximum is 0 stays 0. The authors' op also zeroes a map whose maximum is exactly 1.0
    (a bug that bites saturated mask sigmoids); ``skip_max_one`` reproduces it.
    """
    peak = maps.detach().flatten(1).amax(dim=1)                    # (C,)
    keep = gate & (peak > 0)
    if skip_max_one:
        keep = keep & (peak != 1.0)
    scale = torch.where(keep, 1.0 / peak.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(peak))
    return maps * scale.view(-1, 1, 1)


def _input_gradients(x: torch.Tensor, image: torch.Tensor, seeds: torch.Tensor, batched: bool) -> torch.Tensor:
    if batched:
        try:
            (grad,) = torch.autograd.grad(x, image, grad_outputs=seeds, retain_graph=True, is_grads_batched=True)
            return grad[:, 0]
        except RuntimeError:   # an op in the graph without a batching rule: fall back to a loop
            pass
    grads = [torch.autograd.grad(x, image, grad_outputs=seed, retain_graph=True)[0][0] for seed in seeds]
    return torch.stack(grads)
