"""Architecture registry and the normalise-first model wrapper.

Every model is ``nn.Sequential(Normalize(mean, std), net)``: it takes images in [0, 1], so
Gaussian noise, attack radii and certified radii all live in pixel space, as in Cohen et al. (2019).
``model[1]`` is the network body; its state-dict keys start with ``1.`` like Cohen et al.'s
checkpoints. ``model[0]`` keeps the dataset's mean and std as buffers (keys ``0.mean``, ``0.std``),
so a checkpoint records the normalisation it was trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from robust._torchvision import import_torchvision
from robust.archs.airbench import AirbenchNet
from robust.archs.cifar_resnet import CifarResNet
from robust.archs.robustness_resnet import BottleneckResNet50
from robust.archs.tiny import SmallCNN, TinyCNN
from robust.data import dataset_info


class Normalize(nn.Module):
    """(x - mean) / std per channel; x [B, C, H, W] in [0, 1]; mean, std: buffers [1, C, 1, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"need one positive std per mean, got mean={mean}, std={std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


# name -> (num_classes -> network body without normalisation)
ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "cifar_resnet20": partial(CifarResNet, 20),
    "cifar_resnet56": partial(CifarResNet, 56),
    "cifar_resnet110": partial(CifarResNet, 110),
    "airbench": AirbenchNet,
    "tiny_cnn": TinyCNN,
    "small_cnn": SmallCNN,
    # torchvision's ImageNet ResNet-50, randomly initialised (Cohen et al.'s ImageNet model)
    "resnet50": lambda k: import_torchvision().models.resnet50(weights=None, num_classes=k),
    # the robustness library's CIFAR ResNet-50 (its released L2-robust CIFAR-10 models)
    "robustness_resnet50": BottleneckResNet50,
}


def build_model(arch: str, dataset: str, *, seed: int | None = None) -> nn.Sequential:
    """A freshly initialised ``Sequential(Normalize(mean, std), net)`` on the CPU, in training
    mode, mapping [B, C, H, W] images in [0, 1] to logits [B, K].

    Args:
        arch: a key of ``ARCHITECTURES``.
        dataset: a name known to ``robust.data.dataset_info`` (gives num_classes, mean, std).
        seed: if given, the initial weights are a function of the seed alone (drawn from a private
            copy of the global RNG, which is left untouched); otherwise torch's global RNG is used.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{arch}'; valid: {', '.join(ARCHITECTURES)}")
    info = dataset_info(dataset)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        net = ARCHITECTURES[arch](info.num_classes)
    return nn.Sequential(Normalize(info.mean, info.std), net)
