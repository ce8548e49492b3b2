"""A parameter file is data: ids and values holding shell syntax or path escapes never run code or
write outside the repository, under every way of running a stage: DVC's whole pipeline and a stage
on its own, and Snakemake (which refuses them when it parses the workflow)."""

from __future__ import annotations

import pytest
import yaml

from pipeline_utils import copy_repo, run

pytestmark = pytest.mark.slow
MODEL = "synthetic-gauss-050"
EVIL = [
    "c$(touch pwned1)",
    "a;touch pwned2",
    "b`touch pwned3`",
    "q'uote",
    "s pace",
    "../../../escape",
]


def files_under(folder):
    return {p for p in folder.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}


def test_stages_named_by_unchecked_ids_refuse_before_their_shell(tmp_path):
    repo = copy_repo(tmp_path / "work" / "repo")
    run(["dvc", "repro", "-s", "check_params"], repo)  # a checked build of valid parameters
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for name in EVIL:
        params["models"][name] = dict(params["models"][MODEL])
        params["certify"][name] = dict(params["certify"][MODEL], model=name)
    params["models"][MODEL]["dataset"] = "synthetic;touch pwned4"  # a checked id, a bad value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = files_under(tmp_path)
    for stage in [f"{kind}@{name}" for name in EVIL for kind in ("train", "certify")]:
        out = run(["dvc", "repro", "-s", stage], repo, check=False)
        assert out.returncode != 0 and "No such file or directory" in out.stderr, (
            stage,
            out.stderr,
        )
    out = run(["dvc", "repro", "-s", f"train@{MODEL}"], repo, check=False)
    assert out.returncode != 0 and "params.ok/synthetic;touch pwned4" in out.stderr, out.stderr
    for target in ("results/models/a;touch pwned2.pt", None):  # Snakemake: refused when parsed
        out = run(["snakemake", "--cores", "1", *([target] if target else [])], repo, check=False)
        assert out.returncode != 0 and "models: 'c$(touch pwned1)' is not an id" in out.stderr
    out = run(["dvc", "repro"], repo, check=False)  # outputs outside the repository overlap
    assert out.returncode != 0 and "escape" in out.stderr, out.stderr
    for section in ("models", "certify"):
        del params[section]["../../../escape"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo, check=False)  # the whole pipeline: the check refuses first
    assert out.returncode != 0 and "error: params.yaml: models" in out.stderr, out.stderr
    assert not list(tmp_path.rglob("pwned*")) and not list(tmp_path.rglob("escape*"))
    new = files_under(tmp_path) - before  # only logs, inside the repository
    assert all(p.is_relative_to(repo / "logs") or ".snakemake" in p.parts for p in new), new
