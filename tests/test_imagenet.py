"""ImageNet from a local folder (a manifest read lazily, Cohen et al.'s image order) and explicit
(start image, target) pairs for the PAG figure."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline_utils import load_script
from robust import data, imagenet


def _image(path: Path, value: int, size: tuple[int, int] = (300, 260)) -> None:
    from PIL import Image  # installed with matplotlib and torchvision

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 0)).save(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny ImageNet: the 1000 class folders in val/ and train/, images in three classes."""
    root = tmp_path_factory.mktemp("imagenet")
    wnids = [f"n{i:08d}" for i in range(1000)]
    for split in ("val", "train"):
        for wnid in wnids:
            (root / split / wnid).mkdir(parents=True)
    for label, count in ((0, 2), (5, 3), (999, 1)):
        for k in range(count):
            _image(root / "val" / wnids[label] / f"ILSVRC2012_val_{label:04d}{k}.JPEG", 10 * k)
            _image(root / "train" / wnids[label] / f"{wnids[label]}_{k}.png", 20 * k)
    (root / "val" / wnids[5] / "notes.txt").write_text("not an image")
    return root


def _prepare(root: Path, out: Path, n_train: int, n_test: int) -> int:
    return load_script("prepare_data").main(
        [
            *("--dataset", "imagenet", "--kind", "imagenet", "--folder", str(root)),
            *("--n_train", str(n_train), "--n_test", str(n_test), "--out", str(out)),
            *("--work_dir", str(out.parent / "work"), "--log", str(out.parent / "prepare.log")),
        ]
    )


def test_manifest_keeps_imagefolder_order_and_loads_lazily(root, tmp_path):
    out = tmp_path / "imagenet.pt"
    assert _prepare(root, out, n_train=3, n_test=6) == 0
    test = data.open_split(out, "test")
    assert len(test) == 6 and test.num_classes == 1000
    assert test.labels.tolist() == [0, 0, 5, 5, 5, 999]  # sorted folders, sorted files
    x, y = test.get([2, 5])
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32 and y.tolist() == [5, 999]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    train = data.open_split(out, "train")
    assert train.labels.tolist() == [0, 5, 5]  # 3 of 6, evenly spaced: 0, 2, 4


def test_missing_folder_and_short_splits_are_one_line_errors(root, tmp_path, capsys):
    out = tmp_path / "imagenet.pt"
    assert _prepare(tmp_path / "nowhere", out, 0, 1) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "ImageNet folder not found" in err and "\n" not in err
    assert _prepare(root, out, 0, 7) == 2
    assert "7 images asked but 6 found" in capsys.readouterr().err
    assert not out.exists()
    assert _prepare(root / "val", out, 0, 1) == 2  # a root without val/
    assert _prepare(root, out, 0, 6) == 0
    with pytest.raises(data.DataError, match="no 'train' split"):
        data.open_split(out, "train")


def test_evenly_spaced_keeps_all_when_asked_for_all():
    assert imagenet.evenly_spaced(50000, 50000)[:3] == [0, 1, 2]
    assert imagenet.evenly_spaced(10, 4) == [0, 2, 5, 7]


def test_explicit_pairs_replace_the_drawn_ones():
    from robust import pag as make_pag

    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    idx, targets = make_pag.pairs(labels, 10, 2, 1, 0, idx=[5, 3], targets=[9, 9])
    assert idx.tolist() == [5, 3] and targets.tolist() == [9, 9]
    idx, targets = make_pag.pairs(labels, 10, 2, 2, 0, idx=[5, 3])  # targets still drawn
    assert idx.tolist() == [5, 3] and (targets != labels[idx]).all()
    assert make_pag.pairs(labels, 10, 2, 2, 0)[0].tolist() == [0, 2]
    with pytest.raises(ValueError, match="idx needs 2 indices below 6"):
        make_pag.pairs(labels, 10, 2, 1, 0, idx=[6, 0])
    with pytest.raises(ValueError, match="targets needs 2 classes below 10"):
        make_pag.pairs(labels, 10, 2, 1, 0, targets=[10, 0])
