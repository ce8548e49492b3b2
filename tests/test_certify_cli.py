"""scripts/certify.py runs CERTIFY in blocks of images and must give, row by row, what certifying
one image at a time gives, for any block size, layout and precision setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline_utils import certify_argv, load_script
from robust import synthetic
from robust.checkpoint import load_checkpoint, save_checkpoint
from robust.io import sealed, torch_save
from robust.models import build_model
from robust.smoothing import Smooth

ROOT = Path(__file__).resolve().parents[1]
SIGMA, N0, N, ALPHA, BATCH, CHUNK, SKIP, MAX_IMAGES, SEED = 0.5, 16, 300, 0.01, 128, 100, 2, 5, 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("certify_cli")
    x_train, y_train = synthetic.generate(20, seed=0, split="train")
    x_test, y_test = synthetic.generate(10, seed=0, split="test")
    torch_save(sealed({"dataset": "synthetic", "x_train": x_train, "y_train": y_train,
                "x_test": x_test, "y_test": y_test, "class_names": list(synthetic.CLASS_NAMES),
                "prototypes": synthetic.prototypes(), "meta": {"seed": 0}}),
               root / "synthetic.pt")  # fmt: skip
    model = build_model("tiny_cnn", "synthetic", seed=1)
    save_checkpoint(root / "model.pt", model, model_id="m", arch="tiny_cnn", dataset="synthetic",
                    params={"seed": 1, "kind": "gaussian", "sigma": SIGMA})  # fmt: skip
    return root


def certify(root: Path, block: int, tag: str, **flags) -> tuple[list[list[str]], dict]:
    module = load_script("certify")
    out = root / tag
    argv = certify_argv(
        root / "model.pt",
        root / "synthetic.pt",
        out,
        sigma=SIGMA,
        n0=N0,
        n=N,
        alpha=ALPHA,
        batch=BATCH,
        chunk=CHUNK,
        skip=SKIP,
        max_images=MAX_IMAGES,
        seed=SEED,
        block=block,
        **flags,
    )
    assert module.main(argv) == 0
    rows = [line.split("\t") for line in (out / "cert.tsv").read_text().splitlines()]
    return rows, json.loads((out / "cert.json").read_text())


def test_rows_equal_smooth_certify_for_every_block_size(workdir):
    model, _ = load_checkpoint(workdir / "model.pt", map_location="cpu")
    model.eval()
    data = torch.load(workdir / "synthetic.pt", weights_only=True)
    smooth = Smooth(model, 10, SIGMA, chunk_size=CHUNK, seed=SEED)
    expected = []
    for idx in range(0, 10, SKIP)[:MAX_IMAGES]:
        x = data["x_test"][idx].float() / 255
        [(prediction, radius)] = smooth.certify(x[None], [idx], N0, N, ALPHA, 64)
        label = int(data["y_test"][idx])
        expected.append([str(idx), str(label), str(prediction), f"{radius:.3}",
                         str(int(prediction == label)), "0"])  # fmt: skip
    by_block = {block: certify(workdir, block, f"block{block}") for block in (1, 2, 5)}
    for block, (rows, summary) in by_block.items():
        assert rows[0] == ["idx", "label", "predict", "radius", "correct", "time"]
        assert [row[:5] for row in rows[1:]] == [row[:5] for row in expected], block
        assert summary["n_images"] == MAX_IMAGES and summary["precision"] == "fp32"
    assert by_block[1] == by_block[2] == by_block[5]


def test_bf16_and_channels_last(workdir):
    """bf16 certifies the bf16 network (its rows are Smooth(precision="bf16")'s, recorded in the
    summary); an NHWC layout computes the same function."""
    fp32, _ = certify(workdir, 2, "fp32")
    nhwc, _ = certify(workdir, 2, "nhwc", channels_last=True)
    rows, summary = certify(workdir, 2, "bf16", precision="bf16")
    assert [row[:3] for row in nhwc] == [row[:3] for row in fp32]
    model, _ = load_checkpoint(workdir / "model.pt", map_location="cpu")
    data = torch.load(workdir / "synthetic.pt", weights_only=True)
    idxs = list(range(0, 10, SKIP))[:MAX_IMAGES]
    smooth = Smooth(model, 10, SIGMA, chunk_size=CHUNK, seed=SEED, precision="bf16")
    answers = smooth.certify(data["x_test"][idxs].float() / 255, idxs, N0, N, ALPHA, BATCH)
    assert [row[2:4] for row in rows[1:]] == [[str(p), f"{r:.3}"] for p, r in answers]
    assert summary["precision"] == "bf16"


def test_curve_is_the_certified_accuracy_on_a_radius_grid(workdir):
    rows, summary = certify(workdir, 2, "curve")
    curve = [
        line.split("\t") for line in (workdir / "curve" / "curve.tsv").read_text().splitlines()
    ]
    assert curve[0] == ["radius", "certified_accuracy"]
    radius = [float(row[3]) for row in rows[1:]]
    correct = [int(row[4]) for row in rows[1:]]
    for r, accuracy in curve[1:]:
        share = sum(c == 1 and rad >= float(r) for rad, c in zip(radius, correct, strict=True))
        assert float(accuracy) == pytest.approx(share / len(radius), abs=1e-6)
    assert float(curve[1][1]) == pytest.approx(summary["clean_accuracy"])
    assert float(curve[-1][0]) >= max(radius)


def test_an_unwritable_output_folder_fails_in_one_line_first(workdir, capsys, monkeypatch):
    """A path under a file (like a read-only folder or a typo, and root obeys it too) stops the
    job before the checkpoint is even read, in one line naming the path, also in the log; a full
    disk at the end is one line too."""
    (workdir / "blocker").write_text("a file, not a folder")
    argv = certify_argv(
        workdir / "model.pt", workdir / "synthetic.pt", workdir / "full", n=N, n0=N0,
        max_images=MAX_IMAGES,
    )  # fmt: skip
    bad = [*argv, "--summary", str(workdir / "blocker" / "sub" / "cert.json")]
    module = load_script("certify")
    monkeypatch.setattr("robust.checkpoint.load_checkpoint", lambda *a, **k: pytest.fail("work"))
    assert module.main(bad) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "blocker" in err and len(err.splitlines()) == 1
    assert err.removeprefix("error: ") in (workdir / "full" / "cert.log").read_text()
    monkeypatch.undo()

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("robust.io.os.fsync", full)
    assert module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: [Errno 28] No space left on device: ") and len(err.splitlines()) == 1
    )
    assert "full/" in err and not (workdir / "full/cert.tsv").exists()
