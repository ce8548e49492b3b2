"""params.yaml and config/smoke.yaml against the schema and cross-reference checks; 30+ malformed
sets."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from robust import config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"
SMOKE = config.load_yaml(ROOT / "config" / "smoke.yaml")


SHIPPED = ["params.yaml", *(f"config/{p.name}" for p in sorted((ROOT / "config").glob("*.yaml")))]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_params_are_valid(name):
    config.check(config.load_yaml(ROOT / name), SCHEMA, root=ROOT)


@pytest.mark.parametrize("name", SHIPPED)
def test_both_tools_read_the_same_values_in_the_same_order(name):
    """Snakemake (yte on PyYAML) and DVC (ruamel.yaml) resolve the YAML merge keys of the templates
    alike, key order included (flags are rendered in that order). A merge of a list of templates
    would not be: PyYAML and ruamel.yaml give its maps opposite precedence."""
    import io

    import yte
    from ruamel.yaml import YAML

    def ordered(node):
        if isinstance(node, dict):
            return [(key, ordered(value)) for key, value in node.items()]
        return [ordered(value) for value in node] if isinstance(node, list) else node

    text = (ROOT / name).read_text(encoding="utf-8")
    snakemake = yte.process_yaml(io.StringIO(text), require_use_yte=True)
    assert ordered(snakemake) == ordered(YAML(typ="safe").load(text))
    assert "<<: [" not in text


def _set(params, path, value):
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _delete(params, path):
    node = params
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


def _rename(params, path, new):
    node = params
    for key in path[:-1]:
        node = node[key]
    node[new] = node.pop(path[-1])


M = ["models", "synthetic-gauss-025"]
C = ["certify", "synthetic-gauss-025"]
S = ["pag", "settings"]
# (case id, mutation, text the error must contain: the key and the reason)
CASES = [
    ("sigma-negative", lambda p: _set(p, M + ["sigma"], -0.25), "models.synthetic-gauss-025.sigma"),
    ("sigma-string", lambda p: _set(p, M + ["sigma"], "0.25"), "is not of type 'number'"),
    ("sigma-zero-gaussian", lambda p: _set(p, M + ["sigma"], 0.0), "kind gaussian needs sigma > 0"),
    (
        "warmup-too-long",
        lambda p: _set(p, M + ["warmup_epochs"], 2),
        "models.synthetic-gauss-025.warmup_epochs: must be less than epochs (2)",
    ),
    ("eps-negative", lambda p: _set(p, ["models", "synthetic-at-l2-200", "eps"], -1.0), "eps"),
    (
        "eps-on-standard",
        lambda p: _set(p, ["models", "synthetic-std", "eps"], 0.5),
        "synthetic-std.eps",
    ),
    (
        "epochs-zero",
        lambda p: _set(p, M + ["epochs"], 0),
        "epochs: 0 is less than the minimum of 1",
    ),
    (
        "epochs-float",
        lambda p: _set(p, M + ["epochs"], 2.5),
        "epochs: 2.5 is not of type 'integer'",
    ),
    ("lr-negative", lambda p: _set(p, M + ["lr"], -0.1), "lr"),
    ("augment-string", lambda p: _set(p, M + ["augment"], "yes"), "augment: 'yes' is not of type"),
    (
        "unknown-arch",
        lambda p: _set(p, M + ["arch"], "resnet9000"),
        "arch: 'resnet9000' is not one of",
    ),
    ("unknown-kind", lambda p: _set(p, M + ["kind"], "magic"), "kind: 'magic' is not one of"),
    ("unknown-schedule", lambda p: _set(p, M + ["schedule"], "warm"), "schedule"),
    ("unknown-dataset", lambda p: _set(p, M + ["dataset"], "mnist"), "unknown dataset 'mnist'"),
    (
        "dot-in-model-id",
        lambda p: _rename(p, M, "synthetic.gauss"),
        "models: 'synthetic.gauss' is not an id (letters, digits, _ and -; a letter or digit ",
    ),
    ("dot-in-run-id", lambda p: _rename(p, C, "run.1"), "certify: 'run.1' is not an id"),
    (
        "underscore-in-figure-key",  # names a LaTeX label: refused here, not by the numbers stage
        lambda p: _rename(p, ["report", "train_vs_certify", "certify-050"], "cert_050"),
        "report.train_vs_certify: 'cert_050' is not a figure key (letters, digits and -;",
    ),
    ("missing-model-key", lambda p: _delete(p, M + ["seed"]), "gauss-025.seed: required, missing"),
    ("extra-model-key", lambda p: _set(p, M + ["dropout"], 0.1), "dropout: not expected here"),
    ("missing-section", lambda p: _delete(p, ["evaluate"]), "evaluate: required, missing"),
    ("extra-section", lambda p: _set(p, ["extra"], {}), "extra: not expected here"),
    ("models-not-a-map", lambda p: _set(p, ["models"], 5), "models: 5 is not of type 'object'"),
    ("n-negative", lambda p: _set(p, C + ["n"], -5), "n: -5 is less than the minimum of 1"),
    ("n0-greater-than-n", lambda p: _set(p, C + ["n0"], 5000), "n0 (5000) must not exceed n"),
    (
        "alpha-above-one",
        lambda p: _set(p, C + ["alpha"], 1.5),
        "alpha: 1.5 is greater than or equal",
    ),
    ("alpha-zero", lambda p: _set(p, C + ["alpha"], 0.0), "alpha: 0.0 is less than or equal"),
    ("certify-sigma-zero", lambda p: _set(p, C + ["sigma"], 0.0), "sigma"),
    ("certify-unknown-model", lambda p: _set(p, C + ["model"], "ghost"), "unknown model 'ghost'"),
    ("certify-dataset-mismatch", lambda p: _set(p, C + ["dataset"], "cifar10"), "dataset"),
    ("certify-missing-n0", lambda p: _delete(p, C + ["n0"]), "n0"),
    ("predict-with-n0", lambda p: _set(p, ["predict", "synthetic-gauss-025", "n0"], 10), "predict"),
    ("pag-m-zero", lambda p: _set(p, S + ["m"], 0), "pag.settings.m"),
    ("pag-eps-scalar", lambda p: _set(p, S + ["eps"], 4.0), "pag.settings.eps"),
    ("pag-too-many-pairs", lambda p: _set(p, S + ["pairs"], 10_000), "pag.settings.pairs"),
    (
        "pag-column-unknown-model",
        lambda p: _set(p, ["pag", "columns", "std", "model"], "x"),
        "unknown",
    ),
    (
        "fig1-unknown-column",
        lambda p: _set(p, ["report", "pag_figures", "fig1", "columns"], ["nope"]),
        "'nope'",
    ),
    (
        "fig1-eps-not-generated",
        lambda p: _set(p, ["report", "pag_figures", "fig1", "eps"], 3.0),
        "report.pag_figures.fig1.eps",
    ),
    (
        "fig1-row-out-of-range",
        lambda p: _set(p, ["report", "pag_figures", "fig1", "rows"], [99]),
        "row 99",
    ),
    (
        "report-unknown-run",
        lambda p: _set(p, ["report", "certified", "runs"], ["r"]),
        "unknown run 'r'",
    ),
    (
        "reference-missing-file",
        lambda p: _set(p, ["report", "certified", "reference"], "no.tsv"),
        "no.tsv",
    ),
    (
        "md5-malformed",
        lambda p: _set(
            p,
            ["datasets", "synthetic"],
            {
                "kind": "cifar10",
                "url": "https://x/y.tar.gz",
                "md5": "xyz",
                "archive": "none",
                "n_train": 10,
                "n_test": 10,
            },
        ),
        "datasets.synthetic",
    ),
    ("top-level-list", lambda p: _set(p, ["models"], []), "models: [] is not of type 'object'"),
    (
        "judge-with-a-column-objective",
        lambda p: _set(p, ["models", "synthetic-judge-noise", "sigma"], 0.5),
        "pag_metrics.judges: 'synthetic-judge-noise' has the training objective of column model "
        "'synthetic-gauss-050' (gaussian sigma 0.5)",
    ),
    (
        "judge-with-a-column-architecture",
        lambda p: _set(p, ["models", "synthetic-judge-std", "arch"], "tiny_cnn"),
        "pag_metrics.judges: 'synthetic-judge-std' has the arch of column model",
    ),
    (
        "two-judges-of-one-kind",
        lambda p: _set(p, ["pag_metrics", "judges"], ["synthetic-judge-std", "synthetic-std-s1"]),
        "pag_metrics.judges: 'synthetic-std-s1' made some of the images it would judge",
    ),
    (
        "runs-of-two-recipes",
        lambda p: _set(p, ["pag_metrics", "columns"], ["std+at-l2-200"]),
        "pag_metrics.columns: runs 'std' and 'at-l2-200' of 'std+at-l2-200' must differ only in",
    ),
    (
        "score-alignment-unknown-model",
        lambda p: _set(p, ["score_alignment", "models"], ["ghost", "synthetic-std"]),
        "score_alignment.models: unknown model 'ghost'",
    ),
    (
        "score-alignment-pair-twice",
        lambda p: _set(p, ["score_alignment", "sigmas"], [0.0, 0.0, 0.0, 0.0]),
        "score_alignment.models: a (model, sigma) pair is listed twice",
    ),
    (
        "score-alignment-too-many-images",
        lambda p: _set(p, ["score_alignment", "n_images"], 501),
        "score_alignment.n_images: more than the 500 test images",
    ),
    (
        "score-alignment-one-sigma-per-model",
        lambda p: _set(p, ["score_alignment", "sigmas"], [0.0]),
        "score_alignment.sigmas: needs one sigma per model",
    ),
    (
        "score-alignment-path-with-space",
        lambda p: _set(p, ["score_alignment", "lpips"], "my weights/lpips.pth"),
        "score_alignment.lpips",
    ),
]


@pytest.mark.parametrize("case, mutate, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_params_are_rejected_with_the_key(case, mutate, expected):
    params = copy.deepcopy(SMOKE)
    mutate(params)
    with pytest.raises(config.ParamsError) as err:
        config.check(params, SCHEMA, root=ROOT)
    message = str(err.value)
    assert expected in message
    assert "Traceback" not in message
    for line in message.splitlines():
        assert ":" in line  # every line names a key, then the reason


def test_yaml_that_does_not_parse(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("models:\n  a: [1, 2\n")
    with pytest.raises(config.ParamsError, match="line .* YAML does not parse"):
        config.load_yaml(bad)


def test_at_least_thirty_cases():
    assert len(CASES) + 1 >= 30


def _reject_in_both_tools(repo: Path, cases: list) -> list[str]:
    """Run each case through Snakemake, and every fourth through DVC too (its first stage runs the
    same check on every case), in ``repo``; return the problems found."""
    import yaml

    from pipeline_utils import run

    problems = []
    for i, (case, mutate, expected) in enumerate(cases):
        params = copy.deepcopy(SMOKE)
        mutate(params)
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        smk = run(["snakemake", "-n"], repo, check=False)
        if smk.returncode == 0 or expected not in smk.stderr or "Traceback" in smk.stderr:
            problems.append(f"snakemake {case}: {smk.stderr[-500:]}")
        if i % 4:
            continue
        dvc = run(["dvc", "repro"], repo, check=False)
        output = dvc.stdout + dvc.stderr
        if dvc.returncode == 0 or "Traceback" in output or "Running stage 'prepare" in output:
            problems.append(f"dvc {case}: {output[-500:]}")
        if (repo / "resources" / "data").exists():
            problems.append(f"{case}: data was prepared")
    return problems


@pytest.mark.slow
def test_both_tools_reject_every_malformed_set_before_any_job(tmp_path):
    """The cases above through the real tools: Snakemake stops while parsing with the key named and
    no traceback; DVC stops at its first stage (or while templating) before any data is prepared.
    Two copies of the repository take half of the cases each, in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline_utils import copy_repo, run

    repos = [copy_repo(tmp_path / f"repo{i}") for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        problems = sum(pool.map(_reject_in_both_tools, repos, [CASES[0::2], CASES[1::2]]), [])
    assert problems == []
    (repos[0] / "params.yaml").write_text("models:\n  a: [1, 2\n")
    for cmd in (["snakemake", "-n"], ["dvc", "repro"]):
        out = run(cmd, repos[0], check=False)
        assert out.returncode != 0 and "Traceback" not in out.stdout + out.stderr


def test_fast_mode_keeps_every_statistic_of_the_paper():
    """config/fast.yaml changes networks and speed options, never the protocol: the same certify
    and predict runs (sigma, n0, n, alpha, images, seed; noise chunks, so the same draws; fp32, so
    the same arithmetic up to kernels), PAG settings and metrics as params.yaml."""
    paper = config.load_yaml(ROOT / "params.yaml")
    fast = config.load_yaml(ROOT / "config" / "fast.yaml")
    protocol = ("model", "dataset", "sigma", "n0", "n", "alpha", "skip", "max_images", "seed")
    protocol += ("chunk", "precision")
    for section in ("certify", "predict"):
        assert fast[section].keys() == paper[section].keys()
        for run_id, run in paper[section].items():
            for key in protocol:
                assert fast[section][run_id].get(key) == run.get(key), (section, run_id, key)
    settings = {k: v for k, v in paper["pag"]["settings"].items() if k != "batch"}
    assert {k: v for k, v in fast["pag"]["settings"].items() if k != "batch"} == settings
    assert fast["pag"]["columns"] == paper["pag"]["columns"]
    assert fast["pag_metrics"] == paper["pag_metrics"] and fast["evaluate"] == paper["evaluate"]
    assert fast["datasets"] == paper["datasets"]
    for model_id, model in fast["models"].items():
        for key in ("dataset", "kind", "sigma", "norm", "eps", "seed"):
            assert model[key] == paper["models"][model_id][key], (model_id, key)


def test_a_judge_panel_holds_one_judge_per_kind():
    params = copy.deepcopy(SMOKE)
    params["models"]["judge-2"] = params["models"]["synthetic-judge-std"] | {"seed": 4}
    params["pag_metrics"]["judges"].append("judge-2")
    with pytest.raises(config.ParamsError, match="are all of kind standard; one per kind"):
        config.check(params, SCHEMA, root=ROOT)


# What a compared model may change: its perturbation (and the noise of its per-epoch noisy test
# accuracy, which follows sigma), and the seed of a training run.
PERTURBATION = {"kind", "sigma", "norm", "eps", "attack_steps", "attack_step_size", "eval_sigma"}


@pytest.mark.parametrize("name", ["params.yaml", "config/fast.yaml", "config/smoke.yaml"])
def test_compared_models_differ_only_in_their_perturbation(name):
    """Every model in a figure or table comparison (PAG metrics columns with all their runs, PAG
    figures, certified-accuracy figures) shares one training recipe; judges and the training table
    are not comparisons of recipes."""
    params = config.load_yaml(ROOT / name)
    columns, report = params["pag"]["columns"], params["report"]
    runs = [r for c in params["pag_metrics"]["columns"] for r in c.split("+")]
    runs += [c for figure in report["pag_figures"].values() for c in figure["columns"]]
    compared = [columns[r]["model"] for r in runs]
    certify = list(report["certified"]["runs"])
    certify += [r for figure in report["train_vs_certify"].values() for r in figure["runs"]]
    compared += [params["certify"][r]["model"] for r in certify]
    recipes = {
        m: {k: v for k, v in params["models"][m].items() if k not in PERTURBATION | {"seed"}}
        for m in dict.fromkeys(compared)
    }
    first = next(iter(recipes))
    for model, recipe in recipes.items():
        differ = {k for k in recipe if recipe[k] != recipes[first][k]}
        assert not differ, f"{name}: {model} differs from {first} in {sorted(differ)}"


@pytest.mark.parametrize("name", ["params.yaml", "config/fast.yaml", "config/smoke.yaml"])
def test_the_judge_panel_has_one_judge_of_every_kind(name):
    """A standard, an adversarially trained and a noise-trained judge (the params check keeps their
    objectives, architectures and seeds apart from the columns')."""
    params = config.load_yaml(ROOT / name)
    kinds = sorted(params["models"][j]["kind"] for j in params["pag_metrics"]["judges"])
    assert kinds == ["adversarial", "gaussian", "standard"]


def test_smoke_trains_three_seeds_of_every_model_under_test():
    columns = SMOKE["pag"]["columns"]
    for column in SMOKE["pag_metrics"]["columns"]:
        seeds = [SMOKE["models"][columns[r]["model"]]["seed"] for r in column.split("+")]
        assert sorted(seeds) == [0, 1, 2], column


# One bad value per field of each dataset kind: the line names the field, the value's problem and
# the kind whose schema applies (never another kind's complaint).
GOOD = {
    "cifar10": {"kind": "cifar10", "url": "https://x/y.tar.gz", "md5": "0" * 32, "archive": "none",
                "n_train": 10, "n_test": 10},
    "synthetic": {"kind": "synthetic", "seed": 0, "n_train": 10, "n_test": 10},
    "imagenet": {"kind": "imagenet", "folder": "resources/imagenet", "n_train": 0, "n_test": 10},
}  # fmt: skip
BAD = {"url": "ftp://x", "md5": "xyz", "archive": "", "n_train": -5, "n_test": 0, "seed": 1.5,
       "folder": ""}  # fmt: skip


@pytest.mark.parametrize("kind, field", [(k, f) for k, e in GOOD.items() for f in e if f != "kind"])
def test_every_bad_dataset_field_names_itself(kind, field):
    params = copy.deepcopy(SMOKE)
    params["datasets"]["extra"] = GOOD[kind] | {field: BAD[field]}
    with pytest.raises(config.ParamsError) as err:
        config.check(params, SCHEMA, root=ROOT)
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"datasets.extra.{field}: "), lines
    assert lines[0].endswith(f"(a {kind} dataset)") and repr(BAD[field]) in lines[0]


def test_a_bad_kind_and_a_bad_choice_name_themselves():
    params = copy.deepcopy(SMOKE)
    params["datasets"]["synthetic"]["kind"] = "mnist"
    with pytest.raises(config.ParamsError, match=r"^datasets.synthetic.kind: 'mnist' is not one"):
        config.check(params, SCHEMA, root=ROOT)
    params = copy.deepcopy(SMOKE)
    params["report"]["pag_figures"]["fig1"]["eps"] = "most"
    with pytest.raises(config.ParamsError) as err:
        config.check(params, SCHEMA, root=ROOT)
    assert str(err.value) == "report.pag_figures.fig1.eps: 'most' is none of: a number > 0; 'all'"


def test_a_bad_template_value_is_reported_once_with_its_entries():
    params = copy.deepcopy(SMOKE)
    for model in params["models"].values():
        model["lr"] = -0.1  # as a bad value in the template they all merge
    with pytest.raises(config.ParamsError) as err:
        config.check(params, SCHEMA, root=ROOT)
    (line,) = str(err.value).splitlines()
    assert line.startswith("models.{") and line.endswith("}.lr: -0.1 is less than or equal to "
                                                         "the minimum of 0")  # fmt: skip
    assert all(model in line for model in params["models"])
