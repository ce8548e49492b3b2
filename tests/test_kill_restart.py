"""A kill -9 during training and during certification, under each tool, followed by exactly what the
README says to type: the outputs come back byte for byte, and nothing is left to do."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline_utils import digests, run, tool_env, workspace

pytestmark = pytest.mark.slow
MODEL, RUN = "synthetic-gauss-050", "synthetic-gauss-050"


def start_and_kill(cmd: list[str], repo: Path, ready, timeout: float = 300.0) -> None:
    """Start ``cmd`` in its own process group, wait for ``ready()``, then SIGKILL the whole group
    (the tool and the job it runs). The log and row state that ``ready`` reads are removed first:
    the copied build has them from its own run, and the finished training state it kept (which a
    rerun would resume from, with no epoch left to run) goes too."""
    for state in (repo / "resources/state/train").glob(f"{MODEL}.*"):
        state.unlink()
    (repo / f"logs/train/{MODEL}.log").unlink(missing_ok=True)
    (repo / f"resources/state/certify/{RUN}.tsv").unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, cwd=repo, env=tool_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def epochs_logged(repo: Path) -> bool:
    log = repo / f"logs/train/{MODEL}.log"
    return log.is_file() and "epoch 1/" in log.read_text()


def rows_flushed(repo: Path) -> bool:
    state = repo / f"resources/state/certify/{RUN}.tsv"
    return state.is_file() and len(state.read_text().splitlines()) > 3


@pytest.mark.parametrize("stage", ["train", "certify"])
def test_snakemake_after_a_kill(smk, tmp_path, stage):
    repo = workspace(smk, tmp_path / "repo")
    target = f"results/models/{MODEL}.pt" if stage == "train" else f"results/certify/{RUN}.tsv"
    ready = epochs_logged if stage == "train" else rows_flushed
    start_and_kill(["snakemake", "--cores", "1", "--forcerun", target], repo, lambda: ready(repo))
    assert not (repo / target).exists()  # the killed job's output was removed (incomplete)
    run(["snakemake", "--unlock"], repo)
    run(["snakemake", "--cores", "2"], repo, timeout=900)
    out = run(["snakemake", "-n"], repo)
    assert "Nothing to be done" in out.stdout + out.stderr
    assert digests(repo) == digests(smk)


@pytest.mark.parametrize("stage", ["train", "certify"])
def test_dvc_after_a_kill(dvc, tmp_path, stage):
    repo = workspace(dvc, tmp_path / "repo")
    name = f"train@{MODEL}" if stage == "train" else f"certify@{RUN}"
    ready = epochs_logged if stage == "train" else rows_flushed
    cmd = ["dvc", "repro", "-f", "-s", "--no-run-cache", name]
    start_and_kill(cmd, repo, lambda: ready(repo))
    run(["dvc", "repro"], repo, timeout=900)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo).stdout
    assert digests(repo) == digests(dvc)
