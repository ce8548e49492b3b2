"""dvc.yaml lists, for every stage that runs a script, the script and every ``robust`` library file
it imports (transitively), as Snakemake's rules do through ``code()``: an edit to any of them reruns
the stage in both tools."""

from __future__ import annotations

from pathlib import Path

import yaml

from robust.deps import REFRESH, library_deps, refresh_dvc_yaml

ROOT = Path(__file__).resolve().parents[1]


def _stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
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


def test_the_refresh_command_leaves_a_current_dvc_yaml_unchanged():
    text = (ROOT / "dvc.yaml").read_text()
    assert refresh_dvc_yaml(text) == text, f"dvc.yaml's library lists are stale; run {REFRESH}"
    stale = text.replace("      - scripts/robust/io.py\n", "", 1)
    assert stale != text and refresh_dvc_yaml(stale) == text
