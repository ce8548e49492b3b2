"""Known answers for score alignment: LPIPS (robust.lpips), the diffusion score and the model
direction with max-abs scaling (robust.score_alignment).

Weights are tiny offline fixtures in the real file formats: a randomly initialised torchvision
AlexNet state dict, LPIPS-format linear weights and an exported analytic denoiser. For data
x ~ N(mu, s^2 I) the exact denoiser is D(y; sigma) = (s^2 y + sigma^2 mu) / (s^2 + sigma^2), so
the score is (mu - y) / (s^2 + sigma^2) in closed form.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust import lpips
from robust.checkpoint import CheckpointError
from robust.pag import _per_image_noise
from robust.score_alignment import (
    DenoiserError,
    alignment_distance,
    diffusion_score,
    load_denoiser,
    logit_sum_gradient,
    max_abs_scale,
    score_alignment,
    score_maps,
)

S, SIGMA = 0.3, 0.5  # data std and score noise level, [-1, 1] units


class GaussianDenoiser(nn.Module):
    """Exact denoiser of data N(mu, s^2 I): (s^2 y + sigma^2 mu) / (s^2 + sigma^2)."""

    def __init__(self, mu: Tensor, s: float) -> None:
        super().__init__()
        self.register_buffer("mu", mu)
        self.s2 = s * s

    def forward(self, y: Tensor, sigma: Tensor) -> Tensor:
        v = sigma.view(-1, 1, 1, 1) ** 2
        return (self.s2 * y + v * self.mu) / (self.s2 + v)


class ScoreModel(nn.Module):
    """One logit, -||2x - 1 - mu||^2 / (2 (s^2 + sigma^2)), plus a constant one: its logit-sum
    gradient is twice the Gaussian score at y = 2x - 1, the same direction."""

    def __init__(self, mu: Tensor) -> None:
        super().__init__()
        self.register_buffer("mu", mu)

    def forward(self, x: Tensor) -> Tensor:
        energy = -((2 * x - 1 - self.mu) ** 2).flatten(1).sum(1) / (2 * (S * S + SIGMA * SIGMA))
        return torch.stack([energy, torch.ones_like(energy)], dim=1)


def export_script(module: nn.Module, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: deprecated, still read
        torch.jit.script(module).save(str(path))


@pytest.fixture(scope="module")
def alexnet_state() -> dict[str, Tensor]:
    from robust._torchvision import import_torchvision

    torch.manual_seed(0)
    features = import_torchvision().models.alexnet(weights=None).features
    return {f"features.{k}": v for k, v in features.state_dict().items()}


@pytest.fixture(scope="module")
def lin_state() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    return {f"lin{i}.model.1.weight": torch.rand((1, c, 1, 1), generator=g)
            for i, c in enumerate(lpips.CHANNELS)}  # fmt: skip


@pytest.fixture(scope="module")
def metric(alexnet_state, lin_state) -> lpips.LPIPS:
    return lpips.LPIPS(lpips.alexnet_features(alexnet_state), lpips.linear_weights(lin_state))


@pytest.fixture(scope="module")
def mu() -> Tensor:
    return torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(2)) * 2 - 1


def images(n: int, seed: int) -> Tensor:
    return torch.rand((n, 3, 32, 32), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- LPIPS
def test_lpips_of_identical_images_is_zero(metric):
    x = images(3, 0) * 2 - 1
    assert torch.equal(metric(x, x), torch.zeros(3))


def test_lpips_is_symmetric_and_positive_for_different_images(metric):
    a, b = images(4, 0) * 2 - 1, images(4, 1) * 2 - 1
    ab, ba = metric(a, b), metric(b, a)
    assert torch.allclose(ab, ba, rtol=1e-5, atol=1e-7)
    assert bool((ab > 1e-4).all())


def hand_lpips(state: dict[str, Tensor], x0: Tensor, x1: Tensor) -> Tensor:
    """LPIPS with unit linear weights, written out with functional ops in float64."""
    shift = torch.tensor(lpips.SHIFT, dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor(lpips.SCALE, dtype=torch.float64).view(1, 3, 1, 1)

    def conv(h, i, stride=1, padding=1):
        w, b = state[f"features.{i}.weight"].double(), state[f"features.{i}.bias"].double()
        return F.relu(F.conv2d(h, w, b, stride=stride, padding=padding))

    def layers(x):
        h1 = conv((x.double() - shift) / scale, 0, stride=4, padding=2)
        h2 = conv(F.max_pool2d(h1, 3, 2), 3, padding=2)
        h3 = conv(F.max_pool2d(h2, 3, 2), 6)
        h4 = conv(h3, 8)
        return [h1, h2, h3, h4, conv(h4, 10)]

    total = torch.zeros(x0.shape[0], dtype=torch.float64)
    for f0, f1 in zip(layers(x0), layers(x1), strict=True):
        u0 = f0 / (f0.norm(dim=1, keepdim=True) + 1e-10)
        u1 = f1 / (f1.norm(dim=1, keepdim=True) + 1e-10)
        total += (u0 - u1).square().sum(1).mean(dim=(1, 2))
    return total


def test_lpips_with_unit_weights_equals_hand_computation(alexnet_state):
    unit = [torch.ones(1, c, 1, 1) for c in lpips.CHANNELS]
    metric = lpips.LPIPS(lpips.alexnet_features(alexnet_state), unit)
    x0, x1 = images(2, 3) * 2 - 1, images(2, 4) * 2 - 1
    expected = hand_lpips(alexnet_state, x0, x1)
    assert torch.allclose(metric(x0, x1).double(), expected, rtol=1e-4)
    # unit vectors with non-negative entries are at most sqrt(2) apart: each layer adds <= 2
    assert bool((expected > 0).all() and (expected <= 10).all())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("features.3.weight"), "AlexNet weights: missing key 'features.3.weight'"),
        (lambda s: s.update({"features.12.weight": torch.ones(1)}),
         "AlexNet weights: unexpected key 'features.12.weight'"),
        (lambda s: s.update({"features.0.bias": torch.ones(3)}),
         "AlexNet weights: 'features.0.bias' has shape (3,), expected (64,)"),
    ],
)  # fmt: skip
def test_alexnet_key_errors_are_one_line(alexnet_state, change, message):
    state = dict(alexnet_state)
    change(state)
    with pytest.raises(lpips.LpipsError) as err:
        lpips.alexnet_features(state)
    assert str(err.value) == message


def test_alexnet_classifier_keys_are_ignored(alexnet_state):
    state = dict(alexnet_state) | {"classifier.6.bias": torch.zeros(1000)}
    features = lpips.alexnet_features(state)
    assert torch.equal(features[10].weight, alexnet_state["features.10.weight"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("lin4.model.1.weight"),
         "LPIPS weights: missing key 'lin4.model.1.weight'"),
        (lambda s: s.update({"lin5.model.1.weight": torch.ones(1, 8, 1, 1)}),
         "LPIPS weights: unexpected key 'lin5.model.1.weight'"),
        (lambda s: s.update({"lin1.model.1.weight": torch.ones(1, 64, 1, 1)}),
         "LPIPS weights: 'lin1.model.1.weight' has shape (1, 64, 1, 1), expected (1, 192, 1, 1)"),
        (lambda s: s.update({"lin0.model.1.weight": -torch.ones(1, 64, 1, 1)}),
         "LPIPS weights: 'lin0.model.1.weight' has negative entries; LPIPS needs w >= 0"),
    ],
)  # fmt: skip
def test_lpips_weight_errors_are_one_line(lin_state, change, message):
    state = dict(lin_state)
    change(state)
    with pytest.raises(lpips.LpipsError) as err:
        lpips.linear_weights(state)
    assert str(err.value) == message


def test_load_lpips_from_files(tmp_path, alexnet_state, lin_state, metric):
    torch.save(alexnet_state, tmp_path / "alexnet.pth")
    torch.save(lin_state, tmp_path / "lpips_alex.pth")
    loaded = lpips.load_lpips(tmp_path / "alexnet.pth", tmp_path / "lpips_alex.pth")
    a, b = images(2, 5) * 2 - 1, images(2, 6) * 2 - 1
    assert torch.equal(loaded(a, b), metric(a, b))
    with pytest.raises(FileNotFoundError, match="LPIPS weights not found: .*missing.pth"):
        lpips.load_lpips(tmp_path / "alexnet.pth", tmp_path / "missing.pth")
    (tmp_path / "broken.pth").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read AlexNet weights .*broken.pth"):
        lpips.load_lpips(tmp_path / "broken.pth", tmp_path / "lpips_alex.pth")
    with pytest.raises(lpips.LpipsError, match="at least 31x31"):
        loaded(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


# ------------------------------------------------------------------------------ diffusion score
def test_score_of_gaussian_data_from_a_torchscript_denoiser(tmp_path, mu):
    export_script(GaussianDenoiser(mu, S), tmp_path / "denoiser.ts")
    denoiser = load_denoiser(tmp_path / "denoiser.ts")
    y = images(5, 7) * 2 - 1
    expected = (mu - y) / (S**2 + SIGMA**2)
    assert torch.allclose(diffusion_score(denoiser, y, SIGMA), expected, atol=1e-5)
    x = images(5, 7)  # the same images in [0, 1], batched differently
    maps = score_maps(denoiser, x, SIGMA, batch_size=2)
    assert torch.allclose(maps, expected, atol=1e-5)


def test_score_from_a_torch_export_program(tmp_path, mu):
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        GaussianDenoiser(mu, S),
        (torch.zeros(2, 3, 32, 32), torch.full((2,), SIGMA)),
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    torch.export.save(program, tmp_path / "denoiser.pt2")
    denoiser = load_denoiser(tmp_path / "denoiser.pt2")
    y = images(3, 8) * 2 - 1
    expected = (mu - y) / (S**2 + SIGMA**2)
    assert torch.allclose(diffusion_score(denoiser, y, SIGMA), expected, atol=1e-5)


def test_denoiser_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="denoiser not found"):
        load_denoiser(tmp_path / "none.ts")
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(DenoiserError, match="as a torch.export program") as err:
        load_denoiser(tmp_path / "junk.pt2")
    assert "\n" not in str(err.value)
    with pytest.raises(DenoiserError, match=r"returned \(2, 3, 16, 16\) for images"):
        diffusion_score(lambda y, s: y[..., :16, :16], torch.zeros(2, 3, 32, 32), SIGMA)
    with pytest.raises(ValueError, match="sigma > 0"):
        diffusion_score(lambda y, s: y, torch.zeros(1, 3, 32, 32), 0.0)


# --------------------------------------------------------------------- model direction, LPIPS
def test_linear_model_gradient_is_the_column_sums():
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn((5, 3 * 4 * 4), generator=g), torch.randn(5, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    model[1].weight.data, model[1].bias.data = w.clone(), b.clone()
    x = images(2, 9)[..., :4, :4]
    expected = w.sum(0).view(1, 3, 4, 4).expand(2, -1, -1, -1)
    assert torch.allclose(logit_sum_gradient(model, x), expected, atol=1e-6)
    # noise moves a linear model's input but not its gradient
    noisy = logit_sum_gradient(model, x, 0.5, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(noisy, expected, atol=1e-5)
    assert model[1].weight.grad is None  # nothing reaches the parameters


def test_smoothed_gradient_is_the_mean_over_the_noisy_copies():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4), nn.Tanh())
    x = images(3, 10)
    got = logit_sum_gradient(model, x, 0.25, 5, torch.Generator().manual_seed(4))
    noise = _per_image_noise(x, 5, 0.25, torch.Generator().manual_seed(4))
    by_hand = torch.stack(
        [torch.stack([logit_sum_gradient(model, (x[i] + noise[i, j])[None])[0]
                      for j in range(5)]).mean(0) for i in range(3)]
    )  # fmt: skip
    assert torch.allclose(got, by_hand, atol=1e-6)


def test_max_abs_scale():
    v = torch.randn((3, 3, 8, 8), generator=torch.Generator().manual_seed(5))
    v[2] = 0.0
    scaled = max_abs_scale(v)
    assert torch.allclose(scaled[:2].flatten(1).abs().amax(1), torch.ones(2))
    assert torch.equal(scaled[2], torch.zeros(3, 8, 8))
    assert torch.allclose(max_abs_scale(7.0 * v), scaled)


def test_the_score_direction_has_lpips_zero_and_others_more(metric, mu):
    x = images(4, 11)
    maps = score_maps(GaussianDenoiser(mu, S), x, SIGMA, batch_size=4)
    aligned = score_alignment(ScoreModel(mu), x, maps, metric, sigma=0.0, m=1, generator=None,
                              batch_size=3)  # fmt: skip
    assert float(aligned.abs().max()) < 1e-6
    flipped = alignment_distance(metric, -maps, maps)
    other = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    unrelated = score_alignment(other, x, maps, metric, sigma=0.0, m=1, generator=None,
                                batch_size=4)  # fmt: skip
    assert bool((flipped > 0.05).all()) and bool((unrelated > 0.05).all())


def test_smoothed_alignment_does_not_depend_on_the_batch_size(metric, mu):
    x = images(5, 12)
    maps = score_maps(GaussianDenoiser(mu, S), x, SIGMA, batch_size=5)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 4), nn.Tanh())
    runs = [
        score_alignment(model, x, maps, metric, sigma=0.25, m=3, batch_size=b,
                        generator=torch.Generator().manual_seed(0))
        for b in (3, 12)
    ]  # fmt: skip
    assert runs[0].dtype == torch.float64 and runs[0].shape == (5,)
    assert torch.allclose(runs[0], runs[1], atol=1e-6)
