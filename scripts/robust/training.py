"""One training loop for standard, Gaussian-noise (Cohen et al.) and PGD (Madry et al.) training.

The kinds differ only in the batch perturbation ``perturb(model, x, y, generator)`` applied before
the loss. Images are [B, C, H, W] in [0, 1]; sigma and eps are in pixel units. All randomness comes
from generators seeded from ``config.seed`` and the learning rate is a pure function of the step, so
a run resumed from its per-epoch state ends, on a deterministic device, with the same weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust.attacks import pgd
from robust.checkpoint import CheckpointError, read_torch_file
from robust.io import torch_save

KINDS = ("standard", "gaussian", "adversarial")  # the classifier kinds of params.yaml
SCHEDULES = ("step", "cosine", "onecycle")
_STATE_FORMAT = 1
Perturbation = Callable[[nn.Module, Tensor, Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class NoPerturbation:
    """Standard training: the batch as it is."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        return x


@dataclass(frozen=True)
class GaussianNoise:
    """x + sigma * N(0, I), fresh per example and call, drawn in float32; not clipped to [0, 1]."""

    sigma: float

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        return x + self.sigma * noise


@dataclass(frozen=True)
class PGDPerturbation:
    """Untargeted ``robust.attacks.pgd`` in the ``norm`` ball of radius eps, model in eval mode."""

    norm: str
    eps: float
    steps: int
    step_size: float
    random_start: bool

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: Any) -> Tensor:
        was_training = model.training
        model.eval()  # batch-norm statistics must not move while attacking
        try:
            return pgd(model, x, y, **asdict(self), generator=generator)  # fields: pgd's kwargs
        finally:
            model.train(was_training)


def make_perturbation(
    kind: str,
    *,
    sigma: float = 0.0,
    norm: str = "l2",
    eps: float = 0.0,
    steps: int = 0,
    step_size: float = 0.0,
) -> Perturbation:
    """The batch perturbation ``perturb(model, x, y, generator) -> x_train`` of ``kind`` (a key of
    KINDS); adversarial training runs PGD (``robust.attacks.pgd``) from a random start."""
    if kind == "standard":
        return NoPerturbation()
    if kind == "gaussian":
        if sigma < 0:
            raise ValueError(f"gaussian training needs sigma >= 0, got {sigma}")
        return GaussianNoise(float(sigma))
    if kind == "adversarial":
        if norm not in ("l2", "linf") or eps <= 0 or steps < 1 or step_size <= 0:
            raise ValueError(
                "adversarial training needs norm l2 or linf, eps > 0, steps >= 1 and step_size"
                f" > 0; got norm={norm!r}, eps={eps}, steps={steps}, step_size={step_size}"
            )
        return PGDPerturbation(norm, float(eps), int(steps), float(step_size), random_start=True)
    raise ValueError(f"unknown training kind '{kind}'; valid: {', '.join(KINDS)}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings; defaults follow Cohen et al. (SGD 0.9, wd 1e-4, x0.1 every 30).

    Attributes:
        epochs, batch_size, lr, seed: required; lr is the peak learning rate.
        momentum, nesterov, weight_decay: SGD settings (weight decay on every parameter).
        schedule: "step" (x lr_gamma every lr_step epochs), "cosine" (to 0) or "onecycle" (linear
            decay to 0), each after ``warmup_epochs`` of linear warm-up (updated every step).
        augment: random crop of the 4-pixel zero-padded image + horizontal flip, per example.
        label_smoothing: of the cross-entropy loss.
        eval_sigma: the per-epoch log also gives test accuracy under N(0, eval_sigma^2 I).
        bf16: forward/backward (and the attack) under bfloat16 autocast on the model's device.
        channels_last: channels-last model and batches (faster convolutions on GPUs).
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"
    lr_step: int = 30
    lr_gamma: float = 0.1
    warmup_epochs: int = 0
    augment: bool = True
    label_smoothing: float = 0.0
    eval_sigma: float = 0.0
    bf16: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        valid = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "schedule": self.schedule in SCHEDULES,
            "lr_step": self.lr_step >= 1,
            "warmup_epochs": 0 <= self.warmup_epochs < self.epochs,
            "momentum": 0 <= self.momentum < 1,
            "nesterov": not self.nesterov or self.momentum > 0,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "eval_sigma": self.eval_sigma >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in valid.items() if not ok]
        if bad:
            raise ValueError(f"invalid TrainConfig: {', '.join(bad)}")


