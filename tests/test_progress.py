"""Labelled progress bars on stderr for the long stages (training with its epochs and batches,
evaluation, certification, PAG steps, download bytes), quiet when stderr is not a terminal; one
readable log line per training epoch."""

from __future__ import annotations

import hashlib
import io
import re
import sys
from pathlib import Path

import pytest

from pipeline_utils import certify_argv, load_script, train_argv


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm draws its bars there."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from robust import synthetic
    from robust.checkpoint import save_checkpoint
    from robust.models import build_model

    root = tmp_path_factory.mktemp("inputs")
    synthetic.prepare_synthetic(root / "d.pt", seed=0, n_train=24, n_test=10)
    save_checkpoint(root / "m.pt", build_model("tiny_cnn", "synthetic", seed=0), model_id="m",
                    arch="tiny_cnn", dataset="synthetic", params={"kind": "gaussian"})  # fmt: skip
    return root


def on_terminal(monkeypatch, script: str, argv: list[str]) -> str:
    """What ``script`` writes to a terminal stderr."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert load_script(script).main(argv) == 0
    return terminal.getvalue()


def test_training_shows_epochs_and_batches_and_logs_a_line_per_epoch(inputs, tmp_path, monkeypatch):
    argv = train_argv(inputs / "d.pt", tmp_path, epochs=2, batch_size=8, lr=0.1, weight_decay=0.0,
                      schedule="step", warmup_epochs=0, eval_sigma=0.0, eval_size=8)  # fmt: skip
    shown = on_terminal(monkeypatch, "train", argv)
    assert re.search(r"train \S+ epoch 1/2: +\d+%.*\| *3/3", shown), shown
    assert "epoch 2/2" in shown
    log = next(tmp_path.glob("*.log")).read_text()
    assert re.search(r"epoch 1/2: loss \d\.\d{4}, train accuracy \d\.\d{4}, test accuracy", log)
    assert "{'epoch'" not in log


def test_evaluation_pag_and_certification_bars_are_labelled(inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(inputs)
    evaluate = ["--model_id", "m", "--norm", "l2", "--eps", "0.5", "1.0", "--steps", "2",
                "--step_factor", "2.5", "--no-random_start", "--skip", "1", "--max_images", "4",
                "--batch", "2", "--seed", "0", "--checkpoint", "m.pt", "--data", "d.pt",
                "--out", str(tmp_path / "e.json"), "--log", str(tmp_path / "e.log")]  # fmt: skip
    assert re.search(r"evaluate m: 100%.*\| *8/8", on_terminal(monkeypatch, "evaluate", evaluate))
    pag = ["--column", "c", "--model", "m", "--sigma", "0.0", "--dataset", "synthetic",
           "--pairs", "3", "--pair_skip", "1", "--pair_seed", "0", "--eps", "1.0", "--steps", "4",
           "--step_factor", "2.5", "--m", "2", "--no-fixed_noise", "--batch", "2", "--seed", "0",
           "--checkpoint", "m.pt", "--data", "d.pt", "--out", str(tmp_path / "p.pt"),
           "--log", str(tmp_path / "p.log")]  # fmt: skip
    assert re.search(r"pag c: 100%.*\| *8/8", on_terminal(monkeypatch, "make_pag", pag))
    sizes = {"n": 40, "batch": 20, "chunk": 20, "skip": 1, "max_images": 3}
    certify = certify_argv(Path("m.pt"), Path("d.pt"), tmp_path, n0=10, **sizes)
    shown = on_terminal(monkeypatch, "certify", certify)
    assert re.search(r"certify \S+: 100%.*\| *3/3", shown), shown


def test_download_bytes_are_shown(tmp_path, monkeypatch):
    from test_download import _archive, _members

    data = _archive(_members())
    archive = tmp_path / "c.tar.gz"
    archive.write_bytes(data)
    argv = ["--dataset", "cifar10-small", "--kind", "cifar10", "--url", archive.as_uri(),
            "--md5", hashlib.md5(data).hexdigest(), "--archive", "none", "--n_train", "8",
            "--n_test", "3", "--out", str(tmp_path / "d.pt"), "--work_dir", str(tmp_path / "w"),
            "--log", str(tmp_path / "d.log")]  # fmt: skip
    shown = on_terminal(monkeypatch, "prepare_data", argv)
    assert re.search(rf"download cifar10-small: 100%.*\| *{len(data) / 1000:.1f}k/", shown), shown


def test_no_bar_when_stderr_is_not_a_terminal(inputs, tmp_path, capsys):
    argv = train_argv(inputs / "d.pt", tmp_path, epochs=1, batch_size=8, lr=0.1, weight_decay=0.0,
                      schedule="step", warmup_epochs=0, eval_sigma=0.0, eval_size=8)  # fmt: skip
    assert load_script("train").main(argv) == 0
    assert "%|" not in capsys.readouterr().err
