"""Dataset registry and splits. Images come out as float32 tensors in [0, 1], shape [k, C, H, W];
normalisation is the model's first layer.

``cifar10`` and ``synthetic`` are prepared once into a single file (``torch.save`` of a plain dict,
loadable with ``weights_only=True``)::

    {"dataset", "x_train": uint8 [N,C,H,W], "y_train": int64 [N], "x_test": uint8 [M,C,H,W],
     "y_test": int64 [M], "class_names": list[str], "prototypes": uint8 [K,C,H,W] (synthetic),
     "meta", "sha256"}

``imagenet`` is read lazily from an image folder, directly or through its ``robust.imagenet``
manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from robust import imagenet
from robust.download import CIFAR10_CLASSES, DataError
from robust.io import sealed
from robust.synthetic import CLASS_NAMES as SYNTHETIC_CLASSES


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a dataset: classes, image shape (C, H, W) and normalisation constants."""

    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


# fmt: off
DATASETS: dict[str, DatasetInfo] = {
    # Cohen et al.'s CIFAR-10 constants.
    "cifar10": DatasetInfo(10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                           CIFAR10_CLASSES),
    # Round values near the pixel statistics of synthetic.generate(10000, seed=0): per-channel mean
    # 0.374 and std 0.267 (light shapes on darker backgrounds); they only condition the inputs.
    "synthetic": DatasetInfo(10, (3, 32, 32), (0.4, 0.4, 0.4), (0.25, 0.25, 0.25),
                             SYNTHETIC_CLASSES),
    # torchvision's ImageNet constants; real class names come from the image folder.
    "imagenet": DatasetInfo(1000, (3, 224, 224), (0.485, 0.456, 0.406),
                            (0.229, 0.224, 0.225), tuple(f"class_{i}" for i in range(1000))),
}
# fmt: on
_TENSOR_SPLITS = ("train", "test")
_CHUNK = 1000  # images converted to float at a time, to bound memory


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}") from None


class Split:
    """One split of a dataset: ``x`` uint8 [N, C, H, W] (tensor data sets) or ``loader`` (image
    folders: index -> float32 [C, H, W] in [0, 1], called lazily), ``labels`` int64 [N], one
    class name per class; ``kind`` is a key of ``DATASETS`` (shape and normalisation)."""

    def __init__(
        self,
        x: torch.Tensor | None,
        labels: torch.Tensor,
        class_names: Sequence[str],
        loader: Callable[[int], torch.Tensor] | None = None,
        kind: str = "",
    ) -> None:
        if (x is None) == (loader is None):
            raise ValueError("a Split takes exactly one of x (tensors) and loader (image folder)")
        if x is not None and len(x) != len(labels):
            raise ValueError(f"{len(x)} images but {len(labels)} labels")
        self._x = x
        self._loader = loader
        self.labels = labels
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.kind = kind

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, idx: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[k, C, H, W]`` (float32 in [0, 1]) and labels ``[k]`` at the given indices."""
        idx = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ValueError(f"index out of range for a split of {len(self)} images")
        if self._x is not None:
            x = self._x[idx].float().div_(255.0)
        else:
            x = torch.stack([self._loader(int(i)) for i in idx])
        return x, self.labels[idx]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split, shared (read-only): uint8 images [N, C, H, W] and int64 labels."""
        if self._x is None:
            raise ValueError("tensors() needs a prepared tensor dataset, not an image folder")
        return self._x, self.labels


