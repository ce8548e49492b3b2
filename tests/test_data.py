"""Dataset registry, prepared tensor files and image folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robust import data
from robust.data import (
    DataError,
    Split,
    class_means,
    dataset_info,
    kind_of,
    open_split,
    prototypes,
)
from robust.io import sealed


def _prepared(path, name="cifar10", n_train=30, n_test=12, with_prototypes=False):
    g = torch.Generator().manual_seed(0)
    content = {
        "dataset": name,
        "x_train": torch.randint(0, 256, (n_train, 3, 32, 32), dtype=torch.uint8, generator=g),
        "y_train": torch.arange(n_train) % 10,
        "x_test": torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g),
        "y_test": torch.arange(n_test) % 10,
        "class_names": [f"c{k}" for k in range(10)],
        "meta": {},
    }
    if with_prototypes:
        content["prototypes"] = torch.full((10, 3, 32, 32), 255, dtype=torch.uint8)
    content = sealed(content)
    torch.save(content, path)
    return content


def test_registry():
    assert set(data.DATASETS) == {"cifar10", "synthetic", "imagenet"}
    cifar = dataset_info("cifar10")
    assert cifar.mean == (0.4914, 0.4822, 0.4465) and cifar.std == (0.2023, 0.1994, 0.2010)
    assert cifar.class_names[0] == "airplane" and cifar.class_names[-1] == "truck"
    assert cifar.shape == (3, 32, 32) and cifar.num_classes == 10
    imagenet = dataset_info("imagenet")
    assert imagenet.num_classes == len(imagenet.class_names) == 1000
    assert imagenet.mean == (0.485, 0.456, 0.406) and imagenet.shape == (3, 224, 224)
    synthetic = dataset_info("synthetic")
    assert synthetic.class_names[:2] == ("disc", "ring") and len(synthetic.std) == 3
    with pytest.raises(
        ValueError, match="unknown dataset 'mnist'; valid: cifar10, synthetic, imagenet"
    ):
        dataset_info("mnist")
    with pytest.raises(DataError, match="x.pt: prepared dataset not found"):
        open_split("x.pt", "train")


def test_open_split_of_a_prepared_file(tmp_path):
    path = tmp_path / "c.pt"
    content = _prepared(path)
    split = open_split(path, "test")
    assert len(split) == 12 and split.num_classes == 10 and split.class_names[0] == "c0"
    x, y = split.get([3, 0])
    assert x.dtype == torch.float32 and x.shape == (2, 3, 32, 32)
    assert torch.equal(x, content["x_test"][[3, 0]].float() / 255) and y.tolist() == [3, 0]
    assert 0.0 <= x.min() and x.max() <= 1.0
    xs, ys = split.tensors()
    assert xs.dtype == torch.uint8 and torch.equal(ys, content["y_test"])
    assert torch.equal(split.labels, content["y_test"])
    with pytest.raises(ValueError, match="out of range"):
        split.get([12])
    with pytest.raises(ValueError, match="unknown split 'val'; valid: train, test"):
        open_split(path, "val")
    assert split.kind == kind_of(path) == "cifar10"  # the file names its kind, not its id


def test_a_dataset_of_unknown_kind_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    content = _prepared(path)
    torch.save(sealed(content | {"dataset": "mnist"}), path)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; valid: cifar10, synthetic"):
        open_split(path, "train")


def test_missing_and_corrupt_prepared_files_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_split(tmp_path / "absent.pt", "train")
    path = tmp_path / "c.pt"
    _prepared(path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="unreadable") as err:
        open_split(truncated, "train")
    assert "\n" not in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"dataset": "cifar10", "x_train": torch.zeros(1)}, other)
    with pytest.raises(DataError, match="missing y_train, x_test, y_test, class_names"):
        open_split(other, "train")


def test_prototypes(tmp_path):
    path = tmp_path / "s.pt"
    _prepared(path, name="synthetic", with_prototypes=True)
    protos = prototypes(path)
    assert protos.dtype == torch.float32 and protos.shape == (10, 3, 32, 32)
    assert torch.all(protos == 1.0)
    plain = tmp_path / "c.pt"
    _prepared(plain)
    with pytest.raises(ValueError, match="no class prototypes"):
        prototypes(plain)


def test_class_means(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    content = _prepared(path, n_train=35)
    monkeypatch.setattr(data, "_CHUNK", 8)  # several chunks
    means = class_means(open_split(path, "train"))
    assert means.dtype == torch.float32 and means.shape == (10, 3, 32, 32)
    x, y = content["x_train"].double() / 255, content["y_train"]
    for k in (0, 4, 9):
        torch.testing.assert_close(means[k], x[y == k].mean(0).float())
    sparse = Split(content["x_train"][:3], content["y_train"][:3], [f"c{k}" for k in range(10)])
    means = class_means(sparse)
    assert not means[:3].isnan().any() and means[3:].isnan().all()  # no images: NaN, not zeros


def test_split_rejects_inconsistent_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        Split(None, torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        Split(torch.zeros(3, 3, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])


def _image_folder(root, sizes):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, size in sizes.items():
        (root / cls).mkdir(parents=True)
        for i, (width, height, mode) in enumerate(size):
            shape = (height, width, 3) if mode == "RGB" else (height, width)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"img{i}.png")


def test_imagenet_image_folder(tmp_path):
    sizes = {
        "n02": [(300, 260, "RGB"), (240, 320, "L")],  # a greyscale image comes out RGB
        "n01": [(256, 256, "RGB")],
    }
    _image_folder(tmp_path / "val", sizes)
    split = open_split(tmp_path, "val")
    assert split.class_names == ("n01", "n02") and split.num_classes == 2  # sorted, as ImageFolder
    assert split.labels.tolist() == [0, 1, 1]
    x, y = split.get(torch.tensor([2, 0]))
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [1, 0]
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(x[0, 0], x[0, 1]) and not torch.equal(x[1, 0], x[1, 1])  # grey: R == G
    means = class_means(split)
    assert means.shape == (2, 3, 224, 224) and math.isfinite(means.sum().item())
    with pytest.raises(ValueError, match="image folder"):
        split.tensors()

    # The root itself may hold the class folders; anything else is a one-line DataError.
    assert open_split(tmp_path / "val", "val").class_names == ("n01", "n02")
    with pytest.raises(DataError, match="no image folder for split 'train'"):
        open_split(tmp_path, "train")
    with pytest.raises(DataError, match="absent: prepared dataset not found"):
        open_split(tmp_path / "absent", "val")


def test_a_damaged_prepared_file_is_refused_in_one_line(tmp_path):
    """The prepared file carries the digest of its tensors: a flipped pixel byte or a label outside
    the classes is named before any job computes with it."""
    path = tmp_path / "c.pt"
    content = _prepared(path)
    flipped = content["x_train"].clone()
    flipped[0, 0, 0, 0] ^= 1
    torch.save(content | {"x_train": flipped}, path)
    with pytest.raises(DataError, match="c.pt: prepared dataset is corrupt: its tensors do not"):
        open_split(path, "test")
    labels = content["y_test"].clone()
    labels[0] = 10
    torch.save(sealed(content | {"y_test": labels}), path)  # a consistent digest, a bad label
    with pytest.raises(DataError, match=r"c.pt: y_test holds labels outside 0..9"):
        open_split(path, "train")
    unsealed = {k: v for k, v in content.items() if k != "sha256"}
    torch.save(unsealed, path)
    with pytest.raises(DataError, match="missing sha256"):
        open_split(path, "train")
