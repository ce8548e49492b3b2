"""Dataset ids are free: two entries of kind cifar10 (a format-faithful archive and a subset of it)
are prepared and trained on side by side by both tools; the kind, not the id, chooses the loader,
classes and normalisation, and every file is keyed by the id."""

from __future__ import annotations

import hashlib

import pytest
import torch
import yaml

from pipeline_utils import copy_repo, run
from test_download import _archive, _members

pytestmark = pytest.mark.slow
MODELS = {"c10-std": "cifar10", "c10-small-std": "cifar10-small"}


def with_two_cifar10_entries(repo, tmp_path) -> None:
    """The smoke parameters plus two cifar10-kind datasets and a model on each."""
    data = _archive(_members())  # 20 training and 3 test images in CIFAR-10's published format
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(data)
    source = {"kind": "cifar10", "url": archive.as_uri(), "md5": hashlib.md5(data).hexdigest(),
              "archive": "none", "n_test": 3}  # fmt: skip
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["datasets"] |= {"cifar10": source | {"n_train": 20},
                           "cifar10-small": source | {"n_train": 8}}  # fmt: skip
    recipe = params["models"]["synthetic-std"] | {
        "epochs": 1,
        "warmup_epochs": 0,
        "batch_size": 4,
        "eval_size": 3,
    }
    params["models"] |= {model: recipe | {"dataset": dataset} for model, dataset in MODELS.items()}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_two_cifar10_entries_train_side_by_side_in_both_tools(tmp_path):
    built = {}
    for tool, cmd in (
        ("snakemake", ["snakemake", "--cores", "2", *(f"results/models/{m}.pt" for m in MODELS)]),
        ("dvc", ["dvc", "repro", *(f"train@{m}" for m in MODELS)]),
    ):
        repo = copy_repo(tmp_path / tool)
        with_two_cifar10_entries(repo, tmp_path)
        run(cmd, repo, timeout=900)
        built[tool] = repo
    repo = built["snakemake"]
    small = torch.load(repo / "resources/data/cifar10-small.pt", weights_only=True)
    full = torch.load(repo / "resources/data/cifar10.pt", weights_only=True)
    assert (len(small["x_train"]), len(full["x_train"])) == (8, 20)
    assert torch.equal(small["x_train"], full["x_train"][:8])  # the first 8: a subset
    for model, dataset in MODELS.items():
        ckpt = torch.load(repo / f"results/models/{model}.pt", weights_only=True)
        assert (ckpt["dataset"], ckpt["dataset_kind"]) == (dataset, "cifar10")
        mean = ckpt["state_dict"]["0.mean"].flatten().tolist()  # CIFAR-10's normalisation
        assert mean == pytest.approx([0.4914, 0.4822, 0.4465])
        assert (built["dvc"] / f"results/models/{model}.pt").is_file()
        assert (built["snakemake"] / f"results/train/{model}.json").read_bytes() == (
            built["dvc"] / f"results/train/{model}.json"
        ).read_bytes()