def _load_prepared(path: Path) -> dict:
    """The dict of a prepared file or ImageNet manifest; DataError if missing or damaged."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: prepared dataset not found (run the prepare stage)") from None
    except Exception as err:  # truncated or corrupt files raise assorted errors
        reason = " ".join(str(err).split())[:200]
        raise DataError(
            f"{path}: prepared dataset is unreadable ({type(err).__name__}: {reason})"
        ) from None
    data = data if isinstance(data, dict) else {}  # then every key is missing
    kind = data.get("dataset")
    tensors = ("x_train", "y_train", "x_test", "y_test", "class_names", "sha256")
    required = ("dataset", *(("splits",) if kind == "imagenet" else tensors))
    missing = [key for key in required if key not in data]
    if missing:
        raise DataError(f"{path}: not a prepared dataset file (missing {', '.join(missing)}); "
                        "run its prepare stage again")  # fmt: skip
    info = dataset_info(str(kind))  # a kind we know
    if kind != "imagenet":
        if sealed(data)["sha256"] != data["sha256"]:
            raise DataError(f"{path}: prepared dataset is corrupt: its tensors do not match their "
                            "sha256; run its prepare stage again")  # fmt: skip
        for split in _TENSOR_SPLITS:
            y = data[f"y_{split}"]
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
                raise DataError(f"{path}: y_{split} holds labels outside 0..{info.num_classes - 1}"
                                "; run its prepare stage again")  # fmt: skip
    return data


def kind_of(path: Path) -> str:
    """The dataset kind of a prepared file or ImageNet manifest (it names its kind), or
    ``"imagenet"`` for an image-folder root: what chooses the loader, classes and normalisation,
    whatever id the parameters give the dataset."""
    path = Path(path)
    return "imagenet" if path.is_dir() else str(_load_prepared(path)["dataset"])


def open_split(path: Path, split: str) -> Split:
    """Open ``split`` (``"train"``/``"test"``) of a prepared ``.pt`` file or ImageNet manifest,
    or a sub-folder ``split`` of an image-folder root (``"val"``: ``path`` itself when it holds
    the class folders). Raises ValueError for an unknown split or kind, DataError for missing,
    corrupt or mismatched data."""
    path = Path(path)
    if path.is_dir():
        return Split(None, *imagenet.open_folder(path, split), kind="imagenet")
    data = _load_prepared(path)
    kind = str(data["dataset"])
    if kind == "imagenet":
        return Split(None, *imagenet.open_manifest(data, split, path), kind=kind)
    if split not in _TENSOR_SPLITS:
        raise ValueError(f"unknown split '{split}'; valid: {', '.join(_TENSOR_SPLITS)}")
    x, y = data[f"x_{split}"], data[f"y_{split}"]
    if x.dtype != torch.uint8 or x.shape[1:] != dataset_info(kind).shape or len(x) != len(y):
        raise DataError(f"{path}: x_{split} {tuple(x.shape)} {x.dtype} does not fit {kind}")
    return Split(x, y.long(), data["class_names"], kind=kind)


def prototypes(path: Path) -> torch.Tensor:
    """Clean class prototypes of a prepared synthetic file: float32 [K, C, H, W] in [0, 1]
    (ValueError for another dataset: use ``class_means``)."""
    data = _load_prepared(Path(path))
    if "prototypes" not in data:
        raise ValueError(f"{path}: dataset '{data['dataset']}' has no class prototypes")
    return data["prototypes"].float() / 255.0


def class_means(split: Split) -> torch.Tensor:
    """Mean image per class: float32 ``[K, C, H, W]`` in [0, 1] (CIFAR's stand-in for prototypes).

    Sums in float64, ``_CHUNK`` images at a time (a float copy of all of CIFAR-10 would need GBs).
    A class without images gets NaN, so a metric built on it cannot pass for a real number.
    """
    if not len(split):
        raise ValueError("class_means of an empty split")
    shape = split.get([0])[0].shape[1:]
    sums = torch.zeros((split.num_classes, *shape), dtype=torch.float64)
    for idx in torch.arange(len(split)).split(_CHUNK):
        x, y = split.get(idx)
        sums.index_add_(0, y, x.double())
    counts = torch.bincount(split.labels, minlength=split.num_classes).double()
    return (sums / counts.view(-1, 1, 1, 1)).float()
