"""The community checks, run by the test suite so that CI enforces them: ruff (lint and format),
snakefmt, ``snakemake --lint``, the workflow catalog file and pinned conda environments."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_utils import tool_env

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not installed (it is part of the test extras)")
        return found
    return str(path)


def _check(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_ruff_check():
    _check([_tool("ruff"), "check", "."])


def test_ruff_format():
    _check([_tool("ruff"), "format", "--check", "."])


def test_snakefmt():
    _check([_tool("snakefmt"), "--check", "workflow/"])


def test_snakemake_lint():
    proc = _check([_tool("snakemake"), "--lint"])
    # snakemake --lint exits 0 even when it prints lints; the clean verdict is a message.
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_every_rule_has_a_pinned_conda_env():
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    n_rules = len(re.findall(r"^rule \w+:", rules, flags=re.M))
    envs = re.findall(r"^    conda:\n        \"([^\"]+)\"", rules, flags=re.M)
    assert len(envs) == n_rules, "every rule names a conda environment"
    for env in set(envs):
        spec = yaml.safe_load((ROOT / "workflow" / "rules" / env).read_text())
        for dep in spec["dependencies"]:
            items = dep["pip"] if isinstance(dep, dict) else [dep]
            for item in items:
                assert re.search(r"(==|=)\d", item), f"{env}: '{item}' is not pinned"


def test_workflow_catalog_file():
    spec = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = spec["usage"]
    assert usage["mandatory-flags"]["flags"]
    assert isinstance(usage["software-stack-deployment"]["conda"], bool)
    assert usage["report"] is True


def test_the_suite_order_names_existing_modules():
    """tests/conftest.py orders modules by name for pytest-xdist; a renamed module would silently
    fall back to the middle of the queue and lengthen the parallel run."""
    import conftest

    missing = [name for name in conftest.FIRST + conftest.LAST
               if not (ROOT / "tests" / f"{name}.py").is_file()]  # fmt: skip
    assert missing == []


def test_licence_and_citation():
    """An MIT LICENSE that pyproject.toml declares, and a CITATION.cff that cites this software and
    the paper it reproduces."""
    import yaml

    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    project = (ROOT / "pyproject.toml").read_text()  # tomllib needs Python 3.11
    assert '\nlicense = "MIT"\nlicense-files = ["LICENSE"]\n' in project
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["license"] == "MIT"
    assert cff["title"] and cff["authors"] and f'\nversion = "{cff["version"]}"\n' in project
    paper = cff["references"][0]
    assert "Perceptually-Aligned Gradients" in paper["title"]
    assert paper["identifiers"][0]["value"] == "arXiv:1910.08640"
