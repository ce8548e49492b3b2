"""robust.smoothing on base classifiers whose smoothed behaviour is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robust.smoothing import ABSTAIN, Smooth
from robust.stats import clopper_pearson_lower, norm_ppf

SHAPE = (1, 4, 4)  # tiny single-channel images keep the Monte Carlo cheap


class LinearTwoClass(nn.Module):
    """f(x) = [w.x + b > 0]: under N(0, sigma^2 I) noise, P(f = 1) = Phi(margin / (sigma ||w||))."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.register_buffer("w", w.flatten())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([-score, score], dim=1)


class ThresholdClassifier(nn.Module):
    """Classes by the first pixel's offset from `center`: k+1 buckets between the thresholds."""

    def __init__(self, center: float, thresholds: list[float]) -> None:
        super().__init__()
        self.center = center
        self.register_buffer("thresholds", torch.tensor(thresholds))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bucket = torch.bucketize(x.flatten(1)[:, 0] - self.center, self.thresholds)
        return nn.functional.one_hot(bucket, len(self.thresholds) + 1).float()


class Recorder(nn.Module):
    """Constant prediction `label`; keeps every input batch it sees if `keep`."""

    def __init__(self, num_classes: int, label: int, keep: bool = True) -> None:
        super().__init__()
        self.num_classes, self.label, self.keep, self.seen = num_classes, label, keep, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep:
            self.seen.append(x.clone())
        return nn.functional.one_hot(
            torch.full((x.shape[0],), self.label), self.num_classes
        ).float()


