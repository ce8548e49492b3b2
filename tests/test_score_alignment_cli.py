"""scripts/score_alignment.py end to end on tiny models and offline fixture weights, its skip path,
the paper text from make_numbers either way, and the smoke pipeline's plan of the stage."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from robust import lpips, report, synthetic
from robust.checkpoint import save_checkpoint
from robust.io import sealed, torch_save
from robust.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_score_alignment import GaussianDenoiser, export_script  # noqa: E402
from test_tables import call, load_script, make_results, numbers_args  # noqa: E402

N_TEST = 20
MODELS = {"m-std": ("standard", 0.0), "m-gauss": ("gaussian", 0.25)}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Prepared synthetic data, two tiny checkpoints and the three weight files."""
    root = tmp_path_factory.mktemp("score_alignment")
    x_train, y_train = synthetic.generate(20, seed=0, split="train")
    x_test, y_test = synthetic.generate(N_TEST, seed=0, split="test")
    torch_save(sealed({"dataset": "synthetic", "x_train": x_train, "y_train": y_train,
                "x_test": x_test, "y_test": y_test, "class_names": list(synthetic.CLASS_NAMES),
                "meta": {"seed": 0}}), root / "synthetic.pt")  # fmt: skip
    for seed, (model_id, (kind, sigma)) in enumerate(MODELS.items()):
        params = {"kind": kind, "sigma": sigma, "eps": 0.0, "seed": seed}
        save_checkpoint(root / "models" / f"{model_id}.pt", build_model("tiny_cnn", "synthetic",
                        seed=seed), model_id=model_id, arch="tiny_cnn", dataset="synthetic",
                        params=params)  # fmt: skip
    from robust._torchvision import import_torchvision

    torch.manual_seed(0)
    features = import_torchvision().models.alexnet(weights=None).features
    weights = root / "weights"
    weights.mkdir()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()},
               weights / "alexnet.pth")  # fmt: skip
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1)
                for i, c in enumerate(lpips.CHANNELS)}, weights / "lpips_alex.pth")  # fmt: skip
    export_script(GaussianDenoiser(torch.zeros(1, 3, 32, 32), 0.3), weights / "denoiser.ts")
    return root


def argv(root: Path, out: str, **change) -> list[str]:
    flags = {
        "models": ["m-std", "m-gauss", "m-gauss"], "sigmas": ["0.0", "0.25", "0.0"], "m": ["2"],
        "score_sigma": ["0.5"], "n_images": ["8"], "seed": ["0"], "batch": ["6"],
        "bootstrap": ["200"], "dataset": ["synthetic"],
        "alexnet": [str(root / "weights/alexnet.pth")],
        "lpips": [str(root / "weights/lpips_alex.pth")],
        "denoiser": [str(root / "weights/denoiser.ts")],
        "models_dir": [str(root / "models")], "data": [str(root / "synthetic.pt")],
        "out": [str(root / out / "s.json")], "per_image": [str(root / out / "s.tsv")],
        "table": [str(root / out / "s.tex")], "log": [str(root / out / "s.log")],
        "device": ["cpu"],
    } | change  # fmt: skip
    return [item for key, values in flags.items() for item in (f"--{key}", *values)]


@pytest.fixture(scope="module")
def computed(workdir: Path) -> Path:
    assert load_script("score_alignment.py").main(argv(workdir, "a")) == 0
    return workdir / "a"


def test_cli_writes_intervals_and_paired_differences(computed: Path):
    summary = json.loads((computed / "s.json").read_text())
    ids = ["m-std", "m-gauss-smoothed-0.25", "m-gauss"]
    assert summary["skipped"] is False and summary["settings"]["columns"] == ids
    assert summary["settings"]["n_images"] == 8 and summary["paired"]["baseline"] == "m-std"
    for cid in ids:
        stat = summary["columns"][cid]["lpips"]
        assert 0 < stat["low"] <= stat["mean"] <= stat["high"]
    assert summary["columns"]["m-gauss-smoothed-0.25"]["title"] == r"Smoothed ($\sigma$=0.25)"
    assert summary["columns"]["m-gauss"]["title"].startswith("Noise-trained base")
    assert set(summary["paired"]["columns"]) == set(ids[1:])
    rows = (computed / "s.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["column", "model", "sigma", "idx", "label", "lpips"]
    assert len(rows) == 1 + 3 * 8
    by_column = {}
    for row in rows[1:]:
        cells = row.split("\t")
        by_column.setdefault(cells[0], []).append(float(cells[-1]))
    for cid in ids:  # the JSON's mean is the mean of the TSV rows
        mean = sum(by_column[cid]) / 8
        assert summary["columns"][cid]["lpips"]["mean"] == pytest.approx(mean, rel=1e-5)
    table = (computed / "s.tex").read_text()
    assert table.startswith(r"\begin{tabular}{lcc}") and table.count(r"\textbf{") >= 1
    assert "Difference to Standard" in table


def test_cli_skips_without_weights(workdir: Path, capsys: pytest.CaptureFixture):
    missing = workdir / "weights/none.pth"
    code = load_script("score_alignment.py").main(argv(workdir, "b", lpips=[str(missing)]))
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("\n") == 1 and err.rstrip().endswith(
        f"score alignment skipped: no LPIPS weights at {missing} (see config/README.md)"
    )
    record = json.loads((workdir / "b/s.json").read_text())
    assert record == {"skipped": True, "reason": f"no LPIPS weights at {missing}"}
    assert (workdir / "b/s.tsv").read_text() == "column\tmodel\tsigma\tidx\tlabel\tlpips\n"
    assert (workdir / "b/s.tex").read_text().startswith("% score alignment not computed")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # (params.yaml's lists are checked by robust.config: tests/test_config.py)
        ({"sigmas": ["0.0"]}, "error: zip() argument 2 is shorter than argument 1"),
        ({"models": ["m-std", "nope", "m-gauss"]}, "error: checkpoint not found"),
    ],
)
def test_cli_bad_input_one_line(workdir, capsys, change, message):
    code = load_script("score_alignment.py").main(argv(workdir, "c", **change))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not (workdir / "c/s.json").exists()


