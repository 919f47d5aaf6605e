"""What every detection trunk is: an ``nn.Sequential`` of ``layers`` whose first ``frozen_layers`` are frozen.

The split is what the frozen-feature cache needs: the frozen part's output for one input never
changes, so training computes it once (:meth:`LayeredTrunk.frozen_forward`) and runs only the
trainable tail (:meth:`LayeredTrunk.tail_forward`) on every visit.
"""

from __future__ import annotations

import torch
from torch import nn


class LayeredTrunk(nn.Module):
    """Image (N, 3, H, W) -> features (N, ``out_channels``, ~H/``stride``, ~W/``stride``).

    Subclasses set ``layers`` (an ``nn.Sequential``), ``out_channels`` and ``stride``. Frozen layers
    get no gradient and stay in eval mode whatever mode the model is put in.
    """

    layers: nn.Sequential
    out_channels: int
    stride: int
    frozen_layers: int = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.tail_forward(self.frozen_forward(image))

    def frozen_forward(self, image: torch.Tensor) -> torch.Tensor:
        """The frozen layers alone (identity when none is frozen)."""
        return self.layers[: self.frozen_layers](image)

    def tail_forward(self, features: torch.Tensor) -> torch.Tensor:
        """The trainable layers on the frozen part's output."""
        return self.layers[self.frozen_layers:](features)

    def freeze(self, count: int) -> None:
        """Freeze the first ``count`` layers (parameters and mode); the others train."""
        if not 0 <= count <= len(self.layers):
            raise ValueError(f"cannot freeze {count} of {len(self.layers)} layers")
        self.frozen_layers = count
        for index, layer in enumerate(self.layers):
            for parameter in layer.parameters():
                parameter.requires_grad_(index >= count)
        self.train(self.training)

    @property
    def fully_frozen(self) -> bool:
        return self.frozen_layers == len(self.layers)

    def train(self, mode: bool = True) -> "LayeredTrunk":
        super().train(mode)
        for layer in self.layers[: self.frozen_layers]:
            layer.eval()
        return self
