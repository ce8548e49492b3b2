"""Crash safety: stages killed with SIGKILL at several points and started again with the same
command end with the same results as an uninterrupted run, and never leave a partial output
behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline_utils import certify_argv, train_argv
from robust import checkpoint, synthetic
from robust.io import tensor_digest

pytestmark = pytest.mark.slow
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.pt"
    synthetic.prepare_synthetic(path, seed=0, n_train=600, n_test=60)
    return path


def train_cmd(dataset: Path, out: Path) -> list[str]:
    return [sys.executable, str(SCRIPTS / "train.py"), *train_argv(dataset, out)]


def certify_cmd(dataset: Path, ckpt: Path, out: Path) -> list[str]:
    return [sys.executable, str(SCRIPTS / "certify.py"), *certify_argv(ckpt, dataset, out)]


def run_and_kill(cmd: list[str], ready, timeout: float = 120.0) -> None:
    """Start ``cmd``, wait until ``ready()`` is true, then SIGKILL it (no chance to clean up)."""
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def run_to_end(cmd: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), OMP_NUM_THREADS="1")
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset):
    out = tmp_path_factory.mktemp("reference")
    run_to_end(train_cmd(dataset, out))
    run_to_end(certify_cmd(dataset, out / "model.pt", out))
    return out


def weights(path: Path) -> str:
    return tensor_digest(checkpoint.load_checkpoint(path)[0].state_dict())


@pytest.mark.parametrize("point", ["at start", "after one epoch", "after two epochs"])
def test_killed_training_resumes_to_the_same_weights(tmp_path, dataset, reference, point):
    states = lambda: list((tmp_path / "state").glob("train.*.pt"))  # noqa: E731 - fingerprinted name
    epochs_done = {"at start": 0, "after one epoch": 1, "after two epochs": 2}[point]
    log = tmp_path / "train.log"

    def ready() -> bool:
        if epochs_done == 0:
            return log.exists()
        return log.exists() and log.read_text().count("INFO epoch") >= epochs_done

    run_and_kill(train_cmd(dataset, tmp_path), ready)
    assert not (tmp_path / "model.pt").exists()  # no partial output
    if epochs_done:
        assert len(states()) == 1
    run_to_end(train_cmd(dataset, tmp_path))
    assert weights(tmp_path / "model.pt") == weights(reference / "model.pt")
    assert no_temp_files(tmp_path)


def _rows(path: Path) -> list[list[str]]:
    """TSV rows (byte-identical runs: times are written as 0 with --no-record_time)."""
    return [line.split("\t") for line in path.read_text().splitlines()]


@pytest.mark.parametrize("rows_before_kill", [0, 3, 11])
def test_killed_certification_resumes_after_its_last_row(
    tmp_path, dataset, reference, rows_before_kill
):
    partial = tmp_path / "state" / "cert.tsv"

    def ready() -> bool:
        if not partial.exists():
            return False
        return len(partial.read_text().splitlines()) - 2 >= rows_before_kill

    run_and_kill(certify_cmd(dataset, reference / "model.pt", tmp_path), ready)
    assert not (tmp_path / "cert.tsv").exists()
    done = len(partial.read_text().splitlines()) - 2 if partial.exists() else 0
    run_to_end(certify_cmd(dataset, reference / "model.pt", tmp_path))
    assert _rows(tmp_path / "cert.tsv") == _rows(reference / "cert.tsv")
    assert not partial.exists()
    log = (tmp_path / "cert.log").read_text()
    if done:
        assert f"resuming: {done} of 20 already done" in log
    assert no_temp_files(tmp_path)


def test_torn_last_row_is_dropped(tmp_path, dataset, reference):
    run_and_kill(
        certify_cmd(dataset, reference / "model.pt", tmp_path),
        lambda: (
            (tmp_path / "state" / "cert.tsv").exists()
            and len((tmp_path / "state" / "cert.tsv").read_text().splitlines()) >= 6
        ),
    )
    partial = tmp_path / "state" / "cert.tsv"
    with open(partial, "a") as handle:
        handle.write("57\t3\t")  # a row cut in the middle by the kill
    run_to_end(certify_cmd(dataset, reference / "model.pt", tmp_path))
    assert _rows(tmp_path / "cert.tsv") == _rows(reference / "cert.tsv")


def test_changed_parameters_discard_the_partial_rows(tmp_path, dataset, reference):
    cmd = certify_cmd(dataset, reference / "model.pt", tmp_path)
    run_and_kill(
        cmd,
        lambda: (
            (tmp_path / "state" / "cert.tsv").exists()
            and len((tmp_path / "state" / "cert.tsv").read_text().splitlines()) >= 5
        ),
    )
    cmd[cmd.index("--n") + 1] = "300"
    run_to_end(cmd)
    assert "resuming" not in (tmp_path / "cert.log").read_text()


def test_training_state_of_other_parameters_is_not_reused(tmp_path, dataset):
    cmd = train_cmd(dataset, tmp_path)
    log = tmp_path / "train.log"
    run_and_kill(cmd, lambda: log.exists() and "INFO epoch" in log.read_text())
    cmd[cmd.index("--lr") + 1] = "0.04"
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    # Either a clean restart or a one-line refusal; never a silent mix of two runs.
    assert proc.returncode in (0, 2)
    if proc.returncode == 2:
        assert proc.stderr.strip().count("\n") == 0 and "error:" in proc.stderr
    else:
        assert torch.load(tmp_path / "model.pt", weights_only=True)["params"]["lr"] == 0.04


def test_a_failing_run_touches_no_resume_state(tmp_path, dataset):
    """A training run that fails (here: damaged data) leaves every resume state as it was; a run
    that succeeds removes only its own model's states of other parameters (``train.<16 hex>.pt``),
    never another model's (``train-b.…``) nor a file that merely starts like one."""
    states = tmp_path / "state"
    states.mkdir()
    others = ["train.0123456789abcdef.pt", "train-b.0123456789abcdef.pt", "train.notes.pt"]
    for name in others:
        (states / name).write_bytes(b"state")
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(dataset.read_bytes()[:-100])
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), OMP_NUM_THREADS="1")
    failed = subprocess.run(train_cmd(damaged, tmp_path), env=env, capture_output=True, timeout=300)
    assert failed.returncode == 2 and sorted(p.name for p in states.iterdir()) == sorted(others)
    run_to_end(train_cmd(dataset, tmp_path))
    left = sorted(p.name for p in states.iterdir() if p.name not in others)
    assert len(left) == 1 and left[0].startswith("train.")  # this run's own finished state
    assert sorted(p.name for p in states.iterdir() if p.name in others) == others[1:]
