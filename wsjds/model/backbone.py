"""VGG16 "C5D" backbone (reference §1.1): stride 8, pool4 kernel 2 stride 1, conv5 dilated 2, no pool5.

Built on ``torchvision.models.vgg``: the full-width network is ``torchvision.models.vgg16`` with the
C5D surgery applied; the small variant has the same 13-conv topology with fewer channels, for CPU
runs on the synthetic data. Weights come from a local state-dict file in torchvision's key layout
(torchvision's ImageNet file, or a Caffe-converted VGG16 such as jcjohnson's ``vgg16-00b39a1b.pth``);
the weights entry carries its pixel convention, which the transforms read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg16
from torchvision.models.vgg import make_layers

from wsjds.model.trunk import LayeredTrunk

VGG16_WIDTHS = (64, 128, 256, 512, 512)
_CONVS_PER_STAGE = (2, 2, 3, 3, 3)

HOW_TO_GET_WEIGHTS = (
    "Place an ImageNet VGG16 state dict (torchvision key layout) at that path: torchvision's "
    "vgg16-397923af.pth (https://download.pytorch.org/models/vgg16-397923af.pth; RGB, [0, 1], "
    "ImageNet mean/std) or the Caffe-converted vgg16-00b39a1b.pth (BGR, 0-255, mean subtraction; "
    "the convention the paper's numbers come from), and set its pixel convention in config.yaml "
    "under weights:. No weights are downloaded at run time."
)


@dataclass(frozen=True)
class PixelConvention:
    """How the weights expect pixels: channel order, scale of raw values, per-channel mean and std.

    ``normalise`` maps an RGB uint8-valued tensor (..., 3, H, W) to the network's input.
    """

    channel_order: str        # "RGB" or "BGR"
    scale: float              # raw pixel values are multiplied by scale / 255 (255 -> 0-255, 1 -> [0, 1])
    mean: tuple[float, float, float]   # in the network's channel order, after scaling
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.float() * (self.scale / 255.0)
        if self.channel_order == "BGR":
            x = x.flip(-3)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalise`: network input -> RGB in [0, 255] (float)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        x = x * std + mean
        if self.channel_order == "BGR":
            x = x.flip(-3)
        return x * (255.0 / self.scale)


@dataclass(frozen=True)
class WeightsSpec:
    """A weights entry of config.yaml: a local file (or None for random init) and its pixel convention.
    ``how_to_get`` is what a missing file's error tells the user to do."""

    path: str | None
    pixels: PixelConvention
    how_to_get: str = HOW_TO_GET_WEIGHTS


class VGGC5D(LayeredTrunk):
    """VGG16-C5D trunk. Input (1, 3, H, W); output conv5_3 features (1, C5, floor(H/8) - 1, floor(W/8) - 1).

    ``fc6``/``fc7`` (the VGG classifier's first two layers) are kept here so a detection head can be
    initialised from them; they are not used by :meth:`forward`.
    """

    stride: int = 8

    def __init__(self, widths: tuple[int, ...] = VGG16_WIDTHS, fc_dim: int = 4096, roi_size: int = 7,
                 group_norm: int = 0):
        super().__init__()
        if tuple(widths) == VGG16_WIDTHS:
            net = vgg16(weights=None)
            features = net.features
            fc6, fc7 = net.classifier[0], net.classifier[3]
            if fc_dim != 4096:
                fc6, fc7 = nn.Linear(widths[-1] * roi_size**2, fc_dim), nn.Linear(fc_dim, fc_dim)
        else:
            layout: list[int | str] = []
            for width, count in zip(widths, _CONVS_PER_STAGE):
                layout += [width] * count + ["M"]
            features = make_layers(layout, batch_norm=False)
            fc6, fc7 = nn.Linear(widths[-1] * roi_size**2, fc_dim), nn.Linear(fc_dim, fc_dim)
            _msra_init(features)
        layers = list(features.children())
        if group_norm:   # GroupNorm after every conv: trains from scratch with one image per step
            layers = [m for layer in layers for m in ((layer, nn.GroupNorm(group_norm, layer.out_channels))
                                                      if isinstance(layer, nn.Conv2d) else (layer,))]
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
        layers[pools[3]] = nn.MaxPool2d(kernel_size=2, stride=1)          # pool4: kernel 2, stride 1
        for index in convs[-3:]:                                          # conv5_1..3: dilation 2
            layers[index].dilation, layers[index].padding = (2, 2), (2, 2)
        self.features = nn.Sequential(*layers[:pools[4]])                  # no pool5
        self.stage_starts = (0, *(p + 1 for p in pools[:4]))              # conv1_1, conv2_1, ..., conv5_1
        self.fc6, self.fc7 = fc6, fc7
        self.out_channels = widths[-1]
        self.fc_dim = fc_dim

    @property
    def layers(self) -> nn.Sequential:
        return self.features

    def take_classifier(self) -> tuple[nn.Linear, nn.Linear]:
        """Hand fc6/fc7 over to a detection head (and stop holding them here, so each parameter has
        one owner in the state dict)."""
        fc6, fc7 = self.fc6, self.fc7
        del self.fc6, self.fc7
        return fc6, fc7

    def load_vgg16_state_dict(self, state: dict[str, torch.Tensor], path: str | Path = "<state dict>") -> None:
        """Load conv1_1..conv5_3 and fc6/fc7 from a torchvision-layout VGG16 state dict (fc8 ignored)."""
        mapped = {k: v for k, v in state.items() if k.startswith("features.")}
        missing = [k for k in self.features.state_dict() if f"features.{k}" not in mapped]
        if missing:
            raise ValueError(f"{path}: not a VGG16 state dict in torchvision's layout; missing "
                             f"features.{missing[0]} (expected keys features.N.weight/bias, classifier.0/3)")
        self.features.load_state_dict({k[len("features."):]: v for k, v in mapped.items()
                                       if k[len("features."):] in self.features.state_dict()})
        for name, layer in (("classifier.0", self.fc6), ("classifier.3", self.fc7)):
            weight = state.get(f"{name}.weight")
            if weight is not None and weight.shape == layer.weight.shape:
                layer.weight.data.copy_(weight)
                layer.bias.data.copy_(state[f"{name}.bias"])


def _msra_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
