"""dvc.yaml lists, for every stage that runs a script, the script and every ``robust`` library file
it imports (transitively), as Snakemake's rules do through ``code()``, and for the stages that read
a list of ids from params.yaml the result files of those ids, as Snakemake's rules do: an edit to
any of them reruns the stage in both tools. One command writes the lists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from robust.deps import (
    REFRESH,
    RESULT_FOLDERS,
    checked_names,
    library_deps,
    refresh_dvc_yaml,
    result_inputs,
    stale_stages,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
TEXT = (ROOT / "dvc.yaml").read_text()


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load(TEXT)["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def test_every_stage_declares_exactly_the_code_it_imports():
    checked = 0
    for name, stage in _stages().items():
        script = stage["deps"][0]
        assert script.startswith("scripts/") and script.endswith(".py"), name
        declared = sorted(d for d in stage["deps"] if d.startswith("scripts/robust/"))
        expected = list(library_deps(script))
        assert declared == expected, f"{name}: deps differ from the imports; run {REFRESH}"
        assert script in stage["cmd"], name
        checked += 1
    assert checked >= 15


def test_no_stage_depends_on_a_whole_results_folder():
    stages = _stages()
    for name, files in result_inputs(PARAMS).items():
        assert [d for d in stages[name]["deps"] if d.startswith(RESULT_FOLDERS)] == files, name
    for name, stage in stages.items():
        folders = [d for d in stage["deps"] if d.startswith("results/") and "." not in d]
        assert folders == [], name


def test_the_refresh_command_leaves_a_current_dvc_yaml_unchanged():
    assert refresh_dvc_yaml(TEXT, PARAMS) == TEXT, f"dvc.yaml's lists are stale; run {REFRESH}"
    assert stale_stages(TEXT, PARAMS) == []
    kept = "      - results/metrics/score_alignment.json\n"  # not a generated list: kept as written
    assert kept in TEXT and kept in refresh_dvc_yaml(TEXT, PARAMS)
    stale = TEXT.replace("      - scripts/robust/io.py\n", "", 1)
    assert stale != TEXT and refresh_dvc_yaml(stale, PARAMS) == TEXT
    assert stale_stages(stale, PARAMS) == ["check_params"]


@pytest.mark.parametrize("config", ["smoke", "pretrained", "imagenet"])
def test_other_configurations_get_their_own_result_lists(config):
    params = yaml.safe_load((ROOT / "config" / f"{config}.yaml").read_text())
    fresh = refresh_dvc_yaml(TEXT, params)
    assert stale_stages(fresh, params) == [] and refresh_dvc_yaml(fresh, PARAMS) == TEXT
    lists = result_inputs(params)
    assert "fig_certified" in stale_stages(TEXT, params) or not lists["fig_certified"]
    column = next(iter(params["report"]["pag_figures"]["fig1"]["columns"]))
    assert f"      - results/pag/{column}.pt\n" in fresh


def test_check_params_refuses_a_dvc_yaml_that_does_not_follow_the_parameters(tmp_path, capsys):
    from pipeline_utils import load_script

    (tmp_path / "dvc.yaml").write_text(TEXT)
    argv = ["--params", str(ROOT / "config" / "smoke.yaml"), "--schema",
            str(ROOT / "workflow/schemas/params.schema.yaml"), "--dvc_yaml",
            str(tmp_path / "dvc.yaml"), "--out", str(tmp_path / "ok"), "--log",
            str(tmp_path / "log")]  # fmt: skip
    assert load_script("check_params").main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fig_certified" in err and REFRESH in err
    assert not (tmp_path / "ok").exists()
    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text(refresh_dvc_yaml(TEXT, smoke))
    assert load_script("check_params").main(argv) == 0 and (tmp_path / "ok").exists()


def unquoted_scalars(stage: dict, params: dict) -> list[str]:
    """The ``${...}`` of a stage's command that DVC writes into the shell unquoted: ``${key}`` and
    every expression whose value is not a dict (DVC quotes the values of an unpacked dict)."""
    item = None
    if "foreach" in stage:
        collection = params
        for part in stage["foreach"].strip("${}").split("."):
            collection = collection[part]
        item = next(iter(collection.values()), None)
    found = []
    for expr in re.findall(r"\$\{([^}]*)\}", stage.get("do", stage)["cmd"]):
        head, *rest = expr.split(".")
        if head == "key" or (head == "item" and item is None):
            found += [expr] if head == "key" or rest else []
            continue
        value = item if head == "item" else params[head]
        for part in rest:
            value = value[part]
        found += [] if isinstance(value, dict) else [expr]
    return found


@pytest.mark.parametrize("config", ["params.yaml", "config/smoke.yaml"])
def test_every_unquoted_name_in_a_command_is_a_checked_name(config):
    """Each id or scalar DVC puts into a command unquoted is also a dependency under
    results/params.ok/, which only the parameter check writes (one file per shell-safe name): a
    stage run alone with an unchecked name stops on the missing file before its shell starts."""
    params = yaml.safe_load((ROOT / config).read_text())
    for name, stage in yaml.safe_load(TEXT)["stages"].items():
        deps = stage.get("do", stage).get("deps", [])
        for expr in unquoted_scalars(stage, params):
            assert f"results/params.ok/${{{expr}}}" in deps, (name, expr)
    assert {"synthetic", "16.0", "true"} <= checked_names({"a": {"synthetic": [16.0, True]}})
    assert not checked_names({"a;b": "$(x)", "c d": "`e`", "../f": "g'h", "i/j": ""})
