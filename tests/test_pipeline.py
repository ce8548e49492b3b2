"""Contract tests of the two tools on temporary copies of the repository with the smoke parameters.

Real git, real Snakemake, real DVC: both tools plan the same commands, reject bad parameters before
any job, and Snakemake's build of the session is complete, reruns only what an edit touches and
never runs two GPU jobs at once (test_pipeline_dvc.py has DVC's side).
"""

from __future__ import annotations

import shutil
import struct

import pytest
import torch
import yaml

from conftest import LATEX
from pipeline_utils import (
    ROOT,
    copy_repo,
    dvc_commands,
    edit_params,
    fake_gpus,
    run,
    snakemake_commands,
    snakemake_jobs,
    workspace,
)

pytestmark = pytest.mark.slow
SMOKE = yaml.safe_load(open(__file__.replace("tests/test_pipeline.py", "config/smoke.yaml")))


@pytest.mark.parametrize("params", ["smoke", "paper"])
def test_parity_of_commands(tmp_path, params):
    """`dvc repro --dry --force` and `snakemake -n -p --forceall` run the same command set, for the
    smoke configuration and for params.yaml (whose CIFAR-10 URL needs shell quoting)."""
    repo = copy_repo(tmp_path / "repo", **({"params": None} if params == "paper" else {}))
    for folder in (
        "results/pag",
        "results/certify",
        "results/eval",
        "results/train",
        "paper/figures",
        "paper/tables",
    ):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    dvc_cmds = dvc_commands(run(["dvc", "repro", "--dry", "--force"], repo).stdout)
    smk_cmds = snakemake_commands(run(["snakemake", "-n", "-p", "--forceall"], repo).stdout)
    if not LATEX:
        dvc_cmds = [c for c in dvc_cmds if "build_paper.py" not in c]
    assert sorted(dvc_cmds) == sorted(smk_cmds)
    assert len(smk_cmds) > 20


