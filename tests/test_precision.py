"""robust.precision: "fp32" means IEEE float32 while the statistics run, then the caller's flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pipeline_utils import load_script
from robust import precision
from robust.fastcert import sample_counts_many
from robust.smoothing import Smooth


def flags() -> dict:
    return precision.tf32_flags()


def ieee() -> dict:
    return {key: value for key, (*_, value) in precision._tf32_switches().items()}


def test_ieee_fp32_sets_and_restores_the_tf32_switches():
    before = flags()
    assert before != ieee()  # PyTorch's default lets cuDNN convolutions use TF32
    with precision.ieee_fp32():
        assert flags() == ieee()
    assert flags() == before
    with pytest.raises(RuntimeError, match="boom"), precision.ieee_fp32():
        raise RuntimeError("boom")
    assert flags() == before


def test_counts_run_in_ieee_fp32():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(flags())
            return torch.zeros(x.shape[0], 3)

    before = flags()
    Smooth(Spy(), 3, 0.25, chunk_size=10).sample_counts(torch.zeros(3, 4, 4), 25, 10, 0, "predict")
    assert seen == [ieee()] * 3
    seen.clear()
    xs = torch.zeros(2, 3, 4, 4)
    sample_counts_many(Spy(), xs, [0, 1], 3, 0.25, (("selection", 5),), 10, 10, 0)
    assert seen[1:] == [ieee()]  # the first call is the shape check
    assert flags() == before


def test_certify_cli_and_params_schema_offer_the_library_precisions():
    schema = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "workflow/schemas/params.schema.yaml").read_text()
    )
    enum = schema["$defs"]["smoothing_run"]["properties"]["precision"]["enum"]
    assert tuple(load_script("certify").PRECISIONS) == tuple(enum) == precision.PRECISIONS
