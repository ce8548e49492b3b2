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
    out = run(["dvc", "exp", "run", "-n", "n700", "-S", f"certify.{RUN}.n=700"], repo)
    # check_params validates the edited file (its output is unchanged, so nothing else follows
    # it); the run's certification, then the report parts that show that run
    assert sorted(dvc_ran_stages(out.stdout)) == sorted(
        ["check_params", f"certify@{RUN}", "fig_certified", "tables", "numbers", "paper"]
    )

    params = json.loads(run(["dvc", "params", "diff", "--json"], repo).stdout)
    change = params["params.yaml"][f"certify.{RUN}.n"]
    assert (change["old"], change["new"]) == (500, 700)

    metrics = json.loads(run(["dvc", "metrics", "diff", "--json"], repo).stdout)
    assert set(metrics) <= {f"results/metrics/certify/{RUN}.json"}  # no other metric moved

    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    assert "n700" in json.dumps(shown)


def test_metrics_show_fits_a_terminal(repo):
    """Short summaries only: a line per model of the report, certify run and PAG column, a few
    columns each; the nested details are outputs, not metrics."""
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    data = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    files = set(data)
    assert f"results/metrics/certify/{RUN}.json" in files
    assert "results/metrics/models/synthetic-std.json" in files
    assert "results/metrics/pag/std.json" in files
    assert not any(f.startswith(("results/train/", "results/eval/")) for f in files)
    assert "results/metrics/pag_metrics.json" not in files
    certify = data[f"results/metrics/certify/{RUN}.json"]["data"]
    assert {"abstain", "acr", "r_0", "r_0.5"} <= set(certify)
    assert set(data["results/metrics/pag/std.json"]["data"]) == {"std", "adv", "noise"}
    model = data["results/metrics/models/synthetic-std.json"]["data"]
    assert {"clean", "noisy", "train_s", "pgd_0.5"} <= set(model)
    table = run(["dvc", "metrics", "show"], repo).stdout.splitlines()
    assert len(table) <= 20 and max(map(len, table)) <= 200, max(map(len, table))


def test_plots_show_renders_curves_and_figures(repo):
    """One chart overlays every certify run of the report (with title and axis labels); the
    training curves and the report's PNG figures are plots too."""
    out = run(["dvc", "plots", "show", "--json"], repo)
    plots = json.loads(out.stdout)
    assert not plots.get("errors"), plots.get("errors")
    ids = set(plots["data"])
    assert "results/train/synthetic-std.json" in ids
    assert "certified_accuracy" in ids and "paper/figures/fig1.png" in ids
    curves = plots["data"]["certified_accuracy"][0]["content"]
    assert curves["title"]["text"] == "Certified accuracy of the smoothed classifiers"
    sources = {v["filename"] for v in curves["data"]["values"]}
    assert len(sources) == 2  # the smoke report's two runs, in one chart
    html = run(["dvc", "plots", "show", "-o", "plots"], repo)
    assert html.returncode == 0 and (repo / "plots" / "index.html").is_file()


def test_exp_run_on_a_merged_key_changes_that_model_only(repo):
    """`epochs` of the smoke noise judge comes from the standard judge's entry by a merge key: -S
    overrides it for that model only (DVC writes the entry's merged keys out, same values) and
    reruns only its training."""
    import yaml

    model = "synthetic-judge-noise"
    before = yaml.safe_load((repo / "params.yaml").read_text())
    out = run(["dvc", "exp", "run", "-S", f"models.{model}.epochs=4", f"train@{model}"], repo)
    assert dvc_ran_stages(out.stdout) == ["check_params", f"train@{model}"]
    after = yaml.safe_load((repo / "params.yaml").read_text())
    assert after["models"][model] == before["models"][model] | {"epochs": 4}
    others = [m for m in before["models"] if m != model]
    assert all(after["models"][m] == before["models"][m] for m in others)
    assert after["templates"] == before["templates"]
    record = json.loads((repo / f"results/train/{model}.json").read_text())
    assert len(record["epochs"]) == 4
    status = run(["dvc", "status", "train@synthetic-gauss-025"], repo).stdout
    assert "up to date" in status
