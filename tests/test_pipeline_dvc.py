"""DVC on the smoke build: a second `dvc repro` does nothing, a certification edit reruns that run
only, a model edit reruns that model's chain, and Snakemake takes over the DVC-built outputs.

The tests edit one copy of the session's DVC build step by step, in this order.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import DVC_TARGETS
from pipeline_utils import dvc_ran_stages, edit_params, run, workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(dvc, tmp_path_factory):
    return workspace(dvc, tmp_path_factory.mktemp("dvc") / "repo")


def dvc_repro_cmd(*extra: str) -> list[str]:
    return ["dvc", "repro", *extra, *DVC_TARGETS]


def test_dvc_stages_write_distinct_paths(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]
    assert len(outs) == len(set(outs)) > 40


def test_dvc_builds_then_does_nothing(repo):
    out = run(dvc_repro_cmd(), repo)
    assert dvc_ran_stages(out.stdout) == []


def test_dvc_certify_edit_reruns_only_that_run(repo):
    edit_params(repo, ["certify", "synthetic-gauss-050", "n"], 800)
    ran = dvc_ran_stages(run(dvc_repro_cmd(), repo).stdout)
    assert "certify@synthetic-gauss-050" in ran
    assert not [s for s in ran if s.startswith(("train@", "pag@", "evaluate@", "prepare@"))]
    assert not [s for s in ran if s.startswith("certify@") and s != "certify@synthetic-gauss-050"]


def test_dvc_model_edit_reruns_only_that_chain(repo):
    edit_params(repo, ["models", "synthetic-std-s2", "seed"], 4)
    ran = dvc_ran_stages(run(dvc_repro_cmd(), repo).stdout)
    assert [s for s in ran if s.startswith("train@")] == ["train@synthetic-std-s2"]
    assert not [s for s in ran if s.startswith(("certify@", "predict@"))]
    assert [s for s in ran if s.startswith("pag@")] == ["pag@std-s2"]


def test_dvc_hands_over_to_snakemake(repo):
    run(["snakemake", "--touch", "--cores", "1"], repo)
    out = run(["snakemake", "-n"], repo)
    assert "Nothing to be done" in out.stdout + out.stderr
