"""The CIFAR ResNet-50 of the MadryLab ``robustness`` library (Engstrom et al. 2019), the net of
its released L2-robust CIFAR-10 models (Santurkar et al. 2019).

The ImageNet ResNet-50 body adapted to 32x32 inputs: a 3x3 stride-1 stem without max-pooling,
stride 2 in the first 3x3 convolution of stages 2-4, a 4x4 average pool before the classifier.
Attribute names reproduce the library's state-dict keys, so its checkpoints load into this module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1, 3x3, 1x1 convolutions + shortcut; ``stride`` 2 halves H and W; 4 * ``channels`` out."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = EXPANSION * channels
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        # An empty Sequential is the identity and holds no keys, as in the library.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class BottleneckResNet50(nn.Module):
    """ResNet-50 for 32x32 inputs (the only depth the library released CIFAR-10 models for):
    [B, 3, 32, 32] -> logits [B, num_classes]."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_channels, stages = 64, []
        for channels, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = [Bottleneck(in_channels, channels, stride)]
            in_channels = EXPANSION * channels
            layers += [Bottleneck(in_channels, channels) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages  # 32x32, 16x16, 8x8, 4x4
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.avg_pool2d(x, 4)  # [B, 2048, 4, 4] -> [B, 2048, 1, 1] for 32x32 inputs
        return self.linear(torch.flatten(x, 1))
