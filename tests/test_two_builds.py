"""Snakemake and DVC build the smoke pipeline independently to byte-identical outputs."""

from __future__ import annotations

import shutil

import pytest

from conftest import DVC_TARGETS
from pipeline_utils import digests, run, workspace

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
