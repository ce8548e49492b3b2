"""Published checkpoints converted into our models: ``Sequential(Normalize(mean, std), net)``.

Two source formats, both ``torch.save`` dicts read with ``weights_only=True`` (the legacy, non-zip
format of torch 1.x included):

``cohen``       Cohen et al. (2019), locuslab/smoothing: ``{epoch, arch, state_dict, optimizer}``.
                The saved module was ``Sequential(NormalizeLayer, net)``; the NormalizeLayer holds
                no state, so the keys are ``1.<net>`` (CIFAR) or ``1.module.<net>`` (ImageNet, net
                in DataParallel), and the normalisation is the dataset's (the same constants as
                ours).
``robustness``  the MadryLab robustness library: ``{model, optimizer, schedule, epoch}`` (``model``
                was ``state_dict`` in early versions) of an AttackerModel: ``module.model.<net>``,
                a duplicate ``module.attacker.model.<net>``, and the input normaliser
                ``module.normalizer.new_mean``/``new_std`` (shape [3, 1, 1]), duplicated under
                ``module.attacker.normalize``.

The normalisation found in the source replaces the dataset's in ``Normalize``, so the converted
model maps [0, 1] images to the same logits as the original. Every source tensor must be used and
every weight of our model filled (a strict load); anything else is an error.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from robust.checkpoint import CheckpointError, read_torch_file
from robust.download import cached_fetch, check_member_name, extract_member
from robust.models import build_model

_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


class PretrainedError(RuntimeError):
    """A published checkpoint cannot be read or does not fit the named architecture (one line)."""


def read_source(path: Path) -> dict:
    """The dict in a published checkpoint file, loaded without executing code.

    Raises:
        FileNotFoundError: no file at ``path``.
        PretrainedError: unreadable, not a dict, or a pickle that needs Python code (for example
            one written with ``dill``); the message names the first global it needs.
    """
    try:
        source = read_torch_file(path, "pretrained checkpoint")
    except CheckpointError as err:
        needed = _GLOBAL.search(str(err.__cause__))
        if needed is None:
            raise PretrainedError(str(err)) from None
        raise PretrainedError(
            f"{Path(path).name}: needs the Python global {needed.group(1).rstrip('.')} to load, "
            "which a weights-only load refuses (a pickle written with a custom pickler such as "
            "dill?); see README, Pretrained checkpoints"
        ) from None
    if not isinstance(source, dict):
        raise PretrainedError(f"{Path(path).name}: holds a {type(source).__name__}, not a dict")
    return source


def fetch_source(
    url: str, sha256: str | None, member: str | None, fmt: str, cache_dir: Path
) -> tuple[dict, str]:
    """(the dict of a published checkpoint, the sha256 of its download): ``url`` downloaded into
    the shared cache (``robust.download.cached_fetch``; sha256 None = unpinned), ``member``
    of the archive extracted if given, read with :func:`read_source`. The format and the member
    path are checked before anything is downloaded."""
    if fmt not in EXTRACTORS:
        raise ValueError(f"unknown pretrained format '{fmt}'; valid: {', '.join(EXTRACTORS)}")
    if member is not None:
        check_member_name(member)
    path, digest = cached_fetch(url, Path(cache_dir), sha256)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        if member is not None:
            path = extract_member(path, member, Path(scratch) / "member")
        return read_source(path), digest


def _state_dict(source: dict, keys: tuple[str, ...], fmt: str) -> dict[str, Tensor]:
    for key in keys:
        if isinstance(source.get(key), dict):
            return source[key]
    raise PretrainedError(
        f"not a {fmt} checkpoint: no {' or '.join(keys)} dict among its keys "
        f"({', '.join(map(str, source))})"
    )


def _epoch(source: dict) -> int | None:
    """The epoch the source records, as a plain int (None when absent or not a number)."""
    epoch = source.get("epoch")
    if isinstance(epoch, Tensor) and epoch.numel() == 1:
        epoch = epoch.item()
    return epoch if type(epoch) is int else None


def _strip(state: dict[str, Tensor], prefix: str, fmt: str) -> dict[str, Tensor]:
    stray = [k for k in state if not k.startswith(prefix)]
    if stray:
        raise PretrainedError(
            f"{fmt} checkpoint has {len(stray)} keys outside '{prefix}' (e.g. {stray[0]})"
        )
    return {k[len(prefix) :]: v for k, v in state.items()}


def cohen_weights(source: dict, arch: str) -> tuple[dict[str, Tensor], Tensor | None, dict]:
    """(net state dict, None: the dataset's normalisation, provenance) of a Cohen et al. file."""
    state = _strip(_state_dict(source, ("state_dict",), "cohen"), "1.", "cohen")
    if state and all(k.startswith("module.") for k in state):  # DataParallel (ImageNet)
        state = _strip(state, "module.", "cohen")
    original = source.get("arch")  # Cohen et al. name their nets as we do (cifar_resnet110, ...)
    if original is not None and original != arch:
        raise PretrainedError(f"cohen checkpoint holds arch '{original}', not '{arch}'")
    return state, None, {"source_arch": original, "source_epoch": _epoch(source)}


def _normaliser(state: dict[str, Tensor], prefix: str) -> Tensor:
    try:
        mean, std = state.pop(f"{prefix}.new_mean"), state.pop(f"{prefix}.new_std")
    except KeyError:
        raise PretrainedError(f"robustness checkpoint lacks {prefix}.new_mean/new_std") from None
    return torch.stack([mean.reshape(-1), std.reshape(-1)]).float()  # [2, C]


def robustness_weights(source: dict, arch: str) -> tuple[dict[str, Tensor], Tensor | None, dict]:
    """(net state dict, [2, C] mean and std, provenance) of a robustness-library file.

    The attacker's copies of the net and of the normaliser must equal the main ones: they are
    the same modules in the library, so a difference means a damaged or foreign file.
    """
    state = _state_dict(source, ("model", "state_dict"), "robustness")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    norm = _normaliser(state, "normalizer")
    if not torch.equal(_normaliser(state, "attacker.normalize"), norm):
        raise PretrainedError("robustness checkpoint: the attacker's normaliser differs")
    attacker = {k: v for k, v in state.items() if k.startswith("attacker.")}
    copy = _strip(attacker, "attacker.model.", "robustness")
    net = _strip({k: v for k, v in state.items() if k not in attacker}, "model.", "robustness")
    if copy.keys() != net.keys() or not all(torch.equal(copy[k], net[k]) for k in net):
        raise PretrainedError("robustness checkpoint: the attacker's copy of the net differs")
    return net, norm, {"source_arch": arch, "source_epoch": _epoch(source)}


EXTRACTORS = {"cohen": cohen_weights, "robustness": robustness_weights}  # format -> extractor


def _describe(keys: list[str]) -> str:
    if not keys:
        return "none"
    return f"{len(keys)} ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})"


def convert(source: dict, fmt: str, arch: str, dataset: str) -> tuple[nn.Sequential, dict]:
    """Our ``arch`` model holding the weights of ``source`` (from :func:`read_source`), in format
    ``fmt`` (a key of ``EXTRACTORS``); ``dataset`` gives num_classes and default normalisation.

    Returns:
        (model in eval mode on the CPU, mapping [B, C, H, W] images in [0, 1] to logits;
        provenance: ``format``, ``source_arch``, ``source_epoch``, ``mean``, ``std``).

    Raises:
        PretrainedError: a key layout, shape or source architecture that does not fit ``arch``
            (missing or unused tensors are named).
    """
    net_state, norm, info = EXTRACTORS[fmt](source, arch)
    model = build_model(arch, dataset)
    expected = model.state_dict()
    if norm is None:  # the dataset's
        norm = torch.stack([expected["0.mean"].reshape(-1), expected["0.std"].reshape(-1)])
    elif norm.shape != (2, expected["0.mean"].numel()) or not bool((norm[1] > 0).all()):
        raise PretrainedError(f"{fmt} checkpoint: normaliser of shape {tuple(norm.shape)} unusable")
    # BN batch counters only drive momentum=None averaging, never inference; files from torch
    # before 0.4.1 lack them: zero unless the file has them.
    counters = [k for k in expected if k.endswith(".num_batches_tracked")]
    full = {k: torch.zeros_like(expected[k]) for k in counters}
    full |= {f"1.{k}": v for k, v in net_state.items()}
    full |= {"0.mean": norm[0].view(1, -1, 1, 1), "0.std": norm[1].view(1, -1, 1, 1)}
    missing = sorted(expected.keys() - full.keys())
    unexpected = sorted(full.keys() - expected.keys())
    if missing or unexpected:
        raise PretrainedError(
            f"{fmt} checkpoint does not fit arch '{arch}': missing {_describe(missing)}, "
            f"unused {_describe(unexpected)}"
        )
    try:
        model.load_state_dict(full, strict=True)
    except RuntimeError as err:  # shapes: torch lists every mismatch on its own line
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line]
        reason = lines[0] if lines else " ".join(str(err).split())[:300]
        raise PretrainedError(f"{fmt} checkpoint does not fit arch '{arch}': {reason}") from None
    info = {"format": fmt, **info, "mean": norm[0].tolist(), "std": norm[1].tolist()}
    return model.eval(), info