def learning_rate(config: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of step ``step`` of epoch ``epoch`` (both 0-based): a pure function."""
    t = epoch + step / steps_per_epoch  # epochs elapsed
    if t < config.warmup_epochs:  # linear, reaching lr at the end of warm-up
        return config.lr * (t + 1 / steps_per_epoch) / config.warmup_epochs
    if config.schedule == "step":
        return config.lr * config.lr_gamma ** (epoch // config.lr_step)
    progress = (t - config.warmup_epochs) / (config.epochs - config.warmup_epochs)  # [0, 1)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (1.0 - progress)


def augment_batch(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Random crop of the ``pad``-pixel zero-padded image and horizontal flip (p = 1/2), per
    example, in one gather; x [B, C, H, W] of any dtype on the generator's device -> same shape."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=x.device)
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # columns read backwards: a mirror
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed per named stream (nearby seeds give unrelated streams)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


def _to_input(x_uint8: Tensor, config: TrainConfig) -> Tensor:
    x = x_uint8.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if config.channels_last else x


@torch.no_grad()
def _accuracy(
    model: nn.Module, data: tuple[Tensor, Tensor], config: TrainConfig, sigma: float
) -> float:
    """Accuracy on uint8 images [N, C, H, W] under N(0, sigma^2 I) (the same noise every epoch)."""
    x_all, y_all = data
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(_seed(config.seed, "eval"))
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for x, y in zip(x_all.split(config.batch_size), y_all.split(config.batch_size), strict=True):
        x, y = _to_input(x.to(device), config), y.to(device)
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            correct += (model(x).argmax(dim=1) == y).sum()
    return correct.item() / len(y_all) if len(y_all) else float("nan")


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: tuple[Tensor, Tensor],
    perturb: Perturbation,
    config: TrainConfig,
    generators: dict[str, torch.Generator],
    epoch: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> dict[str, float]:
    """One pass over the shuffled training set (uint8 x and y already on the model's device)."""
    x_all, y_all = data
    device, n, batch = x_all.device, len(y_all), config.batch_size
    steps = math.ceil(n / batch)
    order = torch.randperm(n, generator=generators["shuffle"]).to(device)
    loss_sum = torch.zeros((), device=device)  # sums stay on the device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=device)
    model.train()
    for step, idx in enumerate(order.split(batch)):
        lr = learning_rate(config, epoch, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = x_all[idx], y_all[idx]
        x = _to_input(augment_batch(x, generators["batch"]) if config.augment else x, config)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
            logits = model(perturb(model, x, y, generators["batch"]))
            loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        if progress is not None:
            progress(epoch, step + 1, steps)
    loss = loss_sum.item() / n
    if not math.isfinite(loss):
        raise RuntimeError(f"training diverged: mean loss {loss} in epoch {epoch + 1}")
    return {"loss": loss, "train_accuracy": correct.item() / n, "lr": lr}


def _read_state(path: Path, identity: dict) -> dict:
    """The training state at ``path``; one from a different run is refused."""
    state = read_torch_file(path, "training state")
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise CheckpointError(f"{path} is not a training state of this version")
    saved = state["identity"]
    differ = sorted(k for k in identity.keys() | saved.keys() if saved.get(k) != identity.get(k))
    if differ:
        raise ValueError(f"training state {path} is from another run ({', '.join(differ)})")
    return state


def train(
    model: nn.Module,
    train: Any,
    test: Any,
    perturb: Perturbation,
    config: TrainConfig,
    *,
    state_path: str | os.PathLike | None = None,
    log: Callable[[dict], None] | None = None,
    eval_size: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[dict]:
    """Train ``model`` in place on the device of its parameters; it is left in eval mode.

    Args:
        model: maps [B, C, H, W] images in [0, 1] to logits (normalisation inside the model).
        train, test: ``robust.data.Split``-like: ``tensors()`` gives uint8 x [N, C, H, W] and
            int64 y [N]. The training set is moved to the model's device once.
        state_path: resumable state, written atomically after every epoch and resumed from if
            present (it must come from the same config, perturbation, data size and device type).
        log: called with each epoch's metrics, after the state is saved.
        eval_size: evaluate on the first ``eval_size`` test images only (all if None).
        progress: ``progress(epoch (0-based), batches done, batches per epoch)`` after each batch.

    Returns:
        Per-epoch metrics: "epoch" (1-based); "loss" and "train_accuracy" on the perturbed
        batches; "test_accuracy"; "test_noise_accuracy" under N(0, eval_sigma^2 I) (the clean one
        if eval_sigma is 0); "lr" of the epoch's last step; "seconds" (train + eval).
    """
    device = next(model.parameters()).device
    data = tuple(t.to(device) for t in train.tensors())
    test_data = tuple(t[:eval_size] for t in test.tensors())
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    generators = {
        "shuffle": torch.Generator().manual_seed(_seed(config.seed, "shuffle")),
        "batch": torch.Generator(device).manual_seed(_seed(config.seed, "batch")),
    }
    # What a saved state must share with the run that resumes it.
    describe = repr(perturb) if dataclasses.is_dataclass(perturb) else type(perturb).__qualname__
    identity = {"perturbation": describe, "num_train": len(data[1]), "device": device.type}
    identity |= asdict(config)
    if config.schedule == "step":  # the only schedule that does not depend on the epoch count
        del identity["epochs"]
    history: list[dict] = []
    if state_path is not None and Path(state_path).exists():
        state = _read_state(Path(state_path), identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for name, generator in generators.items():
            generator.set_state(state["generators"][name])
        history = list(state["history"])
        if len(history) > config.epochs:
            raise ValueError(f"training state {state_path} is past epoch {config.epochs}")
    for epoch in range(len(history), config.epochs):
        start = time.perf_counter()
        metrics = _train_epoch(model, optimizer, data, perturb, config, generators, epoch, progress)
        model.eval()
        clean = _accuracy(model, test_data, config, 0.0)
        sigma = config.eval_sigma
        noisy = _accuracy(model, test_data, config, sigma) if sigma else clean
        metrics |= {"test_accuracy": clean, "test_noise_accuracy": noisy}
        history.append({"epoch": epoch + 1, **metrics, "seconds": time.perf_counter() - start})
        if state_path is not None:
            state = {"format": _STATE_FORMAT, "identity": identity, "history": history}
            state |= {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            state["generators"] = {name: g.get_state() for name, g in generators.items()}
            torch_save(state, state_path)
        if log is not None:
            log(dict(history[-1]))
    model.eval()
    return history
