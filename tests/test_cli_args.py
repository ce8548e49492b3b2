"""The stage scripts' own arguments: bad values end with one line naming the flag and exit status 2,
before anything is computed or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_utils import certify_argv, load_script, train_argv

SIZES = {"n": 100, "batch": 50, "chunk": 50, "skip": 1, "max_images": 2}
CERTIFY = certify_argv(Path("m.pt"), Path("d.pt"), Path(""), n0=10, **SIZES)
PREDICT = certify_argv(Path("m.pt"), Path("d.pt"), Path(""), predict=True, **SIZES)
TRAIN = train_argv(
    Path("d.pt"),
    Path(""),
    epochs=1,
    batch_size=8,
    lr=0.1,
    weight_decay=0.0,
    schedule="step",
    warmup_epochs=0,
    eval_sigma=0.0,
    eval_size=8,
)
PREPARE = (
    "--dataset c --kind cifar10 --url u --md5 m --archive none --n_train 1 --n_test 1 --out d.pt "
    "--work_dir w --log p.log"
).split()


def replace(argv: list[str], flag: str, value: str | None) -> list[str]:
    """argv with ``flag``'s value replaced (or the flag and its value removed when value is
    None)."""
    out = list(argv)
    i = out.index(flag)
    if value is None:
        del out[i : i + 2]
    else:
        out[i + 1] = value
    return out


# Malformed command lines: argparse's one line, before anything is written.
CASES = [
    ("certify", CERTIFY, "--sigma", "abc", "--sigma"),
    ("certify", CERTIFY, "--n", "1.5", "--n"),
    ("certify", CERTIFY, "--out", None, "--out"),
    ("predict", PREDICT, "--alpha", "high", "--alpha"),
    ("train", TRAIN, "--epochs", "two", "--epochs"),
    ("train", TRAIN, "--seed", None, "--seed"),
    ("prepare_data", PREPARE, "--kind", "cifar", "--kind"),
    ("prepare_data", PREPARE, "--md5", None, "--md5"),  # a flag of the chosen kind
]


@pytest.mark.parametrize(
    "script, argv, flag, value, named", CASES, ids=[f"{c[0]}{c[2]}={c[3]}" for c in CASES]
)
def test_bad_argument_is_one_line_and_exit_2(
    tmp_path, monkeypatch, capsys, script, argv, flag, value, named
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(replace(argv, flag, value))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and named in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the log


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A prepared synthetic dataset d.pt and a tiny model m.pt."""
    from robust import synthetic
    from robust.checkpoint import save_checkpoint
    from robust.models import build_model

    root = tmp_path_factory.mktemp("inputs")
    synthetic.prepare_synthetic(root / "d.pt", seed=0, n_train=20, n_test=10)
    save_checkpoint(root / "m.pt", build_model("tiny_cnn", "synthetic", seed=0), model_id="m",
                    arch="tiny_cnn", dataset="synthetic", params={})  # fmt: skip
    return root


# Values a schema-valid params.yaml never holds, given on the command line: the library's own
# contract names them in one line, before any sample is drawn or any step taken.
VALUES = [
    ("certify", CERTIFY, "--sigma", "-0.5", "sigma"),
    ("certify", CERTIFY, "--alpha", "1.5", "alpha"),
    ("certify", CERTIFY, "--n", "-3", "samples"),
    ("certify", CERTIFY, "--batch", "0", "batch_size"),
    ("certify", CERTIFY, "--precision", "fp64", "precision"),
    ("certify", CERTIFY, "--block", "0", "block"),
    ("certify", CERTIFY, "--compile", "fast", "--compile"),
    ("predict", PREDICT, "--alpha", "2", "alpha"),
    ("train", TRAIN, "--kind", "magic", "magic"),
    ("train", TRAIN, "--epochs", "0", "epochs"),
    ("train", TRAIN, "--lr", "-1", "lr"),
    ("train", TRAIN, "--label_smoothing", "1.0", "label_smoothing"),
    ("train", TRAIN, "--schedule", "warm", "schedule"),
    ("train", replace(TRAIN, "--kind", "adversarial"), "--norm", "l3", "norm"),
]


@pytest.mark.parametrize(
    "script, argv, flag, value, named", VALUES, ids=[f"{c[0]}{c[2]}={c[3]}" for c in VALUES]
)
def test_bad_value_is_one_line_before_any_work(
    inputs, tmp_path, monkeypatch, capsys, script, argv, flag, value, named
):
    monkeypatch.chdir(inputs)
    out = [f"--{name}" for name in ("out", "metrics", "state", "summary", "curve", "log")]
    argv = [str(tmp_path / a) if i and argv[i - 1] in out else a for i, a in enumerate(argv)]
    assert load_script(script).main(replace(argv, flag, value)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and named in err, err
    written = {p.name for p in tmp_path.iterdir() if p.is_file()}
    assert written <= {"cert.log", "train.log"}, written  # the log (and scratch state), no result


def test_missing_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = load_script("certify").main(CERTIFY)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "m.pt" in err and "\n" not in err
    assert not (tmp_path / "cert.tsv").exists()


def test_device_choice_and_cudnn_autotuning(monkeypatch):
    """cuda turns on cuDNN autotuning (the setting the benchmarks time); the CPU leaves it alone;
    asking for cuda without one is a one-line usage error."""
    import torch

    from robust import cli

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.resolve_device("auto") == torch.device("cpu")
    assert torch.backends.cudnn.benchmark is False
    with pytest.raises(cli.UsageError, match="no CUDA device"):
        cli.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cli.resolve_device("cpu") == torch.device("cpu")
    assert torch.backends.cudnn.benchmark is False
    assert cli.resolve_device("auto") == torch.device("cuda")
    assert torch.backends.cudnn.benchmark is True
