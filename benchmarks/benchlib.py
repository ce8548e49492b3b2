"""Helpers of benchmarks/bench.py: timing, the benchmarked models, and the PAG, training and
pipeline figures."""

from __future__ import annotations

import copy
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import torch
from torch import Tensor, nn

from robust.models import ARCHITECTURES, Normalize
from robust.smoothing import Smooth

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
K, SIGMA, ALPHA, SEED = 10, 0.25, 0.001, 0
PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 FLOP/s (published, not measured)
RN110_H100_BOUND = 0.506e9 * 100_100 / 989e12  # s/image: the compute bound, 0.051 s


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model with its cores and torch threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    cores, threads = os.cpu_count(), torch.get_num_threads()
    return f"{name or platform.processor()} ({cores} cores, {threads} torch threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def spread(values: list[float], unit: str, **extra) -> dict:
    return {"unit": unit, "median": median(values), "min": min(values), "max": max(values),
            "values": values, **extra}  # fmt: skip


def repeat(fn, repeats: int, device: torch.device) -> tuple[list[float], object]:
    """Wall seconds of ``fn()`` per repeat (device synchronised around it) and its last result."""
    times, result = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times, result


def fresh_model(arch: str, device: torch.device) -> nn.Module:
    """Normalize + ``arch`` with weights drawn from the seed alone (training mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return nn.Sequential(Normalize(CIFAR_MEAN, CIFAR_STD), ARCHITECTURES[arch](K)).to(device)


def random_model(arch: str, device: torch.device, xs: torch.Tensor) -> nn.Module:
    """Seeded random weights, BN statistics measured on noisy copies of ``xs`` (without that, a
    deep random net predicts one constant class and every fidelity check passes trivially)."""
    model = fresh_model(arch, device)
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # plain average over the calibration batch
    noisy = xs.repeat(64, 1, 1, 1)
    generator = torch.Generator(xs.device).manual_seed(SEED)
    with torch.no_grad():
        noise = torch.randn(noisy.shape, generator=generator, device=xs.device)
        model.train()(noisy + SIGMA * noise)
    for layer in layers:
        layer.momentum = 0.1  # PyTorch's default again
    return model.eval()


def synthetic_model(arch: str, device: torch.device, s: dict) -> tuple[nn.Module, Tensor, str]:
    """A base classifier trained with Gaussian noise (sigma) on the synthetic shapes data set, so
    that the fidelity checks see a trained model's margins; returns (model, test images, note)."""
    from robust import synthetic
    from robust.training import TrainConfig, make_perturbation, train

    count, epochs, batch = s["synthetic"]
    train_split = _Split(*synthetic.generate(count, SEED, "train"))
    test_split = _Split(*synthetic.generate(max(256, s["pool"]), SEED, "test"))
    model = fresh_model(arch, device)
    fast = {"bf16": True, "channels_last": True} if device.type == "cuda" else {}
    config = TrainConfig(epochs=epochs, batch_size=batch, lr=0.1, seed=SEED, schedule="onecycle",
                         warmup_epochs=1, eval_sigma=SIGMA, **fast)  # fmt: skip
    last = train(model, train_split, test_split, make_perturbation("gaussian", sigma=SIGMA),
                 config, eval_size=256)[-1]  # fmt: skip
    model = model.to(memory_format=torch.contiguous_format).eval()
    note = (f"{arch} trained on synthetic shapes ({count} images, {epochs} epochs, noise sigma "
            f"{SIGMA}): test accuracy {last['test_accuracy']:.3f}, under noise "
            f"{last['test_noise_accuracy']:.3f}")  # fmt: skip
    xs = test_split.x[: s["pool"]].float().div(255.0).to(device)
    return model, xs, note


def block_counts(
    model: nn.Module, xs, s: dict, precision: str = "fp32", block: int | None = None,
    batch: int | None = None,
) -> torch.Tensor:  # fmt: skip
    """CERTIFY's counts [B, 2, K] for xs (image i has idx i) from ``Smooth.sample_counts``,
    ``block`` images per call (None: all at once), sizes from ``s``."""
    smooth = Smooth(model, K, SIGMA, s["chunk"], SEED, precision)
    streams = (("selection", s["n0"]), ("estimation", s["n"]))
    step = block or len(xs)
    batch = batch or s["batch"]
    parts = [
        smooth.sample_counts(xs[i : i + step], range(i, min(i + step, len(xs))), streams, batch)
        for i in range(0, len(xs), step)
    ]
    return torch.cat(parts)


