"""Tests for robust.training: perturbations, schedule, augmentation, loss decrease, exact resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robust.archs.tiny import TinyCNN
from robust.data import Split
from robust.models import Normalize
from robust.training import (
    GaussianNoise,
    TrainConfig,
    augment_batch,
    learning_rate,
    make_perturbation,
    train,
)

K = 4
PERTURB = {
    "standard": {},
    "gaussian": {"sigma": 0.25},
    "adversarial": {"norm": "l2", "eps": 0.5, "steps": 2, "step_size": 0.3},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: a second thread only adds overhead, and much more on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_split(n: int, seed: int = 0) -> Split:
    """n uint8 images [3, 16, 16]: noise plus a bright quadrant that gives the class (K = 4)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % K
    x = torch.randint(0, 120, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    for c in range(K):
        r, s = divmod(c, 2)
        x[y == c, :, 8 * r : 8 * r + 8, 8 * s : 8 * s + 8] += 120
    return Split(x, y, [f"class_{c}" for c in range(K)])


def make_model(seed: int = 0) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(Normalize((0.3,) * 3, (0.2,) * 3), TinyCNN(K))


def config(**changes) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 16, "lr": 0.05, "seed": 0, "weight_decay": 5e-4}
    return TrainConfig(**{**base, **changes})


def perturbed_loss(model: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """Training-mode CE on the perturbed batch, with a fixed generator for the perturbation."""
    model.train()
    generator = torch.Generator().manual_seed(123)
    x_train = make_perturbation(kind, **PERTURB[kind])(model, x, y, generator)
    with torch.no_grad():
        return F.cross_entropy(model(x_train), y).item()


@pytest.mark.parametrize("kind", ["standard", "gaussian", "adversarial"])
def test_training_lowers_the_perturbed_loss(kind: str) -> None:
    data = make_split(16)
    x, y = data.get(range(len(data)))
    model = make_model()
    before = perturbed_loss(model, kind, x, y)
    history = train(
        model, data, data, make_perturbation(kind, **PERTURB[kind]), config(augment=False)
    )
    assert not model.training
    after = perturbed_loss(model, kind, x, y)
    assert after < 0.8 * before
    assert [h["epoch"] for h in history] == [1, 2, 3]
    keys = {
        "epoch",
        "loss",
        "train_accuracy",
        "test_accuracy",
        "test_noise_accuracy",
        "lr",
        "seconds",
    }
    assert set(history[0]) == keys
    assert history[0]["test_noise_accuracy"] == history[0]["test_accuracy"]  # eval_sigma = 0


class ModeRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, K)
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.linear(x.flatten(1))


def test_pgd_attacks_in_eval_mode_and_restores_train_mode() -> None:
    model = ModeRecorder().train()
    x, y = torch.rand(5, 3, 4, 4), torch.arange(5) % K
    perturb = make_perturbation("adversarial", norm="linf", eps=0.1, steps=3, step_size=0.05)
    x_adv = perturb(model, x, y, torch.Generator().manual_seed(0))
    assert model.modes == [False] * 3 and model.training
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_gaussian_noise_is_fresh_unclipped_and_has_std_sigma() -> None:
    x = torch.full((64, 3, 8, 8), 0.5)
    g = torch.Generator().manual_seed(0)
    noisy = GaussianNoise(0.5)(nn.Identity(), x, torch.zeros(64), g)
    delta = noisy - x
    assert abs(delta.std().item() - 0.5) < 0.02 and (noisy < 0).any() and (noisy > 1).any()
    assert not torch.equal(delta[0], delta[1])
    assert not torch.equal(delta, GaussianNoise(0.5)(nn.Identity(), x, torch.zeros(64), g) - x)


def test_make_perturbation_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="valid: standard, gaussian, adversarial"):
        make_perturbation("fgsm")
    with pytest.raises(ValueError, match="eps > 0"):
        make_perturbation("adversarial", eps=0.0, steps=3, step_size=0.1)
    with pytest.raises(ValueError, match="sigma"):
        make_perturbation("gaussian", sigma=-1.0)
    assert make_perturbation("standard")(None, x := torch.rand(2, 3), None, None) is x


