"""Tests for scripts/make_tables.py and scripts/make_numbers.py against hand-made result files.

``make_results`` writes a small, hand-checked set of result files (certify TSV/JSON, eval and
train JSON, PAG .pt, a reference TSV); the figure and paper tests reuse it. The expected .tex
outputs below were worked out by hand from those files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline_utils import load_script

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


def _paired(holds: bool) -> dict:
    return {"mean": 0.3 if holds else 0.1, "low": 0.1, "high": 0.5, "p": 0.001, "p_holm": 0.004,
            "holds": holds}  # fmt: skip


# A pag_metrics.json as scripts/pag_metrics.py writes it, the parts make_numbers reads: the smoothed
# column beats the standard one under the standard judge only, the adversarial one under both.
PAG_METRICS = {
    "settings": {"columns": ["std", "at-050", "smooth"],
                 "runs": {"std": ["std"], "at-050": ["at-050"], "smooth": ["smooth"]},
                 "judges_apart": {"architecture": False, "seed": True}},
    "judges": {"standard": {"arch": "tiny_cnn", "seed": 3, "kind": "standard"},
               "noise": {"arch": "tiny_cnn", "seed": 3, "kind": "gaussian", "sigma": 0.75}},
    "columns": {"std": {"title": "Standard"}, "at-050": {"title": r"Adv. trained ($\epsilon$=0.5)"},
                "smooth": {"title": r"Smoothed ($\sigma$=0.5)"}},
    "paired": {"baseline": "std", "columns": {
        "at-050": {m: _paired(True) for m in ("judge_standard_share", "judge_noise_share", "cosine",
                                              "ref_corr")},
        "smooth": {"judge_standard_share": _paired(True), "judge_noise_share": _paired(False),
                   "cosine": _paired(True), "ref_corr": _paired(True)}}},
    "judge_agreement": [{"metrics": ["judge_standard_share", "judge_noise_share"],
                         "kendall_tau": 1.0}],
}  # fmt: skip
EXPECTED_PAG_SENTENCES = {
    r"\PagJudges": r"a standard \texttt{tiny\_cnn} (seed 3) and a noise-trained \texttt{tiny\_cnn} "
    r"(seed 3; $\sigma = 0.75$)",
    r"\PagJudgesApart": "some share the architecture of a model under test",
    r"\PagHolmFamily": "8",
    r"\PagConclusions": r"Under every judge, the target share is higher for Adv. trained "
    r"($\epsilon$=0.5) than for the Standard column after Holm's correction, but not for Smoothed "
    r"($\sigma$=0.5). On both reference metrics, alignment is higher for Adv. trained "
    r"($\epsilon$=0.5) and Smoothed ($\sigma$=0.5) than for the Standard column after Holm's "
    "correction.",
    r"\PagJudgeAgreement": r"Kendall's $\tau$ between two judges' orderings of the columns by "
    "target share is 1.00 (standard and noise).",
    r"\PagReferenceAgreement": "",
}


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
        epochs = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": 0.3 * e,
                   "test_accuracy": 0.25 * e, "test_noise_accuracy": 0.2 * e, "lr": 0.1,
                   "seconds": 1.0} for e in (1, 2)]  # fmt: skip
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
    write_json(root / "results/metrics/pag_metrics.json", PAG_METRICS)
    return root


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run scripts/<name> as the pipeline does (a fresh interpreter, cwd = project root)."""
    cmd = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def call(name: str, args: list[str], cwd: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit code, stderr) of scripts/<name>'s main(args) run in-process with cwd as working dir."""
    capsys.readouterr()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        code = load_script(name).main(args)
    finally:
        os.chdir(old)
    return code, capsys.readouterr().err


def tables_args(out_dir: str = "paper/tables") -> list[str]:
    return [
        "--runs", *RUNS, "--radii", *RADII, "--reference", "config/reference.tsv",
        "--models", *MODELS, "--certify_dir", "results/certify", "--eval_dir", "results/eval",
        "--train_dir", "results/train", "--out_dir", out_dir, "--summary_dir", f"{out_dir}/summary",
    ]  # fmt: skip


