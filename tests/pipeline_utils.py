"""Helpers for the tests that drive the real tools (git, Snakemake, DVC) on a temporary copy of the
repo."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """The environment of the pipeline tools: this interpreter's venv first on PATH, no
    analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    # Snakemake gives each job OMP_NUM_THREADS = its threads (1); DVC runs stages with the
    # environment's. CPU results can depend on the thread count, so both tools get one thread for
    # byte-identical runs.
    env["OMP_NUM_THREADS"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.org")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.org")
    return env


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; on failure the assertion shows its output. ``env``:
    variables set on top of :func:`tool_env`."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=tool_env() | (env or {}), capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
            f"\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def tracked_files() -> list[str]:
    """Files of the working tree that git would commit (tracked, or untracked and not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def copy_repo(dest: Path, params: Path | None = ROOT / "config" / "smoke.yaml") -> Path:
    """Copy the repository into ``dest`` as a fresh git repo whose params.yaml is ``params`` and
    whose dvc.yaml lists follow it (robust.deps.REFRESH, as the README says to do)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    if params is not None:
        shutil.copy2(params, dest / "params.yaml")
        run([str(BIN / "python"), "-m", "robust.deps", "params.yaml", "dvc.yaml"], dest)
    remote = dest.parent / f"{dest.name}-remote"
    run(["git", "init", "-q"], dest)
    run(["dvc", "remote", "modify", "local", "url", str(remote)], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    return dest


def workspace(build: Path, dest: Path) -> Path:
    """A copy of a shared build at ``dest`` to run the tools in (timestamps kept, so both tools see
    it as built), with its own local DVC remote beside it, committed."""
    shutil.copytree(build, dest, symlinks=True)
    run(["dvc", "remote", "modify", "local", "url", str(dest.parent / f"{dest.name}-remote")], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "workspace", "--allow-empty"], dest)
    return dest


# The pipeline's outputs: what two builds must agree on byte for byte.
OUTPUT_FOLDERS = ("results", "resources/data", "paper/figures", "paper/tables", "paper/generated")


def digests(repo: Path) -> dict[str, str]:
    """md5 of every file under the output folders of ``repo``, keyed by its relative path."""
    return {
        str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
        for folder in OUTPUT_FOLDERS
        for p in (repo / folder).rglob("*")
        if p.is_file()
    }


def edit_params(repo: Path, path: list[str], value) -> None:
    """Set one key of params.yaml (nested keys as a list) and write the file back."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def snakemake_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a Snakemake (dry) run."""
    counts: dict[str, int] = {}
    table = output.split("Job stats:", 1)
    if len(table) < 2:
        return counts
    for line in table[1].splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def dvc_ran_stages(output: str) -> list[str]:
    """Stages DVC ran (or would run, with --dry) from 'Running stage' lines."""
    return re.findall(r"Running stage '([^']+)'", output)


def dvc_commands(output: str) -> list[str]:
    """Commands printed by ``dvc repro`` (lines starting with '> ')."""
    return [line[2:].strip() for line in output.splitlines() if line.startswith("> ")]


def snakemake_commands(output: str) -> list[str]:
    """Shell commands printed by ``snakemake -n -p`` ("Shell command: ..." lines; rule all has
    None)."""
    commands = []
    for line in output.splitlines():
        if line.startswith("Shell command:"):
            command = line.split(":", 1)[1].strip()
            if command != "None":
                commands.append(command)
    return commands


def load_script(name: str):
    """Import scripts/<name>(.py) as a module: stage scripts run in-process, without a fresh
    interpreter per call (nothing runs on import)."""
    import importlib.util

    name = name.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def argv_of(values: dict) -> list[str]:
    """Flags as the pipeline renders them: true -> --k, false -> --no-k, else --k value."""
    argv: list[str] = []
    for key, value in values.items():
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no-{key}")
        else:
            argv += [f"--{key}", str(value)]
    return argv


# A small noise-trained tiny_cnn on the synthetic set: the flags of scripts/train.py.
TRAIN_FLAGS = {
    "model_id": "m", "dataset": "synthetic", "arch": "tiny_cnn", "kind": "gaussian",
    "sigma": 0.25, "norm": "l2", "eps": 0.0, "attack_steps": 0, "attack_step_size": 0.0,
    "epochs": 3, "batch_size": 100, "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0005,
    "schedule": "onecycle", "lr_step": 1, "lr_gamma": 0.1, "warmup_epochs": 1,
    "label_smoothing": 0.0, "augment": True, "eval_sigma": 0.25, "eval_size": 60, "seed": 0,
    "bf16": False, "channels_last": False,
}  # fmt: skip

# A short CERTIFY run: the flags of scripts/certify.py; predict takes all but CERTIFY_ONLY.
SMOOTHING_FLAGS = {
    "run_id": "r", "model": "m", "dataset": "synthetic", "sigma": 0.25, "n0": 20, "n": 400,
    "alpha": 0.001, "batch": 150, "chunk": 100, "skip": 3, "max_images": 20, "seed": 0,
    "precision": "fp32", "block": 2, "channels_last": False, "compile": "none",
}  # fmt: skip
CERTIFY_ONLY = ("n0", "precision", "block", "channels_last", "compile", "curve")


def train_argv(data: Path, out: Path, **values) -> list[str]:
    """scripts/train.py arguments: TRAIN_FLAGS with ``values`` replacing some, outputs in out."""
    paths = {
        "data": data, "out": out / "model.pt", "metrics": out / "train.json",
        "state": out / "state" / "train.pt", "log": out / "train.log",
    }  # fmt: skip
    return argv_of({**TRAIN_FLAGS, **paths, "device": "cpu", "record_time": False, **values})


def certify_argv(
    checkpoint: Path, data: Path, out: Path, predict: bool = False, **values
) -> list[str]:
    """scripts/certify.py (or, with ``predict``, scripts/predict.py) arguments: SMOOTHING_FLAGS
    with ``values`` replacing some, outputs in out."""
    paths = {
        "curve": out / "curve.tsv", "checkpoint": checkpoint, "data": data,
        "out": out / "cert.tsv", "summary": out / "cert.json",
        "state": out / "state" / "cert.tsv", "log": out / "cert.log",
    }  # fmt: skip
    flags = {**SMOOTHING_FLAGS, **paths, "device": "cpu", "record_time": False, **values}
    if predict:
        flags = {k: v for k, v in flags.items() if k not in CERTIFY_ONLY}
    return argv_of(flags)


def fake_gpus(folder: Path, count: int) -> dict[str, str]:
    """The environment of a machine with ``count`` GPUs as Snakemake sees them: a fake
    `nvidia-smi -L` first on PATH (the jobs themselves still run on the CPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"GPU {i}: Fake GPU (UUID: GPU-{i})\\n" for i in range(count))
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    script.chmod(0o755)
    env = tool_env()
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return {"PATH": f"{folder}{os.pathsep}{env['PATH']}"}
