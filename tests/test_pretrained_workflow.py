"""Pretrained models in the parameters and both workflows: cross-reference checks, Snakemake plans
(fetch, never train, for a pretrained id; config/imagenet.yaml as shipped) and, slow, the same
commands from DVC."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pipeline_utils import (
    copy_repo,
    dvc_commands,
    load_script,
    run,
    snakemake_commands,
    snakemake_jobs,
)
from robust import config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
SMOKE = config.load_yaml(ROOT / "config" / "smoke.yaml")
ENTRY = {
    "url": "https://example.org/download?id=1&export=download&confirm=t",
    "sha256": None,
    "format": "cohen",
    "member": "models/synthetic/tiny/noise_0.25/checkpoint.pth.tar",
    "arch": "tiny_cnn",
    "dataset": "synthetic",
    "kind": "gaussian",
    "sigma": 0.25,
    "norm": "l2",
    "eps": 0.0,
}


def with_pretrained() -> dict:
    """The smoke parameters plus two pretrained models that a certify run, a PAG column, a judge and
    the training table use."""
    params = copy.deepcopy(SMOKE)
    params["pretrained"] = {
        "ext-gauss-025": dict(ENTRY),
        "ext-std": {**ENTRY, "format": "robustness", "member": "none", "kind": "standard"}
        | {"sigma": 0.0, "sha256": "ab" * 32, "url": "https://example.org/ext_std.pt"},
    }
    run = next(iter(params["certify"].values()))
    params["certify"]["ext-gauss-025"] = {**run, "model": "ext-gauss-025", "sigma": 0.25}
    params["pag"]["columns"]["ext-smooth-025"] = {"model": "ext-gauss-025", "sigma": 0.25}
    params["pag_metrics"]["judges"][0] = "ext-std"
    params["report"]["training"]["models"].append("ext-gauss-025")
    return params


def errors(params: dict) -> str:
    with pytest.raises(config.ParamsError) as err:
        config.check(params, SCHEMA, root=ROOT)
    return str(err.value)


def test_pretrained_ids_serve_wherever_a_model_id_does():
    config.check(with_pretrained(), SCHEMA, root=ROOT)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("sigma", 0.0, "pretrained.ext-gauss-025.sigma: 0.0 does not fit kind gaussian"),
        ("member", "none", "pretrained.ext-gauss-025.member: cohen checkpoints come in one"),
        ("member", "models/../x.pt", "must be a relative path without '..'"),
        ("sha256", "abc", "pretrained.ext-gauss-025.sha256"),
        ("url", "https://example.org/it's", "pretrained.ext-gauss-025.url"),
        ("format", "dill", "pretrained.ext-gauss-025.format"),
        ("dataset", "cifar10", "pretrained.ext-gauss-025.dataset: unknown dataset"),
    ],
)
def test_bad_pretrained_entries_are_named(key, value, expected):
    params = with_pretrained()
    params["pretrained"]["ext-gauss-025"][key] = value
    assert expected in errors(params)


def test_cross_references_of_pretrained_and_pairs():
    params = with_pretrained()
    params["pretrained"]["synthetic-std"] = dict(ENTRY)
    assert "pretrained.synthetic-std: the id is also in models" in errors(params)
    params = with_pretrained()
    params["pag"]["settings"]["idx"] = [0, 1]
    assert "pag.settings.idx: 2 values for 32 pairs" in errors(params)
    params = with_pretrained()
    params["pag"]["settings"] |= {"pairs": 2, "idx": [0, 500], "targets": [3, 10]}
    message = errors(params)
    assert "pag.settings.idx: 500 is out of range" in message
    assert "pag.settings.targets: 10 is out of range" in message
    params = with_pretrained()
    params["models"] = {}
    params["pretrained"] = {}
    assert "models: no model at all" in errors(params)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("pretrained") / "repo")


def _plan(repo: Path, configfile: Path, *extra: str) -> str:
    cmd = ["snakemake", "-n", "-p", "--configfile", str(configfile), "--replace-workflow-config"]
    return run([*cmd, *extra], repo).stdout


def test_snakemake_fetches_pretrained_models_and_trains_the_others(repo, tmp_path):
    configfile = tmp_path / "with_pretrained.yaml"
    configfile.write_text(yaml.safe_dump(with_pretrained(), sort_keys=False))
    out = _plan(repo, configfile)
    jobs = snakemake_jobs(out)
    assert jobs["fetch_pretrained"] == 2 and jobs["train"] == len(SMOKE["models"])
    assert jobs["evaluate"] == len(SMOKE["models"]) + 2
    fetch = [c for c in snakemake_commands(out) if "fetch_pretrained.py" in c]
    assert (
        "python scripts/fetch_pretrained.py --model_id ext-gauss-025 --url "
        "'https://example.org/download?id=1&export=download&confirm=t' --sha256 None "
        "--format cohen --member models/synthetic/tiny/noise_0.25/checkpoint.pth.tar "
        "--arch tiny_cnn --dataset synthetic --kind gaussian --sigma 0.25 --norm l2 --eps 0.0 "
        "--data resources/data/synthetic.pt --cache_dir resources/downloads/pretrained "
        "--out results/models/ext-gauss-025.pt "
        "--record results/train/ext-gauss-025.json --log logs/pretrained/ext-gauss-025.log"
    ) in fetch


def test_snakemake_plans_the_imagenet_configuration(repo):
    """No ImageNet folder is needed to plan: only the prepare job reads it."""
    jobs = snakemake_jobs(_plan(repo, repo / "config" / "imagenet.yaml"))
    assert jobs["fetch_pretrained"] == 6 and jobs["prepare_data"] == 1
    assert jobs["certify"] == 3 and jobs["evaluate"] == 6 and "train" not in jobs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["imagenet", "pretrained"])
def test_dvc_runs_the_same_commands(tmp_path, name):
    """`dvc repro --dry --force` and `snakemake -n -p --forceall` agree on the shipped configs."""
    repo = copy_repo(tmp_path / "repo", params=ROOT / "config" / f"{name}.yaml")
    for folder in ("results/pag", "results/certify", "results/eval", "results/train"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("paper/figures", "paper/tables"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    dvc = dvc_commands(run(["dvc", "repro", "--dry", "--force"], repo).stdout)
    smk = snakemake_commands(run(["snakemake", "-n", "-p", "--forceall"], repo).stdout)
    # DVC quotes the CIFAR-10 address (it holds '~') when it unpacks ${item}; Snakemake does not.
    cifar = "prepare_data.py --dataset cifar10"
    dvc, smk = ([c for c in cmds if cifar not in c] for cmds in (dvc, smk))
    assert sorted(dvc) == sorted(smk)
    assert sum("fetch_pretrained.py" in c for c in smk) == (6 if name == "imagenet" else 9)


def test_training_figure_shows_a_pretrained_model_without_curves(tmp_path):
    import json

    fig = load_script("fig_training")
    epoch = {"epoch": 1, "loss": 1.0, "test_accuracy": 0.5, "test_noise_accuracy": 0.4}
    trained = {"model_id": "a", "kind": "standard", "params": {}, "epochs": [epoch]}
    pretrained = {"model_id": "b", "kind": "gaussian", "params": {"sigma": 0.25}, "epochs": []}
    pretrained["pretrained"] = {"format": "cohen", "sha256": "0" * 64}
    for name, record in (("a", trained), ("b", pretrained)):
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    argv = ["--models", "a", "b", "--train_dir", str(tmp_path), "--out", str(tmp_path / "fig")]
    assert fig.main([*argv, "--log", str(tmp_path / "fig.log")]) == 0
    assert (tmp_path / "fig.pdf").stat().st_size > 0
