"""A fast CIFAR-10 network in the style of Jordan's airbench94 (arXiv 2404.00498).

Layout: a 2x2 stem convolution with 24 channels (airbench's patch-whitening layer, here simply
learned), three conv groups (conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU) of
airbench94's widths 64/256/256, a max pool over the remaining 3x3 map and a bias-free linear layer.
The airbench tricks that need a custom optimiser or a data-dependent init (frozen whitening, Dirac
init, Muon, frozen BN scales) are left out, so the net trains with plain SGD + momentum like the
other architectures. The fixed logit scale keeps the initial softmax soft, which airbench found to
matter at large learning rates.
"""

from __future__ import annotations

from torch import Tensor, nn

_LOGIT_SCALE = 1.0 / 9.0


def conv_group(in_channels: int, out_channels: int) -> nn.Sequential:
    """[B, c_in, H, W] -> [B, c_out, H // 2, W // 2]."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class AirbenchNet(nn.Module):
    """[B, 3, 32, 32] -> logits [B, num_classes] (any H, W >= 17 work; the head pools globally)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        # 2x2 valid conv: 32x32 -> 31x31, then the groups give 15, 7 and 3.
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 2, bias=False), nn.BatchNorm2d(24), nn.GELU())
        self.groups = nn.Sequential(conv_group(24, 64), conv_group(64, 256), conv_group(256, 256))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(256, num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.groups(self.stem(x))).flatten(1)  # [B, 256]
        return self.fc(x) * _LOGIT_SCALE