def numbers_args() -> list[str]:
    return [
        "--runs", *RUNS, "--radii", *RADII, "--reference", "config/reference.tsv",
        "--models", *MODELS, "--columns", *COLUMNS, "--certify_dir", "results/certify",
        "--eval_dir", "results/eval", "--train_dir", "results/train", "--pag_dir", "results/pag",
        "--pag_metrics", "results/metrics/pag_metrics.json", "--out", "paper/generated/numbers.tex",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results(tmp_path_factory.mktemp("tables"))


EXPECTED_CERTIFIED = r"""\begin{tabular}{lccc}
\toprule
 & $r = 0$ & $r = 0.25$ & $r = 0.5$ \\
\midrule
\multicolumn{4}{l}{\emph{Ours}} \\
$\sigma = 0.25$ & \textbf{0.75} & \textbf{0.50} & \textbf{0.25} \\
$\sigma = 0.5$ & 0.50 & 0.25 & \textbf{0.25} \\
$\sigma = 0.5$ (train 0.25) & 0.50 & 0.25 & 0.00 \\
\midrule
\multicolumn{4}{l}{\emph{Cohen et al. (2019)}} \\
$\sigma = 0.25$ & \textbf{0.75} & 0.40 & \textbf{0.43} \\
$\sigma = 0.5$ & 0.65 & \textbf{0.55} & 0.21 \\
$\sigma = 0.5$ (train 0.25) & -- & -- & -- \\
\midrule
\multicolumn{4}{l}{\emph{Ours $-$ Cohen et al.}} \\
$\sigma = 0.25$ & $0.00$ & $+0.10$ & $-0.18$ \\
$\sigma = 0.5$ & $-0.15$ & $-0.30$ & $+0.04$ \\
$\sigma = 0.5$ (train 0.25) & -- & -- & -- \\
\bottomrule
\end{tabular}
"""

EXPECTED_ACCURACY = r"""\begin{tabular}{llcccc}
\toprule
 &  &  & \multicolumn{3}{c}{PGD ($\ell_2$) accuracy (\%)} \\
\cmidrule(lr){4-6}
Model & Training & Clean (\%) & $\epsilon = 0.25$ & $\epsilon = 0.5$ & $\epsilon = 1$ \\
\midrule
\texttt{std} & standard & \textbf{95.1} & 8.7 & 0.3 & 0.0 \\
\texttt{at-050} & PGD ($\epsilon = 0.5$) & 90.8 & \textbf{82.3} & \textbf{70.2} & \textbf{40.5} \\
\texttt{g025} & Gaussian ($\sigma = 0.25$) & 77.0 & 31.0 & 5.0 & 0.0 \\
\texttt{g050} & Gaussian ($\sigma = 0.5$) & 66.0 & 42.0 & 20.0 & -- \\
\bottomrule
\end{tabular}
"""

# Hand-checked: e.g. mean |ours - Cohen| = (0 + .10 + .18 + .15 + .30 + .04) / 6 = 0.128 -> 0.13;
# PAG mean target probability at eps 2: std (.9+.9+.9)/3, at-050 (.7+.8+.6)/3, smooth (.5+.4+.3)/3.
EXPECTED_NUMBERS_SELECTED = {
    r"\CertNZero": "100", r"\CertN": "100{,}000", r"\CertAlpha": "0.001", r"\NumCertImages": "4",
    r"\SigmaList": "0.25, 0.5 and 0.5",
    r"\RadiusMax": "0.5",
    r"\CertTiming": r"Certification took 3.0\,s per image on average.",
    r"\AbstainList": "0.25, 0.25 and 0.50",
    r"\CertCleanList": "0.75, 0.50 and 0.50", r"\CertRefCleanList": "0.75 and 0.65",
    r"\CertNumCompared": "6", r"\CertMeanAbsDiff": "0.13", r"\CertMaxAbsDiff": "0.30",
    r"\CertMaxAbsDiffSigma": "0.5", r"\CertMaxAbsDiffRadius": "0.25",
    r"\Dataset": "a synthetic dataset", r"\NumModels": "4", r"\TrainArch": r"\texttt{tiny\_cnn}",
    r"\TrainEpochs": "2", r"\TrainBatch": "8", r"\TrainLr": "0.1",
    r"\TrainSigmaList": "0.25 and 0.5", r"\AdvEps": "0.5", r"\AdvSteps": "7",
    r"\AdvStepSize": "0.1", r"\EvalImages": "100", r"\EvalSteps": "20",
    r"\EvalEpsList": "0.25, 0.5 and 1",
    r"\EvalEpsMain": "0.5", r"\CleanAccStandard": "95.1", r"\RobustAccStandardMain": "0.3",
    r"\CleanAccAdversarial": "90.8", r"\RobustAccAdversarialMain": "70.2",
    r"\PagEpsMain": "2", r"\PagEpsList": "1 and 2", r"\PagNumPairs": "3",
    r"\PagSteps": "5", r"\PagStepFactor": "2.5", r"\PagM": "4",
    r"\PagNoise": "drawn afresh at every step", r"\PagSigmaSmoothed": "0.5",
    r"\PagProbStandard": "0.90", r"\PagProbAdversarial": "0.70", r"\PagProbSmoothed": "0.40",
    r"\PagProbNoiseBase": "0.60",
}  # fmt: skip


def read_macros(path: Path) -> dict[str, str]:
    """{\\Name: value} of a numbers.tex; every line after the comment must be a \\newcommand."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("%")
    macros = {}
    for line in lines[1:]:
        assert line.startswith("\\newcommand{\\") and line.endswith("}"), line
        name, value = line[len(r"\newcommand{") :].split("}{", 1)
        assert name[1:].isalpha() and name not in macros, name
        macros[name] = value[:-1]
    return macros


def test_tables_match_hand_computed_snapshots(results: Path) -> None:
    proc = run_script("make_tables.py", tables_args(), results)
    assert proc.returncode == 0, proc.stderr
    tables = results / "paper/tables"
    assert (tables / "certified_accuracy.tex").read_text(encoding="utf-8") == EXPECTED_CERTIFIED
    assert (tables / "accuracy.tex").read_text(encoding="utf-8") == EXPECTED_ACCURACY


EXPECTED_MARKDOWN = """|  | r = 0 | r = 0.25 | r = 0.5 |
|---|---|---|---|
| σ = 0.25, ours | 0.75 | 0.50 | 0.25 |
| Cohen et al. (2019) | 0.75 | 0.40 | 0.43 |
| σ = 0.5, ours | 0.50 | 0.25 | 0.25 |
| Cohen et al. (2019) | 0.65 | 0.55 | 0.21 |
| σ = 0.5 (train 0.25), ours | 0.50 | 0.25 | 0.00 |
| Cohen et al. (2019) | -- | -- | -- |
"""


def test_markdown_copy_of_the_certified_table(results: Path) -> None:
    proc = run_script("make_tables.py", tables_args("md"), results)
    assert proc.returncode == 0, proc.stderr
    assert (results / "md/certified_accuracy.md").read_text(encoding="utf-8") == EXPECTED_MARKDOWN


def test_summaries_for_dvc_metrics_show(results: Path) -> None:
    """A short line per model and certify run: hand-checked against the snapshots above."""
    proc = run_script("make_tables.py", tables_args("summaries"), results)
    assert proc.returncode == 0, proc.stderr
    folder = results / "summaries/summary"
    g025 = json.loads((folder / "certify/g025.json").read_text())
    assert g025 == {"abstain": 0.25, "acr": 0.2, "r_0": 0.75, "r_0.25": 0.5, "r_0.5": 0.25}
    at = json.loads((folder / "models/at-050.json").read_text())
    assert at == {"clean": 0.908, "noisy": 0.4, "train_s": 2.0, "pgd_0.25": 0.823,
                  "pgd_0.5": 0.702, "pgd_1": 0.405}  # fmt: skip
    assert sorted(p.name for p in (folder / "models").iterdir()) == sorted(
        f"{m}.json" for m in MODELS
    )


def test_bold_entry_is_the_column_maximum(results: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = call("make_tables.py", tables_args("bold"), results, capsys)
    assert code == 0, err
    lines = (results / "bold/accuracy.tex").read_text(encoding="utf-8").splitlines()
    rows = [line.removesuffix(r" \\").split(" & ")[2:] for line in lines if "texttt" in line]
    for column in zip(*rows, strict=True):
        plain = [float(c.replace(r"\textbf{", "").rstrip("}")) if c != "--" else -1 for c in column]
        bold = [c.startswith(r"\textbf{") for c in column]
        assert bold == [v == max(plain) for v in plain]


def test_numbers_match_hand_computed_values(results: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = call("make_numbers.py", numbers_args(), results, capsys)
    assert code == 0, err
    macros = read_macros(results / "paper/generated/numbers.tex")
    assert {k: macros.get(k) for k in EXPECTED_NUMBERS_SELECTED} == EXPECTED_NUMBERS_SELECTED
    assert {k: macros.get(k) for k in EXPECTED_PAG_SENTENCES} == EXPECTED_PAG_SENTENCES
    assert macros[r"\PagRuns"].startswith("Every column is one training run, so the intervals are")
    # every macro is one the paper uses: 8 certify set-up + 7 summary, 13 training set-up + 5
    # roles, 8 PAG set-up + 4 roles, 7 PAG-metrics sentences, the (empty) list of
    # train-vs-certify figures and the two score-alignment macros (not computed)
    paper = (ROOT / "paper" / "main.tex").read_text(encoding="utf-8")
    assert [name for name in macros if name not in paper] == []
    assert len(macros) == 55 and macros[r"\TrainVsCertifyKeys"] == ""
    assert macros[r"\ScoreAlignmentComputed"] == "0"


def test_numbers_fig1_eps_and_bad_eps(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_results(tmp_path)
    code, err = call("make_numbers.py", [*numbers_args(), "--fig1_eps", "1.0"], root, capsys)
    assert code == 0, err
    out = root / "paper/generated/numbers.tex"
    macros = read_macros(out)
    assert macros[r"\PagEpsMain"] == "1" and macros[r"\PagProbStandard"] == "0.60"
    before = out.read_bytes()
    code, err = call("make_numbers.py", [*numbers_args(), "--fig1_eps", "3.0"], root, capsys)
    assert code == 2 and err == "error: eps 3 not in results/pag/std.pt (has 1, 2)\n"
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    ("script", "change", "message"),
    [
        (
            "make_tables.py",
            ["--runs", "g025", "nope"],
            "error: missing result file results/certify/nope.json",
        ),
        (
            "make_tables.py",
            ["--models", "std", "nope"],
            "error: missing result file results/eval/nope.json",
        ),
        (
            "make_numbers.py",
            ["--columns", "std", "nope"],
            "error: missing PAG result results/pag/nope.pt",
        ),
        (
            "make_numbers.py",
            ["--reference", "missing.tsv"],
            "error: missing reference file missing.tsv",
        ),
    ],
)
def test_bad_input_one_line_exit_2_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture, script: str, change: list[str], message: str
) -> None:
    root = make_results(tmp_path)
    args = tables_args() if script == "make_tables.py" else numbers_args()
    flag = change[0]
    start = args.index(flag) + 1
    end = next((i for i in range(start, len(args)) if args[i].startswith("--")), len(args))
    args = args[: start - 1] + change + args[end:]
    code, err = call(script, args, root, capsys)
    assert (code, err) == (2, message + "\n")
    assert not (root / "paper").exists()


HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
ROW = "0\t1\t1\t{}\t1\t0:00:01\n"
# A damaged certify TSV of run g025 (whose summary says 4 images): its bytes, the message
BROKEN = [
    ("empty", b"", "no column idx, label, predict, radius, correct"),
    ("header-only", HEADER.encode(), "0 rows, but its summary says 4 images"),
    ("nan", (HEADER + ROW.format("nan") * 4).encode(), "row 1 has radius nan, outside"),
    ("out-of-range", (HEADER + ROW.format("99") * 4).encode(), "row 1 has radius 99.0, outside"),
    ("negative", (HEADER + ROW.format("-0.1") * 4).encode(), "row 1 has radius -0.1, outside"),
    ("binary", bytes(range(256)) * 4, "not a certify TSV (binary or not UTF-8)"),
    ("missing-column", b"idx\tradius\n0\t0.1\n", "no column label, predict, correct"),
]


@pytest.mark.parametrize("case, content, message", BROKEN, ids=[c[0] for c in BROKEN])
@pytest.mark.parametrize("script", ["make_tables.py", "make_numbers.py", "fig_certified.py"])
def test_a_damaged_certify_file_stops_the_report_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, script: str, case: str, content: bytes,
    message: str,
) -> None:  # fmt: skip
    root = make_results(tmp_path)
    (root / "results/certify/g025.tsv").write_bytes(content)
    args = {"make_tables.py": tables_args(), "make_numbers.py": numbers_args()}.get(script)
    if args is None:
        args = ["--runs", *RUNS, "--radii", *RADII, "--reference", "config/reference.tsv",
                "--certify_dir", "results/certify", "--out", "paper/figures/c"]  # fmt: skip
    code, err = call(script, args, root, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: results/certify/g025.tsv: ") and message in err, err
    assert not (root / "paper").exists()


def test_a_binary_summary_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_results(tmp_path)
    (root / "results/eval/std.json").write_bytes(bytes(range(256)))
    code, err = call("make_tables.py", tables_args(), root, capsys)
    assert (code, err) == (2, "error: results/eval/std.json: not a JSON text file (binary or not "
                              "UTF-8)\n")  # fmt: skip
