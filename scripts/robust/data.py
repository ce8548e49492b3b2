"""Dataset registry and splits. Images always come out as float32 tensors in [0, 1], shape [k, C, H, W];
normalisation is the model's first layer.

``cifar10`` and ``synthetic`` are prepared once into a single file (``torch.save`` of a plain dict, loadable
with ``weights_only=True``)::

    {"dataset", "x_train": uint8 [N,C,H,W], "y_train": int64 [N], "x_test": uint8 [M,C,H,W],
     "y_test": int64 [M], "class_names": list[str], "prototypes": uint8 [K,C,H,W] (synthetic), "meta"}

``imagenet`` is read lazily from an image-folder tree (Resize(256), CenterCrop(224)).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robust import io
from robust.synthetic import CLASS_NAMES as SYNTHETIC_CLASSES
from robust.download import DataError, extract_tar, fetch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a dataset: classes, image shape (C, H, W) and normalisation constants."""

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS: dict[str, DatasetInfo] = {
    # Cohen et al.'s CIFAR-10 constants.
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                           CIFAR10_CLASSES),
    # Round values near the synthetic set's pixel mean and std (light shapes on darker backgrounds).
    "synthetic": DatasetInfo("synthetic", 10, (3, 32, 32), (0.4, 0.4, 0.4), (0.25, 0.25, 0.25),
                             SYNTHETIC_CLASSES),
    "imagenet": DatasetInfo("imagenet", 1000, (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                            tuple(f"class_{i}" for i in range(1000))),
}


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}") from None


def _read_batches(folder: Path, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")  # noqa: S301 - verified archive
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
            raise DataError(f"{path.name}: unreadable CIFAR-10 batch in {folder}: {err}") from None
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def prepare_cifar10(out: Path, work_dir: Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5,
                    archive: Path | None = None, n_train: int | None = None,
                    n_test: int | None = None) -> None:
    """Download (or copy), verify and extract CIFAR-10, then write the prepared file ``out`` atomically."""
    work_dir = Path(work_dir)
    tarball = fetch(url, work_dir / "cifar-10-python.tar.gz", md5, archive=archive)
    folder = extract_tar(tarball, work_dir / "extracted") / "cifar-10-batches-py"
    x_train, y_train = _read_batches(folder, [f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = _read_batches(folder, ["test_batch"])
    io.torch_save({
        "dataset": "cifar10", "x_train": x_train[:n_train].clone(), "y_train": y_train[:n_train].clone(),
        "x_test": x_test[:n_test].clone(), "y_test": y_test[:n_test].clone(),
        "class_names": list(CIFAR10_CLASSES), "meta": {"url": url, "md5": md5},
    }, out)


def prepare_synthetic(out: Path, seed: int, n_train: int, n_test: int) -> None:
    """Generate the synthetic dataset into ``out`` (see robust.synthetic)."""
    from robust import synthetic

    synthetic.prepare_synthetic(Path(out), seed=seed, n_train=n_train, n_test=n_test)


class Split:
    """One split of a dataset. ``get`` returns float32 images in [0, 1] and int64 labels."""

    def __init__(self, x: torch.Tensor | None, labels: torch.Tensor, class_names: Sequence[str],
                 loader=None) -> None:
        self._x = x  # uint8 [N, C, H, W] for tensor datasets
        self._loader = loader  # index -> float [C, H, W] for image folders
        self.labels = labels
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)

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
        """The whole split: uint8 images ``[N, C, H, W]`` and int64 labels (tensor datasets only)."""
        if self._x is None:
            raise ValueError("tensors() needs a prepared tensor dataset, not an image folder")
        return self._x, self.labels


def _load_prepared(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: prepared dataset not found (run the prepare stage)") from None
    except Exception as err:  # truncated or corrupt files raise assorted errors
        raise DataError(f"{path}: prepared dataset is unreadable ({type(err).__name__})") from None


def _imagenet_split(root: Path, split: str) -> Split:
    from robust._torchvision import import_torchvision

    tv = import_torchvision()
    folder = root / split if (root / split).is_dir() else root
    if not folder.is_dir():
        raise DataError(f"{folder}: ImageNet folder not found")
    transform = tv.transforms.Compose([
        tv.transforms.Resize(256), tv.transforms.CenterCrop(224), tv.transforms.ToTensor(),
    ])
    images = tv.datasets.ImageFolder(str(folder), transform=transform)
    labels = torch.tensor(images.targets, dtype=torch.long)
    return Split(None, labels, images.classes, loader=lambda i: images[i][0])


def open_split(name: str, path: Path, split: str) -> Split:
    """Open ``split`` of dataset ``name``: a prepared file (cifar10, synthetic) or a folder (imagenet)."""
    info = dataset_info(name)
    path = Path(path)
    if name == "imagenet":
        return _imagenet_split(path, split)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split '{split}'; valid: train, test")
    data = _load_prepared(path)
    if data.get("dataset") != name:
        raise DataError(f"{path}: holds dataset '{data.get('dataset')}', not '{name}'")
    return Split(data[f"x_{split}"], data[f"y_{split}"], data.get("class_names", info.class_names))


def prototypes(path: Path) -> torch.Tensor:
    """Clean class prototypes of a prepared synthetic file: float32 ``[K, C, H, W]`` in [0, 1]."""
    data = _load_prepared(Path(path))
    if "prototypes" not in data:
        raise ValueError(f"{path}: dataset '{data.get('dataset')}' has no class prototypes")
    return data["prototypes"].float() / 255.0


def class_means(split: Split) -> torch.Tensor:
    """Mean image per class, float32 ``[K, C, H, W]`` (the CIFAR-10 stand-in for prototypes)."""
    x, y = split.tensors()
    sums = torch.zeros((split.num_classes, *x.shape[1:]), dtype=torch.float64)
    sums.index_add_(0, y, x.double())
    counts = torch.bincount(y, minlength=split.num_classes).clamp_min(1).double()
    return (sums / counts.view(-1, 1, 1, 1) / 255.0).float()
