"""The training objective of one image for every Table 1 variant (reference §2.1, §10 checklist).

``wsddn`` trains detection alone; ``parallel`` adds a segmentation branch trained on its own;
``det2seg`` trains segmentation on localization-map seeds (WSOD -> WSSS); ``seg2det`` weights the
detector's MIL loss with proposal weights from the localization map and the mask (WSOD <- WSSS);
``wsjds`` does both (full CGL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wsjds.cgl.localization import gated_max_normalise, localization_maps
from wsjds.cgl.losses import (CenterLoss, balanced_seed_loss, crf_boundary_loss, min_entropy_loss,
                              pooled_image_loss, weighted_mil_loss)
from wsjds.cgl.proposal_weights import csc_weights
from wsjds.cgl.seeds import IGNORE, segmentation_seeds
from wsjds.crf import CRFParams
from wsjds.model.wsjds import WSJDSModel


@dataclass(frozen=True)
class Method:
    """A Table 1 variant: which branches exist and which guidance directions are on."""

    segmentation: bool
    det_to_seg: bool
    seg_to_det: bool

    @classmethod
    def from_config(cls, entry: Mapping) -> "Method":
        method = cls(bool(entry["segmentation"]), bool(entry["det_to_seg"]), bool(entry["seg_to_det"]))
        if (method.det_to_seg or method.seg_to_det) and not method.segmentation:
            raise ValueError(f"guidance needs the segmentation branch: {entry}")
        return method


@dataclass(frozen=True)
class CGLConfig:
    """Numbers and switches of the objective (config.yaml ``cgl``; sources there)."""

    tau: float
    seed_fg: float
    seed_bg: float
    csc_fg_threshold: float
    csc_context_scale: float
    loss_weights: Mapping[str, float]
    bce_eps: float
    grad_clip: float
    min_entropy: bool
    center_loss: bool
    pooled_sharpness: float
    crf: CRFParams
    crf_unary_floor: float
    batched_localization: bool
    parity_crf_double_sigmoid: bool
    parity_cpg_scale_skip_max_one: bool
    parity_seeds_after_guidance: bool

    @classmethod
    def from_config(cls, cfg: Mapping) -> "CGLConfig":
        crf = cfg["crf"]
        return cls(
            tau=cfg["tau"], seed_fg=cfg["seed_fg"], seed_bg=cfg["seed_bg"],
            csc_fg_threshold=cfg["csc_fg_threshold"], csc_context_scale=cfg["csc_context_scale"],
            loss_weights=dict(cfg["loss_weights"]), bce_eps=cfg["bce_eps"], grad_clip=cfg["grad_clip"],
            min_entropy=cfg["min_entropy"], center_loss=cfg["center_loss"]["enabled"],
            pooled_sharpness=cfg["pooled_sharpness"],
            crf=CRFParams.from_config(crf),
            crf_unary_floor=crf["unary_floor"], batched_localization=cfg["batched_localization"],
            parity_crf_double_sigmoid=cfg["parity"]["crf_double_sigmoid"],
            parity_cpg_scale_skip_max_one=cfg["parity"]["cpg_scale_skip_max_one"],
            parity_seeds_after_guidance=cfg["parity"]["seeds_after_guidance"],
        )


@dataclass
class Objective:
    """``loss`` the weighted sum to back-propagate; ``terms`` each weighted term (floats);
    ``stats`` diagnostics (seed coverage, negative weights)."""

    loss: torch.Tensor
    terms: dict[str, float]
    stats: dict[str, float]


def cgl_objective(model: WSJDSModel, image: torch.Tensor, rois: torch.Tensor, proposal_scores: torch.Tensor | None,
                  labels: torch.Tensor, method: Method, cfg: CGLConfig, guidance_active: bool,
                  center: CenterLoss | None = None, frozen_features: torch.Tensor | None = None) -> Objective:
    """Forward one image and build its loss.

    ``image`` (1, 3, H, W) RGB 0-255; ``rois`` (R, 4) proposals in its pixels (never ground truth);
    ``proposal_scores`` (R,) or None; ``labels`` (C,) image labels. ``guidance_active`` is False once
    the guidance horizon has passed (reference §3.4), after which the detector trains as WSDDN.
    ``frozen_features``: the trunk's frozen part on ``image`` from a cache; when a localization map's
    gate opens, the map needs gradients down to the pixels and the whole trunk runs again, under the
    same dropout masks, so the result is the one without a cache.
    """
    w = cfg.loss_weights
    needs_maps = guidance_active and (method.det_to_seg or method.seg_to_det)
    rng = _rng_state(image.device) if needs_maps and frozen_features is not None else None
    out = None
    if frozen_features is not None:
        out = model(image, rois, proposal_scores, frozen_features=frozen_features)
        if needs_maps and _gate_opens(labels, out.det.y, cfg.tau):
            out = None
            _set_rng_state(rng, image.device)
    if out is None:
        if needs_maps:
            image = image.detach().requires_grad_(True)
        out = model(image, rois, proposal_scores)
    x, y = out.det.x, out.det.y
    height, width = image.shape[-2:]
    terms: dict[str, torch.Tensor] = {}
    stats: dict[str, float] = {}

    maps = None
    if needs_maps:
        maps = image.new_zeros(len(labels), height, width)
        if image.requires_grad:
            maps = localization_maps(x, image, labels, y, cfg.tau, cfg.batched_localization,
                                     cfg.parity_cpg_scale_skip_max_one)

    # Detection: (weighted) MIL. W = 1 reduces it to WSDDN's image-level BCE.
    ones = torch.ones_like(x)
    weights_cpg = ones
    if method.seg_to_det and guidance_active:
        weights_cpg = csc_weights(maps, rois, labels, y, cfg.csc_fg_threshold, cfg.csc_context_scale, sqrt_area=True)
    terms["mil_cpg"] = w["mil_cpg"] * sum(weighted_mil_loss(x, weights_cpg, labels, cfg.bce_eps, cfg.grad_clip))
    seg_up = None
    if method.segmentation:
        seg_up = F.interpolate(out.seg_logits, size=(height, width), mode="bilinear", align_corners=True)[0]
    if method.seg_to_det:
        weights_seg = ones
        if guidance_active:
            gate = (labels > 0.5) & (y.detach() >= cfg.tau)
            mask_maps = gated_max_normalise(torch.sigmoid(seg_up.detach()), gate, cfg.parity_cpg_scale_skip_max_one)
            weights_seg = csc_weights(mask_maps, rois, labels, y, cfg.csc_fg_threshold, cfg.csc_context_scale,
                                      sqrt_area=False)
        terms["mil_seg"] = w["mil_seg"] * sum(weighted_mil_loss(x, weights_seg, labels, cfg.bce_eps, cfg.grad_clip))
        stats["negative_weight_fraction"] = float((weights_seg < 0).float().mean())
    if method.seg_to_det and guidance_active:
        stats["negative_weight_fraction_cpg"] = float((weights_cpg < 0).float().mean())
    if cfg.min_entropy:
        terms["min_entropy"] = w["min_entropy"] * min_entropy_loss(x, labels, cfg.bce_eps)
    if cfg.center_loss and center is not None and guidance_active:
        terms["center"] = w["center"] * center(out.det.drop7, x, labels)

    # Segmentation: seeds from the localization maps, or its own image-level loss; CRF boundary term.
    if method.segmentation:
        if method.det_to_seg and (guidance_active or cfg.parity_seeds_after_guidance):
            seed_maps = maps if maps is not None else torch.zeros_like(seg_up)
            seeds = segmentation_seeds(seed_maps, labels, y, cfg.tau, cfg.seed_fg, cfg.seed_bg)
            terms["seed"] = w["seed"] * balanced_seed_loss(seg_up, seeds)
            stats.update(seed_fg=float((seeds > IGNORE).float().mean()), seed_bg=float((seeds < IGNORE).float().mean()),
                         seed_ignore=float((seeds == IGNORE).float().mean()))
        elif not method.det_to_seg:
            terms["seg_image"] = w["seg_image"] * pooled_image_loss(out.seg_logits[0], labels, cfg.pooled_sharpness)
        small = _image_at(image, out.seg_logits.shape[-2:])
        terms["crf"] = w["crf"] * crf_boundary_loss(out.seg_logits[0], small, cfg.crf, cfg.crf_unary_floor,
                                                    cfg.parity_crf_double_sigmoid)

    loss = torch.stack([t.float() for t in terms.values()]).sum()
    stats["gate_open"] = float(needs_maps and _gate_opens(labels, y, cfg.tau))   # maps were made (pixel gradients)
    stats["image_score_max"] = float(y.detach().max())
    return Objective(loss=loss, terms={k: float(v.detach()) for k, v in terms.items()}, stats=stats)


def _image_at(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The input image (1, 3, H, W) RGB 0-255 as uint8 (h, w, 3) at the feature grid's size, for the
    CRF's colour kernel."""
    with torch.no_grad():
        small = F.interpolate(image.detach().float(), size=tuple(size), mode="bilinear", align_corners=True)[0]
        return small.clamp(0, 255).round().byte().permute(1, 2, 0).contiguous().cpu().numpy()


def _gate_opens(labels: torch.Tensor, y: torch.Tensor, tau: float) -> bool:
    """Some labelled class's image score reaches tau: its localization map (and the pixel pass) is needed."""
    return bool(((labels > 0.5) & (y.detach() >= tau)).any())


def _rng_state(device: torch.device) -> tuple:
    """The RNG states dropout draws from (CPU, and the device's on CUDA)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
