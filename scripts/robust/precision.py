"""Arithmetic of the base classifier's forward pass inside the smoothing statistics.

"fp32" means IEEE float32, as in Cohen et al.'s code: on Ampere and newer GPUs PyTorch lets cuDNN
convolutions run in TensorFloat-32 (10 mantissa bits) unless told otherwise, which would silently
make the "fp32" base classifier a lower-precision one. ``ieee_fp32`` turns TF32 off for cuDNN and
cuBLAS while the statistics run and restores the caller's settings afterwards. "bf16" and "fp16"
run the forward pass under autocast; the noise is drawn and added in float32 either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["AUTOCAST", "PRECISIONS", "ieee_fp32", "tf32_flags"]

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _tf32_switches() -> dict[str, tuple[object, str, object]]:
    """{"cudnn"|"matmul": (namespace, attribute, value meaning IEEE float32)}.

    torch >= 2.9 has per-backend ``fp32_precision`` strings; older versions only ``allow_tf32``.
    The new names are preferred where they exist: the old ``cudnn.allow_tf32`` getter raises once
    the new API has set convolutions and RNNs differently.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return {"cudnn": (conv, "fp32_precision", "ieee"),
                "matmul": (matmul, "fp32_precision", "ieee")}  # fmt: skip
    return {"cudnn": (cudnn, "allow_tf32", False), "matmul": (matmul, "allow_tf32", False)}


def tf32_flags() -> dict[str, object]:
    """The current value of each switch, e.g. {"cudnn": "tf32", "matmul": "none"} (torch >= 2.9)
    or {"cudnn": True, "matmul": False} (older): what runs outside ``ieee_fp32`` use."""
    return {key: getattr(space, name) for key, (space, name, _) in _tf32_switches().items()}


@contextmanager
def ieee_fp32() -> Iterator[None]:
    """Within the block, float32 convolutions and matrix products use no TF32 tensor cores.

    Process-wide PyTorch flags (not thread-local); the previous values come back on exit, also
    after an exception. On the CPU the flags change nothing.
    """
    switches = list(_tf32_switches().values())
    saved = [getattr(space, name) for space, name, _ in switches]
    try:
        for space, name, value in switches:
            setattr(space, name, value)
        yield
    finally:
        for (space, name, _), value in zip(switches, saved, strict=True):
            setattr(space, name, value)
