"""The CIFAR ResNet used by Cohen et al. (2019) for randomized smoothing (depth 6n + 2).

He et al.'s (2016) CIFAR design as in the pytorch-classification code Cohen et al. took their
ResNet-110 from: three stages of n BasicBlocks (16/32/64 channels), a strided 1x1 conv + BN
shortcut where the shape changes ("option B"). Attribute names reproduce that code's state-dict
keys, so its published checkpoints load into this module.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); ``stride`` 2 halves H and W."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-``depth`` (6n + 2: 20, 56, 110, ...): [B, 3, 32, 32] -> logits [B, num_classes]."""

    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = _conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1, self.layer2, self.layer3 = (  # maps of 32x32, 16x16 and 8x8
            nn.Sequential(BasicBlock(c_in, c, stride), *(BasicBlock(c, c) for _ in range(n - 1)))
            for c_in, c, stride in ((16, 16, 1), (16, 32, 2), (32, 64, 2))
        )
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, num_classes)
        # He et al.'s fan-out normal init of convolutions, as the reference code (BN: torch's 1, 0).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))  # [B, 64] -> [B, K]
