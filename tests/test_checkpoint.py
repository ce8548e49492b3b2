"""Tests for robust.checkpoint: plain-dict round trip and clear errors for damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robust.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from robust.models import build_model

PARAMS = {"method": "gaussian", "sigma": 0.25, "epochs": 2, "widths": [16, 32], "note": None}


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    model = build_model("tiny_cnn", "cifar10", seed=0)
    model.train()
    with torch.no_grad():  # move the BN running statistics away from their defaults
        model(torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, model_id="cifar10-gauss-s025", arch="tiny_cnn",
                    dataset="cifar10", params=PARAMS, extra={"epoch": 2})  # fmt: skip
    return path, model.eval()


def test_round_trip_gives_identical_outputs(saved: tuple[Path, torch.nn.Module]) -> None:
    path, model = saved
    raw = torch.load(path, weights_only=True)
    assert {"state_dict", "model_id", "arch", "dataset", "params", "versions", "extra"} <= set(raw)
    assert raw["params"] == PARAMS and raw["extra"] == {"epoch": 2}
    assert set(raw["versions"]) == {"torch", "torchvision", "python", "robust"}
    assert raw["versions"]["torch"] == torch.__version__
    loaded, checkpoint = load_checkpoint(path)
    assert not loaded.training and checkpoint["model_id"] == "cifar10-gauss-s025"
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_truncated_checkpoint_raises_checkpoint_error(saved: tuple[Path, torch.nn.Module]) -> None:
    path, _ = saved
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.pt") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and isinstance(info.value, RuntimeError)


def test_flipped_weight_bytes_are_detected(saved: tuple[Path, torch.nn.Module]) -> None:
    path, model = saved
    data = bytearray(path.read_bytes())
    weights = model[1].fc.weight.detach().numpy().tobytes()
    at = data.find(weights)
    assert at > 0
    data[at + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.pt"):
        load_checkpoint(path)


def test_other_files_and_bad_params_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="lacks state_dict"):
        load_checkpoint(tmp_path / "other.pt")
    model = build_model("tiny_cnn", "synthetic")
    for params in ({"sigma": np.float64(0.25)}, {"out": Path("x")}):
        with pytest.raises(ValueError, match="plain types"):
            save_checkpoint(tmp_path / "x.pt", model, model_id="m", arch="tiny_cnn",
                            dataset="synthetic", params=params)  # fmt: skip
    assert not (tmp_path / "x.pt").exists()
