"""The WS-JDS network: one backbone, the WSDDN detection head and (optionally) the ASPP head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from wsjds.model.backbone import PixelConvention, WeightsSpec, build_backbone
from wsjds.model.segmentation import ASPPHead
from wsjds.model.wsddn import WSDDNHead, WSDDNOutput


@dataclass
class WSJDSOutput:
    """``features`` (1, C5, h, w) conv5_3; ``det`` the detection outputs; ``seg_logits`` (1, C, h, w)
    or None when the method has no segmentation branch."""

    features: torch.Tensor
    det: WSDDNOutput
    seg_logits: torch.Tensor | None


class WSJDSModel(nn.Module):
    """Backbone + detection head + optional segmentation head. One image per forward pass."""

    def __init__(self, backbone: nn.Module, detection: WSDDNHead, segmentation: ASPPHead | None,
                 pixels: PixelConvention, freeze_backbone: bool):
        super().__init__()
        self.backbone, self.detection, self.segmentation = backbone, detection, segmentation
        self.pixels = pixels
        self.freeze_backbone = freeze_backbone

    def forward(self, image: torch.Tensor, rois: torch.Tensor,
                proposal_scores: torch.Tensor | None = None) -> WSJDSOutput:
        """``image`` (1, 3, H, W) normalised by :attr:`pixels`; ``rois`` (R, 4) boxes in its pixels."""
        features = self.backbone(image)
        det = self.detection(features, rois, proposal_scores)
        seg_logits = None
        if self.segmentation is not None:
            # With a frozen trunk the seg losses cannot reach it: cut the graph (reference §1.3).
            seg_logits = self.segmentation(features.detach() if self.freeze_backbone else features)
        return WSJDSOutput(features=features, det=det, seg_logits=seg_logits)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def weights_spec(entry: Mapping) -> WeightsSpec:
    """config.yaml ``weights.<name>`` -> :class:`WeightsSpec`."""
    pixels = PixelConvention(entry["channel_order"], float(entry["scale"]), tuple(entry["mean"]), tuple(entry["std"]))
    if entry.get("pretraining") is not None:
        return WeightsSpec(path=entry.get("path"), pixels=pixels,
                           how_to_get=f"The workflow makes this file: snakemake --cores 2 {entry.get('path')} "
                                      f"(rule pretrain_trunk, recipe pretraining.{entry['pretraining']}).")
    return WeightsSpec(path=entry.get("path"), pixels=pixels)


def build_model(model_cfg: Mapping, weights: WeightsSpec, num_classes: int, with_segmentation: bool) -> WSJDSModel:
    """Assemble the network from a ``models.<name>`` config entry (see config.yaml)."""
    backbone = build_backbone(tuple(model_cfg["widths"]), model_cfg["fc_dim"], weights,
                              model_cfg["freeze_backbone"], model_cfg["roi_size"], model_cfg["group_norm"])
    fc6, fc7 = backbone.take_classifier()
    detection = WSDDNHead(backbone.out_channels, model_cfg["fc_dim"], num_classes, model_cfg["roi_size"],
                          1.0 / backbone.stride, model_cfg["dropout"], model_cfg["score_boost"], fc6=fc6, fc7=fc7)
    segmentation = None
    if with_segmentation:
        segmentation = ASPPHead(backbone.out_channels, num_classes, tuple(model_cfg["aspp_rates"]),
                                model_cfg["aspp_hidden"], model_cfg["dropout"])
    return WSJDSModel(backbone, detection, segmentation, weights.pixels, model_cfg["freeze_backbone"])
