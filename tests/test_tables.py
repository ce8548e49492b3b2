"""Tests for scripts/make_tables.py and scripts/make_numbers.py against hand-made result files.

``make_results`` writes a small, hand-checked set of result files (certify TSV/JSON, eval and
train JSON, PAG .pt, a reference TSV); the figure and paper tests reuse it. The expected .tex
outputs below were worked out by hand from those files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = ["g025", "g050", "g050-t025"]
RADII = ["0.0", "0.25", "0.5"]
MODELS = ["std", "at-050", "g025", "g050"]
COLUMNS = ["std", "at-050", "smooth-050", "base-050"]

# (radius, correct) per image; certified accuracy at r = 0, 0.25, 0.5 in the comments.
CERTIFY = {
    "g025": (0.25, 0.25, [(0.6, 1), (0.3, 1), (0.1, 1), (0.0, 0)]),  # 0.75 0.50 0.25
    "g050": (0.5, 0.5, [(1.2, 1), (0.2, 1), (0.1, 0), (0.9, 0)]),  # 0.50 0.25 0.25
    "g050-t025": (0.5, 0.25, [(0.3, 1), (0.0, 0), (0.0, 0), (0.1, 1)]),  # 0.50 0.25 0.00
}
REFERENCE = (
    "sigma\t0.0\t0.25\t0.5\t0.75\tabstain\n"
    "0.12\t0.81\t0.59\t0.00\t0.00\t0.038\n"
    "0.25\t0.75\t0.40\t0.43\t0.27\t0.086\n"
    "0.5\t0.65\t0.55\t0.21\t0.32\t0.166\n"
)
# model: (kind, train_sigma, train_eps, clean, {eps: robust accuracy})
EVAL = {
    "std": ("standard", 0.0, 0.0, 0.9512, {"0.25": 0.0866, "0.5": 0.0028, "1.0": 0.0}),
    "at-050": ("adversarial", 0.0, 0.5, 0.9083, {"0.25": 0.8234, "0.5": 0.7017, "1.0": 0.4047}),
    "g025": ("gaussian", 0.25, 0.0, 0.77, {"0.25": 0.31, "0.5": 0.05, "1.0": 0.0}),
    "g050": ("gaussian", 0.5, 0.0, 0.66, {"0.25": 0.42, "0.5": 0.2}),
}
# column: (model, kind, train_sigma, train_eps, sigma, target_prob [E=2][P=3] at eps 1.0 and 2.0)
PAG = {
    "std": ("std", "standard", 0.0, 0.0, 0.0, [[0.5, 0.6, 0.7], [0.9, 0.9, 0.9]]),
    "at-050": ("at-050", "adversarial", 0.0, 0.5, 0.0, [[0.2, 0.3, 0.4], [0.7, 0.8, 0.6]]),
    "smooth-050": ("g050", "gaussian", 0.5, 0.0, 0.5, [[0.1, 0.2, 0.3], [0.5, 0.4, 0.3]]),
    "base-050": ("g050", "gaussian", 0.5, 0.0, 0.0, [[0.3, 0.3, 0.3], [0.6, 0.6, 0.6]]),
}


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")


def make_results(root: Path) -> Path:
    """Write the hand-made result files under root/results and the reference TSV; returns root."""
    for i, (run, (sigma, train_sigma, rows)) in enumerate(CERTIFY.items()):
        lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
        for k, (radius, correct) in enumerate(rows):
            predict = -1 if radius == 0.0 and not correct else (k % 4 if correct else (k + 1) % 4)
            lines.append(f"{20 * k}\t{k % 4}\t{predict}\t{radius:.3}\t{correct}\t0:00:01.000000")
        (root / "results/certify").mkdir(parents=True, exist_ok=True)
        (root / f"results/certify/{run}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_json(root / f"results/certify/{run}.json", {
            "run_id": run, "model_id": run, "sigma": sigma, "train_sigma": train_sigma, "n0": 100,
            "n": 100000, "alpha": 0.001, "n_images": 4, "clean_accuracy": 0.5,
            "abstain_rate": [0.25, 0.25, 0.5][i], "average_certified_radius": 0.2,
            "seconds_per_image": [2.0, 3.0, 4.0][i],
        })  # fmt: skip
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config/reference.tsv").write_text(REFERENCE, encoding="utf-8")
    for model, (kind, train_sigma, train_eps, clean, robust) in EVAL.items():
        write_json(root / f"results/eval/{model}.json", {
            "model_id": model, "arch": "tiny_cnn", "kind": kind, "train_sigma": train_sigma,
            "train_eps": train_eps, "n_images": 100, "norm": "l2", "steps": 20,
            "clean_accuracy": clean, "robust_accuracy": robust,
        })  # fmt: skip
        params = {"kind": kind, "sigma": train_sigma, "eps": train_eps, "epochs": 2,
                  "batch_size": 8, "lr": 0.1, "eval_sigma": train_sigma,
                  "attack_steps": 7 if kind == "adversarial" else 0,
                  "attack_step_size": 0.1 if kind == "adversarial" else 0.0}  # fmt: skip
        epochs = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": 0.3 * e, "test_accuracy": 0.25 * e,
                   "test_noise_accuracy": 0.2 * e, "lr": 0.1, "seconds": 1.0} for e in (1, 2)]  # fmt: skip
        write_json(root / f"results/train/{model}.json", {
            "model_id": model, "arch": "tiny_cnn", "dataset": "synthetic", "kind": kind,
            "params": params, "epochs": epochs, "final": epochs[-1], "seconds": 2.0,
        })  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 8, 8, generator=gen)
    for column, (model, kind, train_sigma, train_eps, sigma, prob) in PAG.items():
        images = (x0 + 0.3 * torch.rand(2, 3, 3, 8, 8, generator=gen)).clamp(0, 1)
        (root / "results/pag").mkdir(parents=True, exist_ok=True)
        torch.save({
            "column": column, "model_id": model, "kind": kind, "train_sigma": train_sigma,
            "train_eps": train_eps, "sigma": sigma, "m": 4 if sigma > 0 else 0,
            "fixed_noise": False, "steps": 5, "step_factor": 2.5, "eps": [1.0, 2.0],
            "idx": torch.tensor([0, 100, 200]), "labels": torch.tensor([0, 1, 2]),
            "targets": torch.tensor([1, 3, 0]), "class_names": ["cat", "dog", "ship", "frog"],
            "x0": x0, "images": images, "target_prob": torch.tensor(prob),
        }, root / f"results/pag/{column}.pt")  # fmt: skip
    return root


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run scripts/<name> as the pipeline does (a fresh interpreter, cwd = project root)."""
    cmd = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def tables_args(out_dir: str = "paper/tables") -> list[str]:
    return [
        "--runs", *RUNS, "--radii", *RADII, "--reference", "config/reference.tsv",
        "--models", *MODELS, "--certify_dir", "results/certify", "--eval_dir", "results/eval",
        "--out_dir", out_dir,
    ]  # fmt: skip


def numbers_args() -> list[str]:
    return [
        "--runs", *RUNS, "--radii", *RADII, "--reference", "config/reference.tsv",
        "--models", *MODELS, "--columns", *COLUMNS, "--certify_dir", "results/certify",
        "--eval_dir", "results/eval", "--train_dir", "results/train", "--pag_dir", "results/pag",
        "--out", "paper/generated/numbers.tex",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("tables"))