def numbers(root: Path, record: Path, capsys) -> dict[str, str]:
    from test_tables import read_macros

    args = [*numbers_args(), "--score_alignment", str(record)]
    code, err = call("make_numbers.py", args, root, capsys)
    assert code == 0, err
    return read_macros(root / "paper/generated/numbers.tex")


def test_paper_text_says_not_computed_or_reports_lpips(tmp_path, computed, capsys):
    root = make_results(tmp_path)
    skipped = tmp_path / "skipped.json"
    skipped.write_text(json.dumps({"skipped": True, "reason": "no LPIPS weights at w/lp_alex.pth"}))
    macros = numbers(root, skipped, capsys)
    assert macros[r"\ScoreAlignmentComputed"] == "0"
    assert macros[r"\ScoreAlignmentText"] == (
        r"Not computed: weights absent (no LPIPS weights at w/lp\_alex.pth)."
    )
    macros = numbers(root, computed / "s.json", capsys)
    summary = json.loads((computed / "s.json").read_text())
    mean = summary["columns"]["m-std"]["lpips"]["mean"]
    assert macros[r"\ScoreAlignmentComputed"] == "1"
    assert macros[r"\ScoreAlignmentText"].startswith(
        f"Over 8 test images, with $s = 0.5$ and $m = 2$, the mean LPIPS distance is {mean:.3f} "
        "for Standard, "
    )
    assert macros[r"\ScoreAlignmentText"].endswith(r"(Table~\ref{tab:score-alignment}).")


@pytest.mark.skipif(not report.latex_available(), reason="latexmk not installed")
@pytest.mark.parametrize("ran", [True, False], ids=["computed", "skipped"])
def test_paper_builds_either_way(tmp_path, workdir, computed, capsys, ran):
    """The table is included when the stage ran; without weights the text says so and the build
    (which fails on ?? and missing files) still succeeds."""
    from test_report import PAPER_ARGS, make_paper_inputs

    root = make_paper_inputs(tmp_path, capsys)
    if not ran:
        load_script("score_alignment.py").main(argv(workdir, "d", denoiser=["weights/none.pt2"]))
    out = computed if ran else workdir / "d"
    numbers(root, out / "s.json", capsys)
    shutil.copy(out / "s.tex", root / "paper/tables/score_alignment.tex")
    code, err = call("build_paper.py", PAPER_ARGS, root, capsys)
    assert code == 0, err
    log = (root / "paper/build/main.log").read_text(encoding="utf-8", errors="replace")
    assert ("tables/score_alignment.tex" in log) == ran and "undefined" not in log.lower()
    aux = (root / "paper/build/main.aux").read_text(encoding="utf-8")
    assert ("tab:score-alignment" in aux) == ran


def test_smoke_pipeline_plans_the_stage_and_it_skips(tmp_path, monkeypatch):
    """With config/smoke.yaml (no weight files) Snakemake plans the stage with the command DVC
    renders, and that command writes the skip record with one line on stderr."""
    from dvc.repo import Repo

    from pipeline_utils import copy_repo, run, snakemake_commands

    repo = copy_repo(tmp_path / "repo")
    planned = snakemake_commands(run(["snakemake", "-n", "-p"], repo).stdout)
    monkeypatch.chdir(repo)  # DVC resolves stage names from the working directory
    with Repo(str(repo)) as dvc:
        rendered = {name: dvc.stage.collect(name)[0].cmd for name in ("score_alignment", "numbers")}
    for name, command in rendered.items():
        assert command in planned, name
    proc = run(["bash", "-c", rendered["score_alignment"]], repo)
    assert proc.stderr.count("\n") == 1
    assert "score alignment skipped: no AlexNet weights" in proc.stderr
    record = json.loads((repo / "results/metrics/score_alignment.json").read_text())
    assert record["skipped"] is True and "resources/weights/lpips_alex.pth" in record["reason"]
