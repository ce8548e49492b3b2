"""End-to-end test of scripts/pag_metrics.py and scripts/fig_pag_metrics.py on hand-made inputs.

Two PAG columns on the same 6 pairs: "std" adds white noise to x0 (grainy, unaligned) and "smooth"
moves x0 straight toward the target's prototype (aligned), so every ground-truth and structure
metric has a known winner. Two tiny judges are saved as real checkpoints.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from pipeline_utils import load_script
from robust import synthetic
from robust.checkpoint import save_checkpoint
from robust.io import torch_save
from robust.models import build_model

ROOT = Path(__file__).resolve().parents[1]
EPS = [1.0, 2.0]
N_PAIRS = 6


def pag_record(column: str, model_id: str, kind: str, sigma: float, x0, targets, images) -> dict:
    return {
        "column": column, "model_id": model_id, "kind": kind, "train_sigma": sigma,
        "train_eps": 0.0, "sigma": sigma, "m": 4, "fixed_noise": False, "steps": 3,
        "step_factor": 2.5, "eps": EPS, "idx": torch.arange(N_PAIRS, dtype=torch.long),
        "labels": torch.zeros(N_PAIRS, dtype=torch.long), "targets": targets,
        "class_names": list(synthetic.CLASS_NAMES), "x0": x0, "images": images,
        "target_prob": torch.full((len(EPS), N_PAIRS), 0.5),
    }  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pag_metrics")
    x_train, y_train = synthetic.generate(40, seed=0, split="train")
    x_test, y_test = synthetic.generate(N_PAIRS, seed=0, split="test")
    protos = synthetic.prototypes()
    torch_save({"dataset": "synthetic", "x_train": x_train, "y_train": y_train,
                "x_test": x_test, "y_test": y_test, "class_names": list(synthetic.CLASS_NAMES),
                "prototypes": protos, "meta": {"seed": 0}}, root / "synthetic.pt")  # fmt: skip
    for seed, judge in enumerate(("judge-std", "judge-rob")):
        model = build_model("tiny_cnn", "synthetic", seed=seed)
        params = {"seed": seed + 1, "kind": "standard"}
        save_checkpoint(root / "models" / f"{judge}.pt", model, model_id=judge, arch="tiny_cnn",
                        dataset="synthetic", params=params)  # fmt: skip
    x0 = x_test.float() / 255
    targets = (y_test + 1) % 10
    direction = protos.float()[targets] / 255 - x0
    noise = torch.randn((len(EPS), *x0.shape), generator=torch.Generator().manual_seed(0))
    grainy, aligned = [], []
    for e, eps in enumerate(EPS):
        unit = noise[e] / noise[e].flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        grainy.append((x0 + 0.02 * eps * unit).clamp(0, 1))  # small: clamping stays rare
        aligned.append(x0 + 0.1 * eps * direction)
    torch_save(pag_record("std", "m-std", "standard", 0.0, x0, targets, torch.stack(grainy)),
               root / "pag" / "std.pt")  # fmt: skip
    torch_save(pag_record("smooth", "m-gauss", "gaussian", 0.5, x0, targets, torch.stack(aligned)),
               root / "pag" / "smooth.pt")  # fmt: skip
    return root


def argv(root: Path, out: str, judges=("judge-std", "judge-rob"), reference="prototypes"):
    return [
        "--columns", "std", "smooth", "--judges", *judges, "--judge_roles", "standard", "robust",
        "--cutoff", "0.5", "--bootstrap", "200", "--seed", "0", "--reference", reference,
        "--pag_dir", str(root / "pag"), "--models_dir", str(root / "models"),
        "--data", str(root / "synthetic.pt"), "--out", str(root / out / "m.json"),
        "--per_image", str(root / out / "m.tsv"), "--table", str(root / out / "m.tex"),
        "--log", str(root / out / "m.log"), "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(workdir: Path) -> Path:
    assert load_script("pag_metrics").main(argv(workdir, "a")) == 0
    return workdir / "a"


def test_json_ranks_the_aligned_column_first(run: Path):
    summary = json.loads((run / "m.json").read_text())
    assert summary["settings"]["columns"] == ["std", "smooth"]  # the JSON's keys are sorted
    top = {c: summary["columns"][c]["eps"]["2.0"] for c in ("std", "smooth")}
    assert top["smooth"]["cosine"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert abs(top["std"]["cosine"]["mean"]) < 0.15
    assert top["smooth"]["corr_gain"]["low"] > 0
    assert top["smooth"]["hf_share"]["mean"] < top["std"]["hf_share"]["mean"]
    assert top["smooth"]["tv_per_norm"]["mean"] < top["std"]["tv_per_norm"]["mean"]
    assert top["std"]["hf_share"]["mean"] == pytest.approx(
        summary["settings"]["white_noise"]["hf_share"], abs=0.05
    )
    for stat in top["std"].values():
        assert stat["low"] <= stat["mean"] <= stat["high"]
    for role in ("standard", "robust"):
        assert 0 <= top["std"][f"judge_{role}_share"]["mean"] <= 1
    assert summary["paired"]["baseline"] == "std" and summary["paired"]["eps"] == 2.0
    assert summary["paired"]["columns"]["smooth"]["cosine"]["low"] > 0.5
    assert summary["columns"]["smooth"]["title"] == r"Smoothed ($\sigma$=0.5)"
    assert summary["judges"]["robust"] == {"model_id": "judge-rob", "arch": "tiny_cnn", "seed": 2}


def test_tsv_has_one_row_per_column_eps_and_pair(run: Path):
    with (run / "m.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 2 * len(EPS) * N_PAIRS
    assert {"column", "eps", "pair", "idx", "target", "cosine", "judge_robust_prob"} <= set(rows[0])
    smooth = [r for r in rows if r["column"] == "smooth" and r["eps"] == "2.0"]
    assert all(float(r["cosine"]) == pytest.approx(1.0, abs=1e-5) for r in smooth)


def test_table_bolds_the_best_entry_per_metric(run: Path):
    tex = (run / "m.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    smooth, std = rows[r"Smoothed ($\sigma$=0.5)"], rows["Standard"]
    assert smooth.count(r"\textbf") >= 4  # cosine, correlation gain, HF share, TV per norm
    assert r"\textbf{1.00} {\scriptsize[1.00, 1.00]}" in smooth
    assert not std.split(" & ")[5].startswith(r"\textbf")  # std has the worse cosine


def test_outputs_are_deterministic_and_class_means_work(workdir: Path, run: Path):
    script = load_script("pag_metrics")
    assert script.main(argv(workdir, "b")) == 0
    for name in ("m.json", "m.tsv", "m.tex"):
        assert (workdir / "b" / name).read_bytes() == (run / name).read_bytes(), name
    assert script.main(argv(workdir, "c", reference="class_means")) == 0
    summary = json.loads((workdir / "c" / "m.json").read_text())
    assert summary["settings"]["reference"] == "class_means"


def test_a_judge_equal_to_a_column_model_is_a_one_line_error(workdir: Path, capsys):
    code = load_script("pag_metrics").main(argv(workdir, "d", judges=("judge-std", "m-gauss")))
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert [line for line in err if line.startswith("error:")] == [
        (
            "error: judge 'm-gauss' is the model under test of column 'smooth'; "
            "a judge must be trained independently of the models it scores"
        )
    ]
    assert not (workdir / "d" / "m.json").exists()


def test_missing_judge_checkpoint_is_a_one_line_error(workdir: Path, capsys):
    code = load_script("pag_metrics").main(argv(workdir, "e", judges=("judge-std", "nope")))
    assert code == 2
    assert "error: checkpoint not found" in capsys.readouterr().err


def test_figure_is_written_deterministically(workdir: Path, run: Path):
    fig = load_script("fig_pag_metrics")
    for out in ("f1", "f2"):
        args = ["--metrics", str(run / "m.json"), "--out", str(workdir / out / "pag_metrics"),
                "--log", str(workdir / out / "fig.log")]  # fmt: skip
        assert fig.main(args) == 0
    for suffix in (".pdf", ".png"):
        first = (workdir / "f1" / f"pag_metrics{suffix}").read_bytes()
        assert first == (workdir / "f2" / f"pag_metrics{suffix}").read_bytes()
