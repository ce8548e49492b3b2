"""End-to-end test of scripts/pag_metrics.py and scripts/fig_pag_metrics.py on hand-made inputs.

Two PAG columns on the same 6 pairs: "std" (two training runs, "std" and "std-s1", joined by '+')
adds white noise to x0 (grainy, unaligned) and "smooth" moves x0 straight toward the target's
prototype (aligned), so every ground-truth and structure metric has a known winner. Three tiny
judges, one per kind, are saved as real checkpoints.
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
from robust.io import sealed, torch_save
from robust.models import build_model

ROOT = Path(__file__).resolve().parents[1]
EPS = [1.0, 2.0]
N_PAIRS = 6
JUDGES = {"judge-std": "standard", "judge-adv": "adversarial", "judge-noise": "gaussian"}
ROLES = ("standard", "adversarial", "noise")


def pag_record(column: str, model_id: str, kind: str, sigma: float, x0, targets, images) -> dict:
    return {
        "column": column, "model_id": model_id, "kind": kind, "train_sigma": sigma,
        "arch": "tiny_cnn", "train_seed": 1,
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
    torch_save(sealed({"dataset": "synthetic", "x_train": x_train, "y_train": y_train,
                "x_test": x_test, "y_test": y_test, "class_names": list(synthetic.CLASS_NAMES),
                "prototypes": protos, "meta": {"seed": 0}}), root / "synthetic.pt")  # fmt: skip
    others = {"judge-std2": "standard", "m-std": "standard", "m-gauss": "gaussian"}
    for seed, (judge, kind) in enumerate((JUDGES | others).items()):
        model = build_model("tiny_cnn", "synthetic", seed=seed)
        params = {"seed": seed + 1, "kind": kind}
        save_checkpoint(root / "models" / f"{judge}.pt", model, model_id=judge, arch="tiny_cnn",
                        dataset="synthetic", params=params)  # fmt: skip
    x0 = x_test.float() / 255
    targets = (y_test + 1) % 10
    direction = protos.float()[targets] / 255 - x0
    for run, seed in (("std", 0), ("std-s1", 1)):
        noise = torch.randn((len(EPS), *x0.shape), generator=torch.Generator().manual_seed(seed))
        unit = noise / noise.flatten(2).norm(dim=2).view(len(EPS), -1, 1, 1, 1)
        grainy = torch.stack([(x0 + 0.02 * eps * unit[e]).clamp(0, 1) for e, eps in enumerate(EPS)])
        record = pag_record(run, f"m-{run}", "standard", 0.0, x0, targets, grainy)  # rare clamping
        torch_save(record, root / "pag" / f"{run}.pt")
    aligned = torch.stack([x0 + 0.1 * eps * direction for eps in EPS])
    torch_save(pag_record("smooth", "m-gauss", "gaussian", 0.5, x0, targets, aligned),
               root / "pag" / "smooth.pt")  # fmt: skip
    return root


def argv(root: Path, out: str, judges=tuple(JUDGES), reference="prototypes"):
    return [
        "--columns", "std+std-s1", "smooth", "--judges", *judges, "--batch", "4",
        "--cutoff", "0.5", "--bootstrap", "200", "--seed", "0", "--reference", reference,
        "--pag_dir", str(root / "pag"), "--models_dir", str(root / "models"),
        "--data", str(root / "synthetic.pt"), "--out", str(root / out / "m.json"),
        "--per_image", str(root / out / "m.tsv"), "--table", str(root / out / "m.tex"),
        "--summary_dir", str(root / out / "summary"),
        "--log", str(root / out / "m.log"), "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(workdir: Path) -> Path:
    assert load_script("pag_metrics").main(argv(workdir, "a")) == 0
    return workdir / "a"


def test_json_ranks_the_aligned_column_first(run: Path):
    summary = json.loads((run / "m.json").read_text())
    assert summary["settings"]["columns"] == ["std+std-s1", "smooth"]  # JSON keys are sorted
    assert summary["settings"]["runs"] == {"std+std-s1": ["std", "std-s1"], "smooth": ["smooth"]}
    top = {c: summary["columns"][c]["eps"]["2.0"] for c in ("std+std-s1", "smooth")}
    std, smooth = top["std+std-s1"], top["smooth"]
    assert smooth["cosine"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert abs(std["cosine"]["mean"]) < 0.15
    assert smooth["ref_corr"]["low"] > 0
    assert smooth["hf_share"]["mean"] < std["hf_share"]["mean"]
    assert smooth["tv_per_norm"]["mean"] < std["tv_per_norm"]["mean"]
    random = summary["controls"]["random"]["eps"]["2.0"]
    assert std["hf_share"]["mean"] == pytest.approx(random["hf_share"]["mean"], abs=0.05)
    assert summary["controls"]["reference"]["eps"]["2.0"]["cosine"]["mean"] == pytest.approx(1.0)
    for stat in std.values():
        assert stat["low"] <= stat["mean"] <= stat["high"] and stat["seed_sd"] >= 0
    assert all(stat["seed_sd"] is None for stat in smooth.values())  # one training run
    for role in ROLES:
        assert 0 <= std[f"judge_{role}_share"]["mean"] <= 1
    paired = summary["paired"]
    assert paired["baseline"] == "std+std-s1" and paired["eps"] == 2.0
    assert paired["correction"] == "Holm"
    cosine = paired["columns"]["smooth"]["cosine"]
    assert cosine["low"] > 0.5 and cosine["p"] <= cosine["p_holm"] and cosine["holds"]
    assert summary["columns"]["smooth"]["title"] == r"Smoothed ($\sigma$=0.5)"
    assert summary["judges"]["adversarial"]["model_id"] == "judge-adv"
    assert summary["judges"]["adversarial"]["seed"] == 2
    # the judges here are tiny_cnn like the columns, and judge-std has their seed 1: both reported
    assert summary["settings"]["judges_apart"] == {"architecture": False, "seed": False}


def test_judges_and_references_are_compared_by_the_order_of_the_columns(run: Path):
    summary = json.loads((run / "m.json").read_text())
    pairs = [tuple(a["metrics"]) for a in summary["judge_agreement"]]
    assert ("judge_standard_share", "judge_adversarial_share") in pairs
    assert len(pairs) == 6  # 3 judge pairs x (share, probability)
    for agreement in summary["judge_agreement"] + summary["reference_agreement"]:
        tau = agreement["kendall_tau"]
        assert tau is None or -1 <= tau <= 1
        assert agreement["same_order"] == (tau == 1.0)
    by_metric = {a["metrics"][0]: a for a in summary["reference_agreement"]}
    assert by_metric["cosine"]["metrics"] == ["cosine", "cosine_class_means"]
    cosine = by_metric["cosine"]  # aligned beats grainy under both references, clearly
    assert cosine["same_order"] and cosine["resolved_pairs"] == 1 and cosine["resolved_same_order"]


def test_summary_is_the_target_share_per_judge(run: Path):
    summary = json.loads((run / "m.json").read_text())
    for column, name in (("std+std-s1", "std"), ("smooth", "smooth")):
        shares = json.loads((run / "summary" / f"{name}.json").read_text())
        top = summary["columns"][column]["eps"]["2.0"]
        short = {"standard": "std", "adversarial": "adv", "noise": "noise"}
        assert shares == {short[r]: round(top[f"judge_{r}_share"]["mean"], 3) for r in ROLES}


def test_tsv_has_one_row_per_column_run_eps_and_pair(run: Path):
    with (run / "m.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == (3 + 2) * len(EPS) * N_PAIRS  # 3 runs and 2 controls
    assert {"column", "run", "eps", "pair", "idx", "target", "cosine", "judge_noise_prob"} <= set(
        rows[0]
    )
    smooth = [r for r in rows if r["column"] == "smooth" and r["eps"] == "2.0"]
    assert all(float(r["cosine"]) == pytest.approx(1.0, abs=1e-5) for r in smooth)
    assert {r["run"] for r in rows if r["column"] == "std+std-s1"} == {"std", "std-s1"}


def test_table_shows_intervals_spread_controls_and_holm(run: Path):
    tex = (run / "m.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    smooth, std = rows[r"Smoothed ($\sigma$=0.5)"], rows["Standard"]
    assert smooth.count(r"\textbf") >= 4  # cosine, reference correlation, HF share, TV per norm
    assert r"\textbf{1.00} {\scriptsize[1.00, 1.00]}$^\dagger$" in smooth
    assert r"{\scriptsize$\pm$" in std and r"\pm" not in smooth  # seed spread of 2 runs only
    assert "random direction (control)" in rows and "step to $r_t$ (control)" in rows
    assert "$p_t$" not in tex  # judge probabilities: JSON and TSV only
    assert not std.split(" & ")[4].startswith(r"\textbf")  # std has the worse cosine


def test_outputs_are_deterministic_and_class_means_work(workdir: Path, run: Path):
    script = load_script("pag_metrics")
    assert script.main(argv(workdir, "b")) == 0
    for name in ("m.json", "m.tsv", "m.tex"):
        assert (workdir / "b" / name).read_bytes() == (run / name).read_bytes(), name
    assert script.main(argv(workdir, "c", reference="class_means")) == 0
    summary = json.loads((workdir / "c" / "m.json").read_text())
    assert summary["settings"]["reference"] == "class_means"


def test_a_judge_equal_to_a_column_model_is_a_one_line_error(workdir: Path, capsys):
    script = load_script("pag_metrics")
    code = script.main(argv(workdir, "d", judges=("judge-std", "judge-adv", "m-gauss")))
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert [line for line in err if line.startswith("error:")] == [
        (
            "error: judge 'm-gauss' is the model under test of column 'smooth'; "
            "a judge must be trained apart from the models it scores"
        )
    ]
    assert not (workdir / "d" / "m.json").exists()


def test_two_judges_of_one_kind_are_a_one_line_error(workdir: Path, capsys):
    code = load_script("pag_metrics").main(argv(workdir, "g", judges=("judge-std", "judge-std2")))
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and "share a kind" in err[0]


def test_missing_judge_checkpoint_is_a_one_line_error(workdir: Path, capsys):
    code = load_script("pag_metrics").main(argv(workdir, "e", judges=("judge-std", "nope")))
    assert code == 2
    assert "error: checkpoint not found" in capsys.readouterr().err


def test_runs_of_a_column_must_share_their_pairs(workdir: Path, capsys):
    record = torch.load(workdir / "pag" / "std.pt", weights_only=False)
    record["targets"] = (record["targets"] + 1) % 10
    torch_save(record, workdir / "pag" / "other.pt")
    args = argv(workdir, "h")
    args[args.index("std+std-s1")] = "std+other"
    code = load_script("pag_metrics").main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert "error: PAG column other differs from the first one in its pairs or eps" in err
    assert not (workdir / "h" / "m.json").exists()


def test_figure_is_written_deterministically(workdir: Path, run: Path):
    fig = load_script("fig_pag_metrics")
    for out in ("f1", "f2"):
        args = ["--metrics", str(run / "m.json"), "--out", str(workdir / out / "pag_metrics"),
                "--log", str(workdir / out / "fig.log")]  # fmt: skip
        assert fig.main(args) == 0
    for suffix in (".pdf", ".png"):
        first = (workdir / "f1" / f"pag_metrics{suffix}").read_bytes()
        assert first == (workdir / "f2" / f"pag_metrics{suffix}").read_bytes()