def _linear_case(p_a: float, sigma: float) -> tuple[LinearTwoClass, torch.Tensor, float]:
    """A linear classifier and image with P(class 1 under noise) = p_a; returns the true radius."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(SHAPE, generator=generator)
    x = torch.rand(SHAPE, generator=generator)
    radius = sigma * norm_ppf(p_a)  # = margin / ||w||
    b = radius * w.norm().item() - float((w * x).sum())
    return LinearTwoClass(w, b), x, radius


def test_certify_radius_is_a_lower_bound_with_probability_1_minus_alpha() -> None:
    sigma, alpha, trials = 0.25, 0.05, 200
    model, x, true_radius = _linear_case(0.9, sigma)
    smooth = Smooth(model, num_classes=2, sigma=sigma, chunk_size=64, seed=1)
    results = [smooth.certify(x[None], [i], 20, 100, alpha, 1000)[0] for i in range(trials)]
    violations = sum(c not in (1, ABSTAIN) or r > true_radius for c, r in results)
    assert violations / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    assert sum(c == 1 for c, _ in results) > trials / 2  # not vacuous: it mostly certifies


def test_certify_mean_radius_approaches_true_radius() -> None:
    sigma, alpha = 0.25, 0.001
    model, x, true_radius = _linear_case(0.9, sigma)
    smooth = Smooth(model, num_classes=2, sigma=sigma, chunk_size=500, seed=2)
    means = []
    for n in (100, 1_000, 10_000):
        radii = [smooth.certify(x[None], [i], 100, n, alpha, 5_000)[0][1] for i in range(10)]
        means.append(sum(radii) / len(radii))
    assert means[0] < means[1] < means[2] < true_radius
    assert means[2] > 0.92 * true_radius  # at n = 10^4 the Clopper-Pearson slack is ~4%


def test_certify_abstains_when_top_class_is_below_one_half() -> None:
    sigma = 0.5
    # Buckets of the first pixel's noise with probabilities 0.4, 0.3, 0.3.
    cuts = [sigma * norm_ppf(0.4), sigma * norm_ppf(0.7)]
    smooth = Smooth(ThresholdClassifier(0.5, cuts), num_classes=3, sigma=sigma, seed=3)
    x = torch.full(SHAPE, 0.5)
    results = [smooth.certify(x[None], [i], 100, 1_000, 0.001, 1_000)[0] for i in range(20)]
    assert results == [(ABSTAIN, 0.0)] * 20


def test_predict_rarely_abstains_when_confident() -> None:
    model, x, _ = _linear_case(0.99, 0.25)
    smooth = Smooth(model, num_classes=2, sigma=0.25, seed=4)
    answers = [smooth.predict(x[None], [i], 100, 0.001, 100)[0] for i in range(100)]
    assert set(answers) <= {1, ABSTAIN}
    assert answers.count(ABSTAIN) <= 2


def test_predict_abstains_on_a_tie() -> None:
    # Margin 0: both classes have probability exactly 1/2, so any answer is an error.
    alpha, trials = 0.05, 200
    model, x, _ = _linear_case(0.5, 0.25)
    smooth = Smooth(model, num_classes=2, sigma=0.25, seed=5)
    answers = [smooth.predict(x[None], [i], 100, alpha, 100)[0] for i in range(trials)]
    wrong = sum(a != ABSTAIN for a in answers)
    assert wrong / trials <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)


def _tiny_cnn() -> nn.Module:
    with torch.random.fork_rng():  # fixed weights without touching the caller's global RNG
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 3 * 3, 10),
        ).eval()


def test_results_do_not_depend_on_batch_size() -> None:
    model = _tiny_cnn()
    x = torch.rand((3, 8, 8), generator=torch.Generator().manual_seed(6))
    outcomes = []
    for batch_size in (1, 7, 1000):
        smooth = Smooth(model, num_classes=10, sigma=0.5, chunk_size=64, seed=7)
        outcomes.append(
            (
                smooth.sample_counts(x[None], [3], (("estimation", 200),), batch_size).tolist(),
                smooth.certify(x[None], [3], 20, 100, 0.01, batch_size),
                smooth.predict(x[None], [3], 100, 0.01, batch_size),
            )
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert sum(outcomes[0][0][0][0]) == 200


def test_noise_stream_is_chunked_seeded_and_unclipped() -> None:
    x = torch.full(SHAPE, 0.5)
    inputs = []
    for batch_size in (1, 7, 1000):
        recorder = Recorder(2, 0)
        smooth = Smooth(recorder, 2, sigma=1.0, chunk_size=64, seed=8)
        smooth.sample_counts(x[None], [9], (("predict", 150),), batch_size)
        inputs.append(torch.cat(recorder.seen))
    assert torch.equal(inputs[0], inputs[1]) and torch.equal(inputs[0], inputs[2])
    noise = inputs[0] - x
    assert inputs[0].dtype == torch.float32 and inputs[0].shape == (150, *SHAPE)
    assert inputs[0].min() < 0 and inputs[0].max() > 1  # not clipped to [0, 1]
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1.0) < 0.1

    def first_input(seed: int, idx: int, stream: str) -> torch.Tensor:
        recorder = Recorder(2, 0)
        smooth = Smooth(recorder, 2, sigma=1.0, chunk_size=64, seed=seed)
        smooth.sample_counts(x[None], [idx], ((stream, 10),), 10)
        return recorder.seen[0]

    assert torch.equal(first_input(8, 9, "predict"), inputs[0][:10])  # prefix of a longer stream
    others = [
        first_input(9, 9, "predict"),
        first_input(8, 10, "predict"),
        first_input(8, 9, "selection"),
    ]
    assert not any(torch.equal(other, inputs[0][:10]) for other in others)


def test_constant_classifier_reaches_the_maximum_radius() -> None:
    sigma, n, alpha = 0.25, 100_000, 0.001
    smooth = Smooth(Recorder(5, 3, keep=False), num_classes=5, sigma=sigma, chunk_size=10_000)
    [(prediction, radius)] = smooth.certify(torch.zeros((1, *SHAPE)), [0], 100, n, alpha, 20_000)
    assert prediction == 3
    assert radius == sigma * norm_ppf(alpha ** (1 / n))
    assert radius == sigma * norm_ppf(clopper_pearson_lower(n, n, alpha))
    assert radius == pytest.approx(3.811 * sigma, abs=1e-3 * sigma)


def test_model_mode_and_gradients_untouched() -> None:
    model = _tiny_cnn().train()
    smooth = Smooth(model, num_classes=10, sigma=0.25)
    smooth.certify(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), [0], 10, 20,
                   0.01, 16)  # fmt: skip
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_invalid_arguments() -> None:
    model, x, _ = _linear_case(0.9, 0.25)
    smooth = Smooth(model, num_classes=2, sigma=0.25)
    with pytest.raises(ValueError, match="unknown noise stream"):
        smooth.sample_counts(x[None], [0], (("training", 10),), 10)
    with pytest.raises(ValueError, match="expected"):
        Smooth(model, num_classes=3, sigma=0.25).sample_counts(x[None], [0], (("predict", 10),), 10)
    for bad in ({"sigma": 0.0}, {"precision": "fp16"}, {"num_classes": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Smooth(model, **({"num_classes": 2, "sigma": 0.25} | bad))
    for xs, idxs, batch in ((x[None], [0, 1], 10), (x, [0], 10), (x[None], [0], 0)):
        with pytest.raises(ValueError, match="need"):
            smooth.sample_counts(xs, idxs, (("predict", 10),), batch)


# ------------------------------------------------------------------------ several images at once
K, CHUNK, SEED, N0, N = 10, 100, 3, 30, 450
STREAMS = (("selection", N0), ("estimation", N))


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    from robust.archs.tiny import TinyCNN
    from robust.models import Normalize

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), TinyCNN(K))
    return net.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, list[int]]:
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)), [0, 7, 40]


def test_a_block_draws_the_noise_of_its_images_one_by_one(images) -> None:
    xs, idxs = images
    one_by_one, together = Recorder(K, 0), Recorder(K, 0)
    for i, idx in enumerate(idxs):
        Smooth(one_by_one, K, 0.25, CHUNK, SEED).sample_counts(xs[i : i + 1], [idx], STREAMS, 64)
    Smooth(together, K, 0.25, CHUNK, SEED).sample_counts(xs, idxs, STREAMS, 170)
    assert torch.equal(torch.cat(together.seen), torch.cat(one_by_one.seen))
    assert max(len(batch) for batch in together.seen) == 170


@pytest.mark.parametrize("batch_size", [64, 257, 1400])
def test_block_answers_equal_one_image_at_a_time(cnn, images, batch_size) -> None:
    xs, idxs = images
    smooth = Smooth(cnn, K, 0.25, CHUNK, SEED)
    expected = [smooth.certify(xs[i : i + 1], [idx], N0, N, 0.001, 200)[0]
                for i, idx in enumerate(idxs)]  # fmt: skip
    assert smooth.certify(xs, idxs, N0, N, 0.001, batch_size) == expected
    assert any(p != ABSTAIN for p, _ in expected)  # not a degenerate all-abstain case
    counts = smooth.sample_counts(xs, idxs, STREAMS, batch_size)
    assert counts.shape == (3, 2, K) and counts.sum(dim=2).tolist() == [[N0, N]] * 3


def test_bf16_is_the_bf16_network_smoothed(cnn, images) -> None:
    """bf16 counts are those of the network run under bfloat16 autocast, sample by sample: another
    fixed base classifier, close to but not always the fp32 one."""
    xs, idxs = images

    def bf16_network(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cnn(x).float()

    class Wrapped(nn.Module):
        forward = staticmethod(bf16_network)

    bf16 = Smooth(cnn, K, 0.25, CHUNK, SEED, "bf16").sample_counts(xs, idxs, STREAMS, 500)
    written_out = Smooth(Wrapped(), K, 0.25, CHUNK, SEED).sample_counts(xs, idxs, STREAMS, 500)
    fp32 = Smooth(cnn, K, 0.25, CHUNK, SEED).sample_counts(xs, idxs, STREAMS, 500)
    assert torch.equal(bf16, written_out)
    agree = torch.minimum(bf16, fp32).sum() / fp32.sum()  # at least this share of labels agree
    assert agree >= 0.99


def test_counts_run_in_ieee_fp32() -> None:
    """The base classifier runs with TF32 off (float32 means IEEE float32 on every GPU); the
    caller's settings come back afterwards, also after an exception."""
    from robust import smoothing

    switches = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    saved = [space.fp32_precision for space in switches]
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append([space.fp32_precision for space in switches])
            return torch.zeros(len(x), 2)

    try:
        for space in switches:
            space.fp32_precision = "tf32"
        Smooth(Probe(), 2, 0.5).sample_counts(torch.zeros(1, 1, 2, 2), [0], (("predict", 3),), 3)
        assert seen == [["ieee", "ieee"]]
        assert [space.fp32_precision for space in switches] == ["tf32", "tf32"]
        with pytest.raises(RuntimeError), smoothing.ieee_fp32():
            raise RuntimeError
        assert [space.fp32_precision for space in switches] == ["tf32", "tf32"]
    finally:
        for space, value in zip(switches, saved, strict=True):
            space.fp32_precision = value