def bench_pag(model: nn.Module, xs, s: dict, device, repeats: int) -> dict:
    """Noisy gradient evaluations/s of SmoothedScorer + generate_pag: B images x m draws x steps
    per run, each a forward and an input-gradient backward pass (fresh noise every step)."""
    from robust.pag import SmoothedScorer, generate_pag

    b, m, steps = s["pag"]
    x0 = xs.repeat((b + len(xs) - 1) // len(xs), 1, 1, 1)[:b]
    target = torch.arange(b, device=device) % K
    figures = {}
    for precision in ("fp32", "bf16"):
        net = model
        if device.type == "cuda":
            net = copy.deepcopy(model).to(memory_format=torch.channels_last)
        scorer = SmoothedScorer(net, SIGMA, m, False, torch.Generator(device).manual_seed(SEED))

        def run(k: int, precision: str = precision, scorer=scorer) -> None:
            with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                generate_pag(scorer, x0, target, eps=10.0, steps=k, step_size=1.0)

        run(1)  # warm-up
        times, _ = repeat(lambda run=run: run(steps), repeats, device)
        figures[f"pag_{precision}"] = spread(
            [b * m * steps / t for t in times], "noisy gradient evaluations/s",
            images=b, m=m, steps=steps, channels_last=device.type == "cuda",
        )  # fmt: skip
    return figures


class _Split:
    """The part of a data split that ``robust.training.train`` uses: ``tensors()``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.labels, self.num_classes = x, y, y, K

    def __len__(self) -> int:
        return len(self.y)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def bench_train(s: dict, device, repeats: int) -> dict:
    """Images/s of one Gaussian-noise training epoch on random uint8 images (one warm-up epoch)."""
    from robust.training import TrainConfig, make_perturbation, train

    fast = {"bf16": True, "channels_last": True} if device.type == "cuda" else {}
    figures = {}
    for arch, count, batch in s["train"]:
        gen = torch.Generator().manual_seed(SEED)
        x = torch.randint(0, 256, (count, 3, 32, 32), generator=gen, dtype=torch.uint8)
        split = _Split(x, torch.randint(0, K, (count,), generator=gen))
        try:
            rates = []
            warmup = int(device.type == "cuda")  # cuDNN autotuning; nothing to warm on the CPU
            for rep in range(repeats + warmup):
                model = fresh_model(arch, device)
                config = TrainConfig(epochs=1, batch_size=batch, lr=0.05, seed=rep, **fast)
                history = train(model, split, split, make_perturbation("gaussian", sigma=SIGMA),
                                config, eval_size=batch)  # fmt: skip
                rates.append(count / history[0]["seconds"])
            figures[f"train_{arch}"] = spread(
                rates[warmup:], "images/s", images=count, batch=batch, note="seconds include one "
                "evaluation batch", **fast,
            )  # fmt: skip
        except Exception as err:  # training.py is another helper's: report, keep the other figures
            print(f"train_{arch}: {type(err).__name__}: {err}", file=sys.stderr)
            figures[f"train_{arch}"] = {"error": f"{type(err).__name__}: {err}"}
    return figures


def _time_tool(
    cmd: list[str], cwd: Path, repeats: int
) -> tuple[list[float], list[tuple[int, str]]]:
    """Wall seconds of ``repeats`` runs of ``cmd`` (this venv's tool first) and each run's
    (exit status, stdout + stderr)."""
    exe = Path(sys.executable).parent / cmd[0]
    exe = str(exe) if exe.exists() else shutil.which(cmd[0])
    if exe is None:
        raise FileNotFoundError(f"{cmd[0]} not installed")
    times, runs = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([exe, *cmd[1:]], cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        runs.append((done.returncode, done.stdout + done.stderr))
    return times, runs


# (figure, command, text every output must contain: proof that the run had nothing to do)
NOOPS = (
    ("pipeline_snakemake_noop", ["snakemake", "--cores", "1"], "Nothing to be done"),
    ("pipeline_dvc_repro_noop", ["dvc", "repro"], "up to date"),
)


def tool_versions() -> dict:
    """Versions of the pipeline tools (None where not installed), and whether ruamel.yaml, which
    DVC parses its YAML files with, has its C parser."""
    from importlib import metadata

    found = {}
    for name in ("snakemake", "dvc", "ruamel.yaml"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        from ruamel.yaml import YAML

        found["ruamel_c_parser"] = YAML(typ="safe").Parser.__name__ == "CParser"
    except ImportError:
        found["ruamel_c_parser"] = None
    return found


# The baseline of the no-op figures: the tools' own cost, on a one-rule workflow and a one-stage
# DVC project with nothing to do.
FLOOR_SNAKEFILE = 'rule a:\n    output:\n        "a.txt",\n    shell:\n        "touch {output}"\n'


def build_floor(folder: Path) -> Path:
    """``folder`` holding a one-rule Snakemake workflow and a one-stage DVC project (no git), both
    built, so that ``snakemake`` and ``dvc repro`` there have nothing to do."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(FLOOR_SNAKEFILE)
    for cmd in (["snakemake", "--cores", "1"], ["dvc", "init", "--no-scm", "-q"],
                ["dvc", "stage", "add", "-n", "b", "-o", "b.txt", "touch b.txt"],
                ["dvc", "repro"]):  # fmt: skip
        _, [(code, out)] = _time_tool(cmd, folder, 1)
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {folder}: exit {code}: {out[-300:]}")
    return folder


def _noops(places: dict[str, Path], repeats: int) -> dict[str, dict]:
    """The no-op figures in each of ``places`` (label -> folder), their runs interleaved so that a
    slower spell of the machine affects all alike."""
    times = {(label, name): [] for label in places for name, _, _ in NOOPS}
    errors = {}
    for _ in range(repeats):
        for name, cmd, proof in NOOPS:
            for label, where in places.items():
                [took], [(code, out)] = _time_tool(cmd, where, 1)
                times[label, name].append(took)
                if code != 0 or proof not in out:
                    errors[label, name] = f"not a no-op in {where}: exit {code}: {out[-300:]}"
    commands = {name: " ".join(cmd) for name, cmd, _ in NOOPS}
    return {
        (label, name): {"error": errors[label, name]}
        if (label, name) in errors
        else spread(runs, "s", command=commands[name], repo=label)
        for (label, name), runs in times.items()
    }


def bench_pipeline(root: Path, repeats: int, skip: bool = False, built: Path | None = None) -> dict:
    """Wall seconds of ``snakemake -n`` and ``dvc status`` in the repository and, with ``built``
    (a copy built by both tools), of ``snakemake`` and ``dvc repro`` with nothing to do there and,
    as their baseline, in a one-rule workflow and a one-stage DVC project (``*_floor``)."""
    figures = {}
    for name, cmd in (("pipeline_snakemake_dry_run", ["snakemake", "-n"]),
                      ("pipeline_dvc_status", ["dvc", "status"])):  # fmt: skip
        if skip:
            figures[name] = {"skipped": "quick mode"}
            continue
        try:
            times, runs = _time_tool(cmd, root, repeats)
        except FileNotFoundError as err:
            figures[name] = {"skipped": str(err)}
            continue
        codes = sorted({code for code, _ in runs})
        figures[name] = spread(times, "s", command=" ".join(cmd), returncodes=codes)
    if built is None:
        return figures
    with tempfile.TemporaryDirectory() as tmp:
        places = {"one rule, one stage": build_floor(Path(tmp)), "--pipeline_repo": built}
        measured = _noops(places, repeats)
    for name, _, _ in NOOPS:
        figure, floor = measured["--pipeline_repo", name], measured["one rule, one stage", name]
        if "median" in figure and "median" in floor:
            figure["floor"] = floor["median"]
            figure["over_floor"] = figure["median"] - floor["median"]
        figures[name.replace("_noop", "_floor")], figures[name] = floor, figure
    return figures