def test_augment_batch_crops_padded_windows_and_flips() -> None:
    x = torch.randint(1, 255, (32, 3, 6, 6), dtype=torch.uint8)  # no zeros: padding is visible
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    padded = F.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(32):
        windows = [padded[i, :, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        flipped = any(torch.equal(out[i], w.flip(-1)) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert out.dtype == torch.uint8 and 5 <= flips <= 27


def test_learning_rate_schedules() -> None:
    step = config(epochs=90, lr=0.1, lr_step=30, lr_gamma=0.1)
    assert [learning_rate(step, e, 0, 10) for e in (0, 29, 30, 89)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001]
    )
    cosine = config(epochs=10, lr=1.0, schedule="cosine")
    assert learning_rate(cosine, 0, 0, 10) == 1.0 and learning_rate(cosine, 9, 9, 10) < 0.01
    onecycle = config(epochs=4, lr=1.0, schedule="onecycle", warmup_epochs=1)
    rates = [learning_rate(onecycle, e, s, 2) for e in range(4) for s in range(2)]
    assert rates[:3] == pytest.approx([0.5, 1.0, 1.0]) and rates[-1] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="schedule='linear'"):
        config(schedule="linear")


class Killed(Exception):
    pass


def kill_after_first_epoch(metrics: dict) -> None:
    if metrics["epoch"] == 1:
        raise Killed


RESUME_CASES = {
    # killed by an exception after epoch 1 (the schedule depends on the number of epochs)
    "gaussian-onecycle-exception": (
        "gaussian", {"schedule": "onecycle", "warmup_epochs": 1, "eval_sigma": 0.25}, "exception",
    ),
    # stopped by a shorter run, then extended (only the step schedule allows changing epochs)
    "pgd-step-shorter-run": (
        "adversarial", {"schedule": "step", "lr_step": 2, "nesterov": True}, "shorter",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_killed_and_resumed_run_equals_uninterrupted_run(case: str, tmp_path) -> None:
    kind, changes, how = RESUME_CASES[case]
    data, test = make_split(40), make_split(12, seed=1)
    perturb = make_perturbation(kind, **PERTURB[kind])
    full = make_model()
    expected = train(full, data, test, perturb, config(**changes))

    model, state = make_model(), tmp_path / "state.pt"
    if how == "exception":
        with pytest.raises(Killed):
            train(model, data, test, perturb, config(**changes), state_path=state,
                  log=kill_after_first_epoch)  # fmt: skip
    else:
        train(model, data, test, perturb, config(**changes, epochs=1), state_path=state)
    resumed = make_model()  # a fresh process: weights come from the state file only
    history = train(resumed, data, test, perturb, config(**changes), state_path=state)

    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    drop_time = [{k: v for k, v in h.items() if k != "seconds"} for h in (*expected, *history)]
    assert drop_time[:3] == drop_time[3:]


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    data = make_split(32)
    perturb = make_perturbation("gaussian", sigma=0.25)
    models = [make_model(), make_model(), make_model()]
    for model, seed in zip(models, (7, 7, 8), strict=True):
        train(model, data, data, perturb, config(epochs=1, seed=seed))
    a, b, c = (m.state_dict()["1.fc.weight"] for m in models)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_resume_refuses_a_state_from_another_config(tmp_path) -> None:
    data, state = make_split(16), tmp_path / "state.pt"
    train(
        make_model(), data, data, make_perturbation("standard"), config(epochs=1), state_path=state
    )
    other = dataclasses.replace(config(epochs=1), lr=0.01)
    with pytest.raises(ValueError, match="another run.*lr"):
        train(make_model(), data, data, make_perturbation("standard"), other, state_path=state)


def test_bf16_channels_last_options_run() -> None:
    data, model = make_split(16), make_model()
    history = train(model, data, data, make_perturbation("gaussian", sigma=0.1),
                    config(epochs=1, bf16=True, channels_last=True, eval_sigma=0.1))  # fmt: skip
    assert 0 <= history[0]["test_noise_accuracy"] <= 1
    assert model[1].fc.weight.dtype == torch.float32  # autocast leaves the weights in float32
