"""Backbone families behind one interface, chosen by ``models.<name>.backbone`` in config.yaml.

A family builds, from a model entry and its weights entry: the trunk (a :class:`LayeredTrunk`:
image -> feature map, with ``out_channels`` and ``stride``), the box head's two fully connected
layers (RoI-pooled map -> vector; ``fc7.out_features`` is the head's ``out_dim``), the loading of
its pretrained file (the key mapping lives with the family) and what freezing means. Every stage
that builds a network (training, detection, masks, Fast R-CNN, the report) goes through
:func:`build_backbone`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from wsjds.model.backbone import VGGC5D, WeightsSpec
from wsjds.model.efficientnet import EfficientNetLite0
from wsjds.model.trunk import LayeredTrunk


@dataclass
class Backbone:
    """A built family: ``trunk``, and ``fc6`` / ``fc7`` for the box head (pretrained or fresh)."""

    trunk: LayeredTrunk
    fc6: nn.Linear
    fc7: nn.Linear

    @property
    def out_dim(self) -> int:
        return self.fc7.out_features


BackboneBuilder = Callable[[Mapping, WeightsSpec], Backbone]
BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: make a family available as ``backbone: <name>``."""
    def register(builder: BackboneBuilder) -> BackboneBuilder:
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is registered twice")
        BACKBONES[name] = builder
        return builder
    return register


def build_backbone(model_cfg: Mapping, weights: WeightsSpec, freeze: bool | None = None) -> Backbone:
    """The family of ``model_cfg["backbone"]``, its weights file loaded if the entry names one, and
    frozen as the entry says (``freeze`` overrides ``freeze_backbone``): a frozen trunk keeps its last
    ``trainable_stages`` stages trainable. A named but missing file is an error with its path and
    how to obtain it."""
    family = model_cfg["backbone"]
    if family not in BACKBONES:
        raise ValueError(f"backbone {family!r} is not among the registered families: {sorted(BACKBONES)}")
    if weights.path is not None and not Path(weights.path).is_file():
        raise FileNotFoundError(f"backbone weights file not found: {weights.path}\n{weights.how_to_get}")
    backbone = BACKBONES[family](model_cfg, weights)
    trunk = backbone.trunk
    frozen = model_cfg["freeze_backbone"] if freeze is None else freeze
    trainable = model_cfg["trainable_stages"]
    if trainable > len(trunk.stage_starts):
        raise ValueError(f"trainable_stages {trainable}: the {family} trunk has {len(trunk.stage_starts)} stages")
    trunk.freeze((trunk.stage_starts[-trainable] if trainable else len(trunk.layers)) if frozen else 0)
    return backbone


@register_backbone("vgg_c5d")
def vgg_c5d(model_cfg: Mapping, weights: WeightsSpec) -> Backbone:
    """VGG16-C5D (reference §1.1) at any stage widths: torchvision's VGG16 layout, the authors' fc6/fc7."""
    trunk = VGGC5D(tuple(model_cfg["widths"]), model_cfg["fc_dim"], model_cfg["roi_size"], model_cfg["group_norm"])
    if weights.path is not None:
        if model_cfg["group_norm"]:
            raise ValueError("ImageNet VGG16 weights have no GroupNorm layers: set group_norm to 0 to load them")
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
        trunk.load_vgg16_state_dict(state, weights.path)
    fc6, fc7 = trunk.take_classifier()
    return Backbone(trunk, fc6, fc7)


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(model_cfg: Mapping, weights: WeightsSpec) -> Backbone:
    """EfficientNet-Lite0 to ``last_stage`` at ``stride`` 8 or 16, BatchNorm folded; fresh fc6/fc7 of
    ``fc_dim`` on the RoI-pooled map (ImageNet has no box head to start from)."""
    trunk = EfficientNetLite0(model_cfg["last_stage"], model_cfg["stride"])
    if weights.path is not None:
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
        trunk.load_package_state_dict(state, weights.path)
    trunk.fold_batchnorm()
    fc_dim, roi_size = model_cfg["fc_dim"], model_cfg["roi_size"]
    fc6, fc7 = nn.Linear(trunk.out_channels * roi_size**2, fc_dim), nn.Linear(fc_dim, fc_dim)
    return Backbone(trunk, fc6, fc7)
