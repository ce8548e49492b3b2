"""The three uses chained as a new user runs them: a Snakemake build handed over to DVC (`make
handover`), an edit rerun by DVC exactly as Snakemake would rerun it, and the artifacts shared
through a remote and a git clone; and the README's smoke block, run as written."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from pipeline_utils import (
    BIN,
    ROOT,
    digests,
    dvc_ran_stages,
    run,
    snakemake_jobs,
    tool_env,
    workspace,
)

pytestmark = pytest.mark.slow
RUN = "synthetic-gauss-025"


@pytest.fixture(autouse=True)
def installed():
    """The make targets run below install into the shared environment when its stamp is stale,
    and from a temporary copy that would leave the package pointing at a deleted folder: refuse
    first."""
    up_to_date = subprocess.run(["make", "-q", "install", f"VENV={BIN.parent}"], cwd=ROOT)
    if up_to_date.returncode != 0:
        pytest.fail("the environment is older than pyproject.toml: run `make install` first")


def handed_over(smk, dest):
    """A copy of the session's Snakemake build, handed over to DVC with `make handover`."""
    repo = workspace(smk, dest)
    run(["make", "handover", f"VENV={BIN.parent}"], repo)
    return repo


def test_handover_records_the_build_and_an_edit_reruns_what_snakemake_would(smk, tmp_path):
    repo = handed_over(smk, tmp_path / "repo")
    status = run(["dvc", "status"], repo).stdout
    assert "Data and pipelines are up to date" in status, status
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["certify"][RUN]["n"] = 400
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    jobs = snakemake_jobs(run(["snakemake", "-n"], repo).stdout)  # what Snakemake would rerun
    stages = dvc_ran_stages(run(["dvc", "repro"], repo).stdout)  # what DVC reruns
    jobs.pop("all", None)
    planned = sorted(stage.split("@")[0] for stage in stages)
    assert planned == sorted(rule for rule, count in jobs.items() for _ in range(count))
    assert f"certify@{RUN}" in stages and not any(s.startswith("train@") for s in stages)


def test_handover_refuses_a_build_of_other_parameters(smk, tmp_path):
    repo = workspace(smk, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["certify"][RUN]["n"] = 400
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["make", "handover", f"VENV={BIN.parent}"], repo, check=False)
    assert out.returncode != 0 and "snakemake -n has jobs to run" in out.stderr
    assert "up to date" not in run(["dvc", "status"], repo).stdout


def readme_block() -> str:
    """The bash block of the README's section 'Try it on the smoke configuration'."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Try it on the smoke configuration", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_the_readme_smoke_block_runs_as_written(smk, tmp_path):
    """On a copy of the smoke build (so that its `snakemake --cores all` has nothing to do) with the
    committed params.yaml of the paper, the block runs line by line under `set -e`: build, hand
    over, edit and repro, experiment, metrics and plots, push, commit; its git clone pulls
    byte-identical artifacts, and then neither `dvc repro` nor (after `snakemake --touch`)
    `snakemake -n` has anything to do."""
    repo = workspace(smk, tmp_path / "work" / "repo")
    shutil.copy2(ROOT / "params.yaml", repo / "params.yaml")
    run([str(BIN / "python"), "-m", "robust.deps", "params.yaml", "dvc.yaml"], repo)
    run(["git", "commit", "-qam", "the paper's parameters, as in a fresh clone"], repo)
    (repo / ".venv").symlink_to(BIN.parent)
    block = readme_block()
    assert "cifar10" not in block and "source .venv/bin/activate" in block
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=repo, env=tool_env(), capture_output=True,
        text=True, timeout=1500,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "Nothing to be done" in out.stdout + out.stderr
    clone = tmp_path / "work" / "pag-clone"
    assert "n400" in run(["dvc", "exp", "list", "--all-commits"], repo).stdout
    assert yaml.safe_load((clone / "params.yaml").read_text())["certify"][RUN]["n"] == 400
    original = digests(repo)
    assert len(original) > 40 and digests(clone) == original
    assert run(["dvc", "repro", "--dry"], clone).stdout.count("Running stage") == 0
    out = run(["snakemake", "-n"], clone)
    assert "Nothing to be done" in out.stdout + out.stderr
    assert (repo / "dvc_plots" / "index.html").is_file()
    assert "dvc_plots" not in run(["git", "status", "--porcelain"], repo).stdout
