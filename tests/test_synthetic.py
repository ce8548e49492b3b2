"""The synthetic shape data set: deterministic, balanced, fast, and learnable from shape only."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from robust import synthetic
from robust.data import open_split, prototypes


def test_shapes_dtypes_and_exact_balance():
    x, y = synthetic.generate(200, seed=0)
    assert x.shape == (200, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (200,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [20] * 10
    assert len(synthetic.CLASS_NAMES) == synthetic.NUM_CLASSES == 10
    assert len(set(synthetic.CLASS_NAMES)) == 10


def test_deterministic_for_a_seed_and_different_across_seeds_and_splits():
    x1, y1 = synthetic.generate(300, seed=3)
    x2, y2 = synthetic.generate(300, seed=3)
    assert x1.numpy().tobytes() == x2.numpy().tobytes() and torch.equal(y1, y2)
    x3, _ = synthetic.generate(300, seed=4)
    x4, _ = synthetic.generate(300, seed=3, split="test")
    assert not torch.equal(x1, x3) and not torch.equal(x1, x4)
    with pytest.raises(ValueError, match="unknown split"):
        synthetic.generate(10, seed=0, split="val")


def test_generation_is_fast():
    synthetic.generate(100, seed=0)  # warm-up
    best = float("inf")
    for _ in range(2):  # best of two: the test machine is shared
        start = time.perf_counter()
        synthetic.generate(5000, seed=1)
        best = min(best, time.perf_counter() - start)
    assert best < 3.0


def test_prototypes_are_clean_and_class_means_resemble_them():
    protos = synthetic.prototypes()
    assert protos.shape == (10, 3, 32, 32) and protos.dtype == torch.uint8
    assert torch.equal(protos[:, 0], protos[:, 1]) and torch.equal(
        protos[:, 0], protos[:, 2]
    )  # grey
    assert len(torch.unique(protos[:, 0, 0, 0])) == 1  # one background level for every class
    coverage = (protos[:, 0] > protos[:, 0].float().mean()).float().mean(dim=(1, 2))
    assert coverage.min() > 0.2 and coverage.max() < 0.35  # large shapes of about equal area

    x, y = synthetic.generate(2000, seed=0)
    means = torch.stack([x[y == k].float().mean(0) for k in range(10)]).flatten(1)
    p = protos.float().flatten(1)
    means, p = means - means.mean(1, keepdim=True), p - p.mean(1, keepdim=True)
    cosine = nn.functional.normalize(means, dim=1) @ nn.functional.normalize(p, dim=1).T
    assert torch.equal(
        cosine.argmax(1), torch.arange(10)
    )  # each class mean is nearest its prototype
    assert cosine.diagonal().min() > 0.7


def test_colour_and_brightness_alone_stay_near_chance():
    x, y = synthetic.generate(2000, seed=0)
    xt, yt = synthetic.generate(1000, seed=0, split="test")

    def features(images: torch.Tensor) -> torch.Tensor:  # per-channel mean colour
        return images.float().mean(dim=(2, 3)) / 255.0

    centroids = torch.stack([features(x[y == k]).mean(0) for k in range(10)])
    accuracy = (torch.cdist(features(xt), centroids).argmin(1) == yt).float().mean().item()
    assert accuracy < 0.25


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


@pytest.fixture
def one_thread():
    """Small convolutions gain nothing from two threads and lose a lot when cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_tiny_cnn_learns_the_shapes_in_seconds(one_thread):
    torch.manual_seed(0)
    x, y = synthetic.generate(2000, seed=0)
    xt, yt = synthetic.generate(500, seed=0, split="test")
    x, xt = x.float() / 255.0 - 0.5, xt.float() / 255.0 - 0.5
    net = _tiny_cnn()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):  # two epochs: a few seconds on one CPU core
        for batch in torch.randperm(len(x), generator=g).split(50):
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        accuracy = (net(xt).argmax(1) == yt).float().mean().item()
    assert accuracy > 0.7  # chance is 0.1; typically > 0.95


def test_prepare_synthetic_writes_one_loadable_file(tmp_path):
    out = tmp_path / "synthetic.pt"
    synthetic.prepare_synthetic(out, seed=5, n_train=50, n_test=20)
    data = torch.load(out, weights_only=True)
    assert data["dataset"] == "synthetic"
    assert data["x_train"].shape == (50, 3, 32, 32) and data["x_test"].shape == (20, 3, 32, 32)
    assert data["class_names"] == list(synthetic.CLASS_NAMES)
    assert torch.equal(data["prototypes"], synthetic.prototypes())
    assert torch.equal(data["x_train"], synthetic.generate(50, seed=5)[0])
    assert data["meta"] == {"seed": 5, "n_train": 50, "n_test": 20}
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic.pt"]  # no temporary left
    assert len(open_split(out, "test")) == 20
    assert prototypes(out).shape == (10, 3, 32, 32)
