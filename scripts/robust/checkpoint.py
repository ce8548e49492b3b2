"""Model checkpoints as plain dicts, loadable with ``torch.load(..., weights_only=True)``.

A checkpoint holds what is needed to rebuild and audit a model, and no pickled classes:

    state_dict  {name: CPU tensor} of ``Sequential(Normalize, net)`` (keys ``0.*`` and ``1.*``)
    sha256      digest of the state dict's names, dtypes, shapes and bytes (catches corruption)
    model_id    the run's readable id, e.g. "cifar10-gauss-s025"
    arch        key of ``robust.models.ARCHITECTURES``
    dataset     the id of the dataset in the parameters
    dataset_kind  its kind, a key of ``robust.data.DATASETS`` (gives num_classes, mean and std)
    params      the parameters that produced the model (plain types only)
    versions    {"torch", "torchvision", "python", "robust"}
    extra       anything else the caller wants to keep (plain types or tensors)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import robust
from robust.io import tensor_digest, torch_save
from robust.models import build_model

_PLAIN = (str, int, float, bool, type(None))
_REQUIRED = ("state_dict", "sha256", "model_id", "arch", "dataset", "dataset_kind", "params",
             "versions", "extra")  # fmt: skip


class CheckpointError(RuntimeError):
    """A checkpoint (or training state) file cannot be read or does not match its model."""


def _check_plain(value: Any, where: str) -> None:
    """Raise ValueError unless ``value`` is built from plain types (and tensors) only."""
    # Exact types: subclasses such as numpy.float64 or named tuples would need their class to load.
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"{where} has a non-string key {key!r}")
            _check_plain(item, f"{where}.{key}")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise ValueError(f"{where} is a {type(value).__name__}; checkpoints hold plain types only")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    model_id: str,
    arch: str,
    dataset: str,
    params: dict,
    dataset_kind: str | None = None,
    extra: dict | None = None,
) -> None:
    """Write ``model``'s weights and provenance to ``path`` atomically; ``dataset_kind`` defaults
    to ``dataset`` (an id that is also the name of its kind).

    Raises:
        ValueError: ``params`` or ``extra`` holds a non-plain value (numpy, dataclass, Path, ...).
    """
    extra = {} if extra is None else extra
    _check_plain(params, "params")
    _check_plain(extra, "extra")
    try:  # the installed version, without importing torchvision (slow, fragile on CPU-only torch)
        torchvision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        torchvision = None
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    checkpoint = {
        "state_dict": state_dict,
        "sha256": tensor_digest(state_dict),
        "model_id": model_id,
        "arch": arch,
        "dataset": dataset,
        "dataset_kind": dataset if dataset_kind is None else dataset_kind,
        "params": params,
        "versions": {
            "torch": str(torch.__version__),  # TorchVersion would need its class to load
            "torchvision": torchvision,
            "python": platform.python_version(),
            "robust": robust.__version__,
        },
        "extra": extra,
    }
    torch_save(checkpoint, path)


def read_torch_file(path: str | os.PathLike, what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; any read failure becomes a one-line CheckpointError.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: truncated, corrupt or not a weights-only torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # zip, unpickling and storage errors all mean the same: unreadable
        lines = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")
        raise CheckpointError(
            f"cannot read {what} {path} (truncated or corrupt?): {reason}"
        ) from err


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[nn.Sequential, dict]:
    """(model in eval mode on ``map_location``, checkpoint dict) of a :func:`save_checkpoint` file.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: unreadable, incomplete or corrupt file, or weights that do not fit.
    """
    checkpoint = read_torch_file(path, "checkpoint", map_location)
    missing = [k for k in _REQUIRED if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}; not a robust checkpoint"
        )
    if tensor_digest(checkpoint["state_dict"]) != checkpoint["sha256"]:
        raise CheckpointError(f"checkpoint {path} is corrupt: weights do not match their sha256")
    try:
        model = build_model(checkpoint["arch"], checkpoint["dataset_kind"])
        model.load_state_dict(checkpoint["state_dict"])
    except (ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:300]  # torch's message spans lines
        raise CheckpointError(
            f"checkpoint {path} does not fit arch '{checkpoint['arch']}' on "
            f"'{checkpoint['dataset_kind']}': {reason}"
        ) from err
    return model.to(map_location).eval(), checkpoint
