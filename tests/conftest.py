"""Shared fixtures: two smoke runs of the whole pipeline, one by Snakemake and one by DVC, built
once per test session on temporary copies of the repository and shared by the end-to-end tests."""

from __future__ import annotations

import shutil

import pytest

from pipeline_utils import copy_repo, run

LATEX = shutil.which("latexmk") is not None
# Without TeX the paper stage cannot run: DVC then reproduces everything up to it.
DVC_TARGETS = (
    []
    if LATEX
    else [
        "numbers",
        "tables",
        "fig1",
        "sigma_sweep",
        "eps_sweep",
        "fig_certified",
        "fig_training",
        "fig_train_vs_certify",
        "fig_pag_metrics",
        "predict",
    ]
)


@pytest.fixture(scope="session")
def smk(tmp_path_factory):
    """A copy built once by ``snakemake --cores 2`` (as make smoke does)."""
    repo = copy_repo(tmp_path_factory.mktemp("smk") / "repo")
    # CPU only: the one-GPU cap of the profile is lifted, as `make smoke` does without a GPU.
    run(["snakemake", "--cores", "2", "--resources", "gpu=2"], repo, timeout=1500)
    return repo


@pytest.fixture(scope="session")
def dvc(tmp_path_factory):
    """A copy built once by ``dvc repro``, its dvc.lock committed."""
    repo = copy_repo(tmp_path_factory.mktemp("dvc") / "repo")
    run(["dvc", "repro", *DVC_TARGETS], repo, timeout=1500)
    run(["git", "add", "dvc.lock"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    return repo