def test_both_tools_order_the_stages_alike(tmp_path):
    """Every stage reads what the same upstream stages write in both tools: the edges between rules
    of `snakemake --rulegraph` are those between stages of `dvc dag` (foreach entries merged; the
    parameter check and Snakemake's target rule aside), so no dvc.yaml stage misses an input that
    its Snakemake rule declares, or the reverse."""
    import re

    repo = copy_repo(tmp_path / "repo")
    graph = run(["snakemake", "--rulegraph", "--forceall"], repo).stdout
    labels = dict(re.findall(r'(\d+)\[label = "([^"]+)"', graph))
    smk = {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", graph)}
    dag = run(["dvc", "dag", "--dot"], repo).stdout
    names = {"prepare": "prepare_data"}  # the one stage named otherwise

    def rule(stage: str) -> str:
        return names.get(stage.split("@")[0], stage.split("@")[0])

    dvc = {(rule(a), rule(b)) for a, b in re.findall(r'"([^"]+)" -> "([^"]+)"', dag)}
    aside = {"all", "check_params"}
    smk, dvc = ({e for e in edges if not aside & set(e)} for edges in (smk, dvc))
    assert sorted(smk - dvc) == [] and sorted(dvc - smk) == []
    assert ("score_alignment", "numbers") in dvc and ("pag_metrics", "numbers") in dvc
    assert len(dvc) > 30


def test_make_smoke_runs_the_smoke_pipeline(tmp_path):
    """`make smoke`'s Snakemake call on the repository as committed (params.yaml = the paper) plans
    exactly the commands of the smoke copies the other tests build."""
    import re

    recipe = (ROOT / "Makefile").read_text().split("\nsmoke:", 1)[1].splitlines()[1].strip()
    assert recipe.startswith("snakemake ") and "--configfile config/smoke.yaml" in recipe
    flags = re.sub(r"\$\((CORES)\)", "2", recipe).split()[1:]
    paper = copy_repo(tmp_path / "paper", params=None)
    smoke = copy_repo(tmp_path / "smoke")
    planned = snakemake_commands(run(["snakemake", "-n", "-p", *flags], paper).stdout)
    expected = snakemake_commands(run(["snakemake", "-n", "-p"], smoke).stdout)

    def checks(commands):
        return [c for c in commands if "check_params.py" in c]

    # the parameter check validates the configuration Snakemake loaded, and dvc.yaml only with
    # params.yaml, which DVC runs
    assert checks(planned) == [
        "python scripts/check_params.py --params config/smoke.yaml "
        "--schema workflow/schemas/params.schema.yaml --out results/params.ok "
        "--log logs/check_params.log"
    ]
    assert "--params params.yaml" in checks(expected)[0] and "--dvc_yaml" in checks(expected)[0]
    rest = sorted(set(planned) - set(checks(planned)))
    assert rest == sorted(set(expected) - set(checks(expected))) and len(planned) > 20


def test_a_broken_params_yaml_does_not_stop_a_run_of_another_configuration(tmp_path):
    """Under `--configfile F --replace-workflow-config` params.yaml is not read, and a bad value in
    F is reported with F's name, before any job; DVC still checks params.yaml."""
    repo = copy_repo(tmp_path / "repo")
    shutil.copy2(repo / "params.yaml", repo / "other.yaml")
    (repo / "params.yaml").write_text("models: [1, 2\n")
    other = ["--configfile", "other.yaml", "--replace-workflow-config"]
    run(["snakemake", "-n", *other], repo)
    text = (repo / "other.yaml").read_text().replace("n0: 32", "n0: 0", 1)
    (repo / "other.yaml").write_text(text)
    out = run(["snakemake", "-n", *other], repo, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "error: other.yaml: certify." in out.stderr and "n0: 0 is less than" in out.stderr
    dvc = run(["dvc", "repro", "--dry"], repo, check=False)
    assert dvc.returncode != 0


@pytest.fixture(scope="module")
def built(smk, tmp_path_factory):
    """The shared Snakemake build, copied: the tests below run Snakemake in it and edit it step by
    step, in this order."""
    return workspace(smk, tmp_path_factory.mktemp("smk") / "repo")


def test_snakemake_builds_everything(smk):
    for run_id in SMOKE["certify"]:
        lines = (smk / f"results/certify/{run_id}.tsv").read_text().splitlines()
        assert lines[0].split("\t") == ["idx", "label", "predict", "radius", "correct", "time"]
        assert len(lines) == 1 + SMOKE["certify"][run_id]["max_images"]
    for column in SMOKE["pag"]["columns"]:
        pag = torch.load(smk / f"results/pag/{column}.pt", weights_only=True)
        n_eps, n_pairs = len(SMOKE["pag"]["settings"]["eps"]), SMOKE["pag"]["settings"]["pairs"]
        assert pag["images"].shape[:2] == (n_eps, n_pairs)
        assert 0.0 <= float(pag["images"].min()) and float(pag["images"].max()) <= 1.0
    for name in (
        "fig1",
        "sigma_sweep",
        "eps_sweep",
        "certified_accuracy",
        "training_curves",
        "train_vs_certify_certify-050",
    ):
        assert (smk / f"paper/figures/{name}.pdf").read_bytes().startswith(b"%PDF")
        png = (smk / f"paper/figures/{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 100
    for table in ("certified_accuracy", "accuracy"):
        text = (smk / f"paper/tables/{table}.tex").read_text()
        assert "\\toprule" in text and "\\bottomrule" in text and "??" not in text
    assert "\\newcommand" in (smk / "paper/generated/numbers.tex").read_text()
    if LATEX:
        assert (smk / "paper/main.pdf").read_bytes().startswith(b"%PDF")


DOCS = {
    "fig1.png": "paper/figures/fig1.png",
    "certified_accuracy.png": "paper/figures/certified_accuracy.png",
    "certified_accuracy.md": "paper/tables/certified_accuracy.md",
}


def test_the_readme_shows_the_smoke_build(smk):
    """docs/smoke and the README's table are the smoke build's own outputs (`make docs`)."""
    for name, built in DOCS.items():
        committed = (ROOT / "docs/smoke" / name).read_bytes()
        assert committed == (smk / built).read_bytes(), f"docs/smoke/{name} is stale: make docs"
    table = (smk / "paper/tables/certified_accuracy.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- smoke table -->\n{table}<!-- /smoke table -->" in readme


@pytest.mark.skipif(not LATEX, reason="no latexmk: the PDF is not built")
def test_the_paper_has_no_layout_defect(smk):
    """No float too large for its page and no box overfull by more than a few points in the
    LaTeX log of the smoke build."""
    from pipeline_utils import load_script

    log = (smk / "paper/build/main.log").read_text(errors="replace")
    assert "Output written on" in log
    assert load_script("build_paper").layout_problems(log) == []


def test_pag_metrics_separate_standard_from_the_robust_columns_under_every_judge(smk):
    """At the largest generation eps, under every judge of the panel, the standard column's target
    share has a 95% interval (over 3 training runs and the pairs) that lies below, and does not
    overlap, those of the adversarially trained and the smoothed columns; their paired differences
    to it, on the judges and on the reference metrics, are positive after Holm's correction."""
    import json

    metrics = json.loads((smk / "results/metrics/pag_metrics.json").read_text())
    eps = str(max(SMOKE["pag"]["settings"]["eps"]))
    columns = {c.split("+")[0]: info for c, info in metrics["columns"].items()}
    assert all(len(info["runs"]) == 3 for info in columns.values())
    std = columns["std"]["eps"][eps]
    judges = [f"judge_{role}_share" for role in metrics["judges"]]
    assert sorted(metrics["judges"]) == ["adversarial", "noise", "standard"]
    for column in ("at-l2-200", "smooth-050", "base-050"):
        other = columns[column]["eps"][eps]
        for name in judges:
            assert std[name]["high"] < other[name]["low"], (column, name, std[name], other[name])
        group = next(c for c in metrics["columns"] if c.startswith(column + "+"))
        for name in [*judges, "cosine", "ref_corr"]:
            paired = metrics["paired"]["columns"][group][name]
            assert paired["holds"] and paired["mean"] > 0, (column, name, paired)
        assert std[judges[0]]["seed_sd"] is not None


def test_class_means_order_the_columns_as_the_true_prototypes_do(smk):
    """On the synthetic data the prototypes are known: the class-mean reference, what real data
    must use, keeps on every reference metric the order of every pair of columns that the
    prototypes tell apart (at least two), and its order of all columns agrees more than it
    disagrees (near-ties may swap)."""
    import json

    metrics = json.loads((smk / "results/metrics/pag_metrics.json").read_text())
    agreement = {a["metrics"][0]: a for a in metrics["reference_agreement"]}
    assert sorted(agreement) == ["cosine", "ref_corr"]
    for name, entry in agreement.items():
        assert entry["resolved_same_order"] and entry["resolved_pairs"] >= 2, (name, entry)
        assert entry["kendall_tau"] > 0.5, (name, entry)


def test_snakemake_report_has_every_figure(built):
    run(["snakemake", "--report", "report.html"], built, timeout=600)
    html = (built / "report.html").read_text(errors="replace")
    for name in (
        "fig1",
        "sigma_sweep",
        "eps_sweep",
        "certified_accuracy",
        "training_curves",
        "pag_metrics",
        "train_vs_certify_certify-050",
    ):
        assert f"{name}.pdf" in html


def test_snakemake_second_run_does_nothing(built):
    out = run(["snakemake", "-n"], built)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_snakemake_certify_edit_reruns_only_that_run(built):
    edit_params(built, ["certify", "synthetic-gauss-050", "n"], 800)
    jobs = snakemake_jobs(run(["snakemake", "-n"], built).stdout)
    assert jobs.get("certify") == 1
    assert "train" not in jobs and "pag" not in jobs and "evaluate" not in jobs
    run(["snakemake", "--cores", "2", "--resources", "gpu=2"], built)
    assert "Nothing to be done" in "".join(run(["snakemake", "-n"], built).stdout)


def test_snakemake_model_edit_reruns_only_that_chain(built):
    # another seed for one training run of the standard recipe (its column group stays valid)
    edit_params(built, ["models", "synthetic-std-s2", "seed"], 4)
    jobs = snakemake_jobs(run(["snakemake", "-n"], built).stdout)
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 1
    assert "certify" not in jobs and "predict" not in jobs
    assert jobs.get("pag") == 1  # only that model's column


def test_bad_params_rejected_by_both_tools_before_any_job(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_params(repo, ["certify", "synthetic-gauss-025", "alpha"], 1.5)
    smk = run(["snakemake", "-n"], repo, check=False)
    assert smk.returncode != 0
    assert "certify.synthetic-gauss-025.alpha" in smk.stderr and "Traceback" not in smk.stderr
    dvc = run(["dvc", "repro"], repo, check=False)
    assert dvc.returncode != 0
    assert "certify.synthetic-gauss-025.alpha" in dvc.stdout + dvc.stderr
    assert not (repo / "resources" / "data").exists()


def _job_intervals(repo, folders):
    """(start, end) of each job from the first and last timestamps of its log (second
    resolution)."""
    import datetime as dt

    spans = []
    for folder in folders:
        for log in (repo / "logs" / folder).glob("*.log"):
            stamps = [line[:19] for line in log.read_text().splitlines() if line[:4].isdigit()]
            if stamps:
                fmt = "%Y-%m-%d %H:%M:%S"
                spans.append(
                    (dt.datetime.strptime(stamps[0], fmt), dt.datetime.strptime(stamps[-1], fmt))
                )
    return spans


def test_gpu_cap_from_the_machine(tmp_path):
    """Run by hand, GPU jobs at once = the visible GPUs (nvidia-smi, or CUDA_VISIBLE_DEVICES), the
    cores on a machine without one; an explicit `--resources gpu=N` wins."""
    import re

    repo = copy_repo(tmp_path / "repo")

    def cap(env=None, *flags):
        out = run(["snakemake", "-n", "--cores", "3", *flags], repo, env=env)
        found = re.findall(r"GPU jobs at once: (\d+)", out.stderr)
        return int(found[0]) if found else None

    assert cap(fake_gpus(tmp_path / "two", 2)) == 2
    assert cap(fake_gpus(tmp_path / "two", 2) | {"CUDA_VISIBLE_DEVICES": "1"}) == 1
    assert cap(fake_gpus(tmp_path / "none", 0)) == 3  # no GPU: the cores
    assert cap(fake_gpus(tmp_path / "two", 2), "--resources", "gpu=5") is None  # not overridden


def test_gpu_cap_and_one_writer_per_path(built, tmp_path):
    """On a machine with one GPU (faked) `--cores 2` never overlaps two GPU jobs, and every output
    path has exactly one producing job."""
    # Last test of the Snakemake copy: --until leaves the downstream figures outdated.
    run(
        [
            "snakemake",
            "--cores",
            "2",
            "--forcerun",
            "certify",
            "predict",
            "--until",
            "certify",
            "predict",
        ],
        built,
        timeout=900,
        env=fake_gpus(tmp_path / "one", 1),
    )
    spans = sorted(_job_intervals(built, ["certify", "predict"]))
    assert len(spans) >= 4
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert not (s2 < e1), f"two GPU jobs overlapped: {s1}-{e1} and {s2}-{e2}"
    summary = run(["snakemake", "--summary"], built).stdout.splitlines()
    outputs = [line.split("\t")[0] for line in summary[1:] if line.strip()]
    assert len(outputs) == len(set(outputs)) > 40
