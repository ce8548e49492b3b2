"""ImageNet from a local folder, images loaded when used with Cohen et al.'s test transform
(Resize(256), CenterCrop(224)) as [0, 1] tensors.

A tensor copy of the 50,000 validation images would take 7.5 GB, so the prepare stage writes a
manifest of the image files of ``<folder>/val`` (and ``<folder>/train`` when ``n_train > 0``), one
sub-folder per class, in torchvision ImageFolder order (class folders sorted, then file paths):
image ``i`` of the test split is Cohen et al.'s ImageNet image ``i``, and label ``c`` the c-th
class folder (the ImageNet-1k index when the folders are the 1000 WordNet ids).

The manifest (``torch.save`` of a plain dict, loadable with ``weights_only=True``)::

    {"dataset": "imagenet", "folder": absolute root, "class_names": [folder name, ...],
     "splits": {"test": {"files": [path relative to root], "labels": int64 [N]}, "train": ...},
     "meta": {"n_train", "n_test", "found": {split: images found}}}
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from robust import io
from robust.download import DataError

NUM_CLASSES = 1000
FOLDERS = {"test": "val", "train": "train"}  # split -> sub-folder of the ImageNet root
# The extensions torchvision's ImageFolder accepts.
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# An opened split, in the order of robust.data.Split's arguments: labels int64 [N], class names,
# loader (index -> float32 [3, 224, 224] in [0, 1])
SplitParts = tuple[torch.Tensor, list[str], Callable[[int], torch.Tensor]]


def _scan(folder: Path) -> tuple[list[str], list[str], list[int]]:
    """(class folders, image paths relative to ``folder``, their labels) in ImageFolder order."""
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        for root, _, names in sorted(os.walk(folder / name, followlinks=True)):
            for file in sorted(names):
                if file.lower().endswith(EXTENSIONS):
                    files.append(os.path.relpath(os.path.join(root, file), folder))
                    labels.append(label)
    return classes, files, labels


def evenly_spaced(total: int, n: int) -> list[int]:
    """n indices spread over range(total): i * total // n (all of them when n == total)."""
    return [i * total // n for i in range(n)]


def prepare_imagenet(out: Path, folder: Path, n_train: int, n_test: int) -> None:
    """Write the manifest ``out`` of an ImageNet root ``folder``, keeping ``n_test`` validation
    and ``n_train`` training images evenly spaced (every class represented; all 50,000 validation
    images keep Cohen et al.'s indices). Raises DataError for a missing folder, not 1000 class
    folders, or fewer images than asked."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise DataError(
            f"{folder}: ImageNet folder not found (datasets.<id>.folder must hold val/ and, "
            "for n_train > 0, train/, each with one sub-folder per class)"
        )
    splits, names, found = {}, None, {}
    for split, n in (("test", n_test), ("train", n_train)):
        if n == 0:
            continue
        root = folder / FOLDERS[split]
        if not root.is_dir():
            raise DataError(f"{root}: not found; the {split} split needs it (n images: {n})")
        classes, files, labels = _scan(root)
        if len(classes) != NUM_CLASSES or (names is not None and classes != names):
            raise DataError(
                f"{root}: {len(classes)} class folders; ImageNet labels need the same "
                f"{NUM_CLASSES} class folders in val/ and train/"
            )
        if n > len(files):
            raise DataError(f"{root}: {n} images asked but {len(files)} found")
        keep = evenly_spaced(len(files), n)
        paths = [os.path.join(FOLDERS[split], files[i]) for i in keep]
        splits[split] = {"files": paths, "labels": torch.tensor(labels)[keep]}
        names, found[split] = classes, len(files)
    manifest = {"dataset": "imagenet", "folder": str(folder), "class_names": names or []}
    manifest |= {"splits": splits, "meta": {"n_train": n_train, "n_test": n_test, "found": found}}
    io.torch_save(manifest, out)


def _loader(root: Path, files: list[str]) -> Callable[[int], torch.Tensor]:
    """index ``i`` -> image ``root / files[i]`` as float32 [3, 224, 224] in [0, 1]."""
    from robust._torchvision import import_torchvision

    tv = import_torchvision()
    transform = tv.transforms.Compose(
        [tv.transforms.Resize(256), tv.transforms.CenterCrop(224), tv.transforms.ToTensor()]
    )

    def load(i: int) -> torch.Tensor:
        try:
            return transform(tv.datasets.folder.default_loader(str(root / files[i])))
        except OSError as err:
            reason = " ".join(str(err).split())
            raise DataError(f"{root / files[i]}: unreadable image ({reason})") from None

    return load


def open_manifest(manifest: dict, split: str, path: Path) -> SplitParts:
    """``split`` of ``manifest`` (the dict of the file ``path``) opened; DataError for a split not
    prepared or, when loading, a missing or unreadable image."""
    if split not in manifest["splits"]:
        raise DataError(f"{path}: no '{split}' split in this ImageNet manifest")
    entry, root = manifest["splits"][split], Path(manifest["folder"])
    return entry["labels"], list(manifest["class_names"]), _loader(root, entry["files"])


def open_folder(root: Path, split: str) -> SplitParts:
    """An image folder read directly, opened: ``root/split``, or for split "val" ``root`` itself
    when it holds the class folders."""
    folder = root / split
    if not folder.is_dir():
        if split != "val" or not any(child.is_dir() for child in root.iterdir()):
            raise DataError(f"{root}: no image folder for split '{split}' (expected {folder})")
        folder = root
    classes, files, labels = _scan(folder)
    if not files:
        raise DataError(f"{folder}: unusable image folder: no images in its class folders")
    return torch.tensor(labels), classes, _loader(folder, files)
