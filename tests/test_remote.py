"""Artifacts round-trip through DVC remotes: a real S3 API (moto on 127.0.0.1) and the default local
folder.

After a smoke run by DVC, `dvc push --run-cache`; in a fresh clone `dvc pull` gives byte-identical
artifacts; in another fresh clone `dvc repro --pull` restores every stage from the run-cache without
running one, after which `snakemake --touch` and `snakemake -n` have nothing to do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DVC_TARGETS, LATEX
from pipeline_utils import ROOT, digests, dvc_ran_stages, run, tool_env, workspace

pytestmark = pytest.mark.slow
pytest.importorskip("moto")
pytest.importorskip("dvc_s3")
TARGETS = DVC_TARGETS


def use_s3(repo: Path, endpoint: str, credentials: bool = True) -> None:
    run(["dvc", "remote", "add", "--local", "-f", "-d", "s3", "s3://pag/store"], repo)
    run(["dvc", "remote", "modify", "--local", "s3", "endpointurl", endpoint], repo)
    run(["dvc", "remote", "modify", "--local", "s3", "region", "us-east-1"], repo)
    if credentials:
        run(["dvc", "remote", "modify", "--local", "s3", "access_key_id", "testing"], repo)
        run(["dvc", "remote", "modify", "--local", "s3", "secret_access_key", "testing"], repo)


@pytest.fixture(scope="module")
def pushed(dvc, s3, tmp_path_factory):
    """A copy of the session's DVC build, pushed to both remotes with its run-cache."""
    repo = workspace(dvc, tmp_path_factory.mktemp("pushed") / "repo")
    use_s3(repo, s3)
    run(["dvc", "push", "--run-cache"], repo)
    run(["dvc", "push", "-r", "local", "--run-cache"], repo)
    return repo


def clone(source: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True, env=tool_env())
    return dest


def test_pull_from_s3_gives_identical_artifacts(pushed, s3, tmp_path):
    repo = clone(pushed, tmp_path / "pulled")
    use_s3(repo, s3)
    run(["dvc", "pull"], repo)
    original = {k: v for k, v in digests(pushed).items() if "params.ok" not in k}
    assert original and {k: digests(repo).get(k) for k in original} == original


def test_pull_from_the_local_default_remote(pushed, tmp_path):
    repo = clone(pushed, tmp_path / "local")
    run(["dvc", "remote", "modify", "local", "url", str(pushed.parent / "repo-remote")], repo)
    run(["dvc", "pull", "-r", "local"], repo)
    assert (repo / "results/certify/synthetic-gauss-025.tsv").read_bytes() == (
        pushed / "results/certify/synthetic-gauss-025.tsv"
    ).read_bytes()


def test_repro_pull_restores_every_stage_from_the_run_cache(pushed, s3, tmp_path):
    repo = clone(pushed, tmp_path / "restored")
    use_s3(repo, s3)
    out = run(["dvc", "repro", "--pull", *TARGETS], repo, timeout=900)
    assert dvc_ran_stages(out.stdout) == [], out.stdout
    run(["snakemake", "--touch", "--cores", "1"], repo)
    dry = run(["snakemake", "-n"], repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    if LATEX:  # else DVC_TARGETS stop before the paper and a plain `dvc repro` would build it
        # the benchmark's no-op figures, on a copy built (restored) by both tools
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import benchlib

        figures = benchlib.bench_pipeline(repo, 1, skip=True, built=repo)
        assert figures["pipeline_snakemake_noop"]["median"] > 0, figures
        assert figures["pipeline_dvc_repro_noop"]["median"] > 0, figures
        assert figures["pipeline_dvc_repro_noop"]["floor"] > 0, figures  # the one-stage project


def test_missing_credentials_fail_with_a_clear_message(pushed, s3, tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    repo = clone(pushed, tmp_path / "nocreds")
    use_s3(repo, s3, credentials=False)
    out = run(["dvc", "pull"], repo, check=False, timeout=300)
    assert out.returncode != 0
    assert "credentials" in (out.stdout + out.stderr).lower()
