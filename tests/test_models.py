"""Tests for robust.models: registry, output shapes, parameter counts, Normalize-first layout."""

from __future__ import annotations

import pytest
import torch

from robust.data import dataset_info
from robust.models import ARCHITECTURES, Normalize, build_model

# Published sizes: He et al. (2016) give 0.27M / 0.85M / 1.7M for ResNet-20/56/110 with identity
# shortcuts; the 1x1-conv shortcuts used by Cohen et al. add a few thousand weights.
PARAMS = {
    "cifar_resnet20": (0.27e6, 0.28e6),
    "cifar_resnet56": (0.85e6, 0.87e6),
    "cifar_resnet110": (1.72e6, 1.74e6),
    "airbench": (1.9e6, 2.1e6),
    "tiny_cnn": (1e4, 1e5),
    "small_cnn": (1e4, 1e6),
    # the robustness library's CIFAR ResNet-50: 23,520,842 weights
    "robustness_resnet50": (23_520_842, 23_520_842),
}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", list(PARAMS))
def test_cifar_architectures_shape_and_size(arch: str) -> None:
    # Built on the meta device: shapes and counts without allocating or initialising weights.
    with torch.device("meta"):
        model = build_model(arch, "cifar10")
        logits = model(torch.empty(5, 3, 32, 32))
    assert logits.shape == (5, 10)
    low, high = PARAMS[arch]
    assert low <= count(model) <= high


@pytest.mark.parametrize("arch", ["cifar_resnet20", "airbench", "tiny_cnn"])
def test_forward_on_cpu_gives_finite_logits(arch: str) -> None:
    model = build_model(arch, "cifar10", seed=0).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_resnet50_for_imagenet() -> None:
    with torch.device("meta"):
        model = build_model("resnet50", "imagenet")
        logits = model(torch.empty(1, 3, 224, 224))
    assert logits.shape == (1, 1000)
    assert count(model) == 25_557_032  # torchvision's ResNet-50


def test_normalize_is_the_first_layer_and_normalises() -> None:
    info = dataset_info("cifar10")
    model = build_model("tiny_cnn", "cifar10")
    assert isinstance(model[0], Normalize) and len(model) == 2
    x = torch.rand(2, 3, 4, 4)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    torch.testing.assert_close(model[0](x), (x - mean) / std)
    keys = list(model.state_dict())
    assert keys[:2] == ["0.mean", "0.std"] and all(k.startswith("1.") for k in keys[2:])


def test_cifar_resnet_state_dict_uses_the_reference_key_layout() -> None:
    with torch.device("meta"):
        keys = set(build_model("cifar_resnet110", "cifar10").state_dict())
    expected = {
        "1.conv1.weight", "1.bn1.running_mean", "1.layer1.17.conv2.weight",
        "1.layer2.0.downsample.0.weight", "1.layer3.0.downsample.1.bias", "1.fc.bias",
    }  # fmt: skip
    assert expected <= keys
    assert "1.layer1.0.downsample.0.weight" not in keys  # identity shortcut inside a stage


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    reference = torch.rand(3)
    torch.manual_seed(123)
    a = build_model("tiny_cnn", "synthetic", seed=5)
    assert torch.equal(torch.rand(3), reference)
    b = build_model("tiny_cnn", "synthetic", seed=5)
    c = build_model("tiny_cnn", "synthetic", seed=6)
    assert torch.equal(a[1].fc.weight, b[1].fc.weight)
    assert not torch.equal(a[1].fc.weight, c[1].fc.weight)


def test_unknown_architecture_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'vgg'; valid: cifar_resnet20"):
        build_model("vgg", "cifar10")
    assert set(ARCHITECTURES) == {*PARAMS, "resnet50"}
    with pytest.raises(ValueError):
        Normalize((0.5, 0.5), (0.2, 0.0))
