"""DVC for experiments on the smoke build: ``dvc exp run -S`` changes one parameter and reruns only
what depends on it, ``dvc params diff`` / ``dvc metrics diff`` show the change, ``dvc exp show``
lists the experiment, and ``dvc plots show`` renders the training and certified-accuracy curves.

Each test works on its own copy of the session's DVC build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_utils import dvc_ran_stages, run, workspace

pytestmark = pytest.mark.slow

RUN = "synthetic-gauss-025"


@pytest.fixture
def repo(dvc, tmp_path) -> Path:
    return workspace(dvc, tmp_path / "repo")


def test_exp_run_set_param_reruns_only_what_depends_on_it(repo):
    out = run(
        ["dvc", "exp", "run", "-n", "n700", "-S", f"certify.{RUN}.n=700", f"certify@{RUN}"], repo
    )
    # check_params validates the edited file (its output is unchanged, so nothing else follows).
    assert dvc_ran_stages(out.stdout) == ["check_params", f"certify@{RUN}"]

    params = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    change = params["params.yaml"][f"certify.{RUN}.n"]
    assert (change["old"], change["new"]) == (500, 700)

    metrics = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    summary = metrics[f"results/certify/{RUN}.json"]
    assert summary["n"] == {"old": 500, "new": 700, "diff": 200}
    assert set(metrics) == {f"results/certify/{RUN}.json"}  # no other metric moved

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "n700" in json.dumps(shown)


def test_metrics_show_lists_every_metric_file(repo):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    files = set(shown[""]["data"]) if "" in shown else set(next(iter(shown.values()))["data"])
    assert f"results/certify/{RUN}.json" in files
    assert "results/train/synthetic-std.json" in files
    assert "results/metrics/pag_metrics.json" in files


def test_plots_show_renders_training_and_certified_curves(repo):
    out = run(["dvc", "plots", "show", "--json"], repo)
    plots = json.loads(out.stdout)
    assert not plots.get("errors"), plots.get("errors")
    ids = set(plots["data"])
    assert "results/train/synthetic-std.json" in ids
    assert f"results/plots/certified/{RUN}.tsv" in ids
    for plot_id in ("results/train/synthetic-std.json", f"results/plots/certified/{RUN}.tsv"):
        values = plots["data"][plot_id][0]["content"]["data"]["values"]
        assert len(values) >= 2
    html = run(["dvc", "plots", "show", "-o", "plots"], repo)
    assert html.returncode == 0 and (repo / "plots" / "index.html").is_file()


def test_exp_run_on_a_key_from_a_template_changes_that_model_only(repo):
    """`epochs` of a smoke model comes from the `tiny` template: -S overrides it for that model
    only (DVC writes the entry's merged keys out, same values) and reruns only its training."""
    import yaml

    before = yaml.safe_load((repo / "params.yaml").read_text())
    out = run(["dvc", "exp", "run", "-S", "models.synthetic-std.epochs=2", "train@synthetic-std"],
              repo)  # fmt: skip
    assert dvc_ran_stages(out.stdout) == ["check_params", "train@synthetic-std"]
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert after["models"]["synthetic-std"] == before["models"]["synthetic-std"] | {"epochs": 2}
    others = [m for m in before["models"] if m != "synthetic-std"]
    assert all(after["models"][m] == before["models"][m] for m in others)
    assert after["templates"] == before["templates"]
    record = json.loads((repo / "results/train/synthetic-std.json").read_text())
    assert len(record["epochs"]) == 2
    status = run(["dvc", "status", "train@synthetic-gauss-025"], repo).stdout
    assert "up to date" in status
