"""A tiny CNN for tests and smoke runs: a few thousand images per second on one CPU core."""

from __future__ import annotations

from torch import Tensor, nn


class TinyCNN(nn.Module):
    """Three conv(3x3)-BN-ReLU-maxpool(2) stages (16/32/64 channels) and a linear head.

    [B, 3, H, W] -> logits [B, num_classes]; H, W >= 8. A 2x2 adaptive average pool before the
    head keeps coarse position information while accepting any input size.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 16), (16, 32), (32, 64)):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(64 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))  # [B, 256] -> [B, K]


class SmallCNN(nn.Module):
    """A second small network, built differently from ``TinyCNN`` so it can judge TinyCNN's images:
    5x5 convolutions (24/48 channels) with average pooling, then two fully connected layers.

    [B, 3, H, W] -> logits [B, num_classes]; H, W >= 4.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 24, 5, padding=2),
            nn.GELU(),
            nn.AvgPool2d(2),
            nn.Conv2d(24, 48, 5, padding=2),
            nn.GELU(),
            nn.AvgPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Sequential(nn.Linear(48 * 16, 64), nn.GELU(), nn.Linear(64, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))  # [B, 768] -> [B, K]
