"""DeepLab-v2 ASPP-L segmentation branch with per-class sigmoid outputs (reference §1.3)."""

from __future__ import annotations

import torch
from torch import nn

from wsjds.model.wsddn import caffe2_xavier_


class ASPPHead(nn.Module):
    """3x3 stride-1 max-pool on conv5_3, then one branch per dilation rate
    (conv3x3 dilated -> ReLU -> dropout -> conv1x1 -> ReLU -> dropout -> conv1x1 to C); the branch
    logits are summed. Input (1, C5, h, w) -> logits (1, C, h, w); sigmoid per class gives the masks."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = (6, 12, 18, 24),
                 hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.branches = nn.ModuleList()
        for rate in rates:
            branch = nn.Sequential(
                nn.Conv2d(in_channels, hidden, 3, padding=rate, dilation=rate), nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Conv2d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Conv2d(hidden, num_classes, 1),
            )
            for layer in (branch[0], branch[3]):   # DeepLab's init is not available: MSRA, as DRN does
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
            caffe2_xavier_(branch[6])
            self.branches.append(branch)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(features)
        return torch.stack([branch(pooled) for branch in self.branches]).sum(dim=0)
