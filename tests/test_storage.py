"""Snakemake with a default storage provider (S3, as on Kubernetes where pods share no file system).

Each job then sees local copies of its declared inputs under ``.snakemake/storage/``, so no rule may
name a result folder itself. The bucket gets the repository and the smoke results up to the metrics;
Snakemake plans exactly the report jobs (figures, tables, numbers, paper), runs them through the
storage, and what lands in the bucket equals the local smoke build byte for byte.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import LATEX, s3_client
from pipeline_utils import ROOT, copy_repo, run, snakemake_commands

PREFIX = "s3://pag/storage"
# The smoke results in the order the pipeline makes them: Snakemake compares the storage objects'
# modification times (whole seconds), so each layer is uploaded a second after the one it reads.
LAYERS = [
    ["results/params.ok", "resources/data"],
    ["results/models", "results/train"],
    ["results/eval", "results/certify", "results/predict", "results/plots", "results/pag"],
    ["results/metrics", "paper/tables/pag_metrics.tex", "paper/tables/score_alignment.tex"],
]
REPORT = [
    "paper/figures",
    "paper/tables/accuracy.tex",
    "paper/tables/certified_accuracy.tex",
    "paper/generated/numbers.tex",
] + (["paper/main.pdf"] if LATEX else [])


def files_under(repo: Path, names: list[str]) -> list[str]:
    out = []
    for name in names:
        path = repo / name
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        out += [str(p.relative_to(repo)) for p in found if p.is_file()]
    return out


def storage_flags(endpoint: str) -> list[str]:
    return [
        "--default-storage-provider",
        "s3",
        "--default-storage-prefix",
        PREFIX,
        "--storage-s3-endpoint-url",
        endpoint,
        "--storage-s3-access-key",
        "testing",
        "--storage-s3-secret-key",
        "testing",
    ]


# Flags that may name a folder in a command: scratch space that is not a storage object (download
# caches, the LaTeX build folder).
SCRATCH_FLAGS = {"cache_dir", "work_dir", "latex_log"}


def test_no_rule_names_a_result_folder_in_its_command():
    """A folder written into a shell command is empty in a storage-backed job: every path there
    must come from the rule's inputs, outputs, log or params."""
    flagged = []
    for rules in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for flag, path in re.findall(
            r"--(\w+) ((?:results|paper|resources|logs)/\S*)", rules.read_text()
        ):
            if flag not in SCRATCH_FLAGS:
                flagged.append(f"{rules.name}: --{flag} {path}")
    assert flagged == []


@pytest.mark.slow
def test_report_jobs_run_through_s3_storage(smk, s3, tmp_path):
    pytest.importorskip("snakemake_storage_plugin_s3")
    client = s3_client(s3)
    bucket, key_prefix = PREFIX.removeprefix("s3://").split("/", 1)

    def upload(source: Path, files: list[str]) -> None:
        for rel in files:
            client.upload_file(str(source / rel), bucket, f"{key_prefix}/{rel}")
        time.sleep(1.1)

    upload(Path(smk), run(["git", "ls-files"], smk).stdout.split())
    for layer in LAYERS:
        upload(Path(smk), files_under(Path(smk), layer))
    # A clean checkout runs the jobs: nothing but the code on its disk, as in a pod.
    repo = copy_repo(tmp_path / "repo")
    flags = storage_flags(s3)
    planned = run(["snakemake", "-n", "-p", "--cores", "2", *flags], repo).stdout
    scripts = {c.split()[1] for c in snakemake_commands(planned)}
    expected = {
        "scripts/fig_pag.py",
        "scripts/fig_certified.py",
        "scripts/fig_training.py",
        "scripts/fig_pag_metrics.py",
        "scripts/make_tables.py",
        "scripts/make_numbers.py",
    } | ({"scripts/build_paper.py"} if LATEX else set())
    assert scripts == expected, planned[-3000:]
    run(["snakemake", "--cores", "2", *flags], repo, timeout=900)

    local = files_under(Path(smk), REPORT)
    assert len(local) >= 16
    for rel in local:
        body = client.get_object(Bucket=bucket, Key=f"{key_prefix}/{rel}")["Body"].read()
        assert body == (Path(smk) / rel).read_bytes(), rel
    # nothing was written to the folders the commands of DVC name
    assert not (repo / "paper" / "figures").exists() and not (repo / "results").exists()
