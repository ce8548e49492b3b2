"""Snakemake and DVC build the smoke pipeline independently to byte-identical outputs."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import DVC_TARGETS
from pipeline_utils import BIN, digests, run, snakemake_jobs, workspace

pytestmark = pytest.mark.slow


def test_two_runs_give_identical_outputs_and_a_clean_dvc_status(smk, dvc, tmp_path):
    """Every output of the two builds is byte-identical, so DVC's lock of one run describes the
    other: `dvc status` is clean on the Snakemake build with DVC's dvc.lock and cache."""
    a, b = digests(smk), digests(dvc)
    common = sorted(set(a) & set(b))
    assert len(common) > 40
    assert [k for k in common if a[k] != b[k]] == []
    repo = workspace(smk, tmp_path / "repo")
    shutil.copy2(dvc / "dvc.lock", repo / "dvc.lock")
    run(["dvc", "cache", "dir", "--local", str(dvc / ".dvc" / "cache")], repo)
    status = run(["dvc", "status", "--with-deps", *DVC_TARGETS], repo).stdout
    assert "up to date" in status, status


def test_a_new_model_and_column_plan_the_same_jobs_in_both_tools(smk, dvc, tmp_path):
    """Adding a model and a PAG column that no figure, table or metric lists (then regenerating
    dvc.yaml's lists, as the README says) plans the same jobs in both tools: the new model's
    training, evaluation and PAG column, and the parameter check; no figure, table or metric."""
    import yaml

    repo = workspace(smk, tmp_path / "repo")
    shutil.copy2(dvc / "dvc.lock", repo / "dvc.lock")
    run(["dvc", "cache", "dir", "--local", str(dvc / ".dvc" / "cache")], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    model = params["models"]["synthetic-gauss-050"] | {"sigma": 0.75, "eval_sigma": 0.75}
    params["models"]["synthetic-gauss-075"] = model
    params["pag"]["columns"]["smooth-075"] = {"model": "synthetic-gauss-075", "sigma": 0.75}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([str(BIN / "python"), "-m", "robust.deps", "params.yaml", "dvc.yaml"], repo)
    status = json.loads(run(["dvc", "status", "--json", *DVC_TARGETS], repo).stdout)
    stages = list(status)  # the stages that are not up to date (a dry run needs the new files)
    jobs = snakemake_jobs(run(["snakemake", "-n"], repo).stdout)
    jobs.pop("all", None)
    planned = sorted(stage.split("@")[0] for stage in stages)
    assert planned == sorted(rule for rule, count in jobs.items() for _ in range(count))
    assert sorted(stages) == [
        "check_params", "evaluate@synthetic-gauss-075", "pag@smooth-075",
        "train@synthetic-gauss-075",
    ]  # fmt: skip


def test_dvc_trains_the_same_weights_whatever_the_thread_settings(smk, dvc, tmp_path):
    """Every stage fixes its CPU threads itself: retrained by DVC with OMP_NUM_THREADS=2 in the
    environment, a smoke model has the bytes of Snakemake's build (one thread per job)."""
    repo = workspace(dvc, tmp_path / "repo")
    model = "results/models/synthetic-gauss-050.pt"
    cmd = ["dvc", "repro", "-f", "-s", "--no-run-cache", "train@synthetic-gauss-050"]
    run(cmd, repo, env={"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})
    assert (repo / model).read_bytes() == (smk / model).read_bytes()
