"""Shared fixtures: a local HTTP server, a moto S3 server, and two smoke runs of the whole pipeline
(one by Snakemake, one by DVC) built once per test session on temporary copies of the repository
and shared by the end-to-end tests, also across pytest-xdist workers."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipeline_utils import BIN, copy_repo, digests, run

LATEX = shutil.which("latexmk") is not None
# Without TeX the paper stage cannot run: DVC then reproduces everything up to it.
DVC_TARGETS = (
    []
    if LATEX
    else [
        "numbers",
        "tables",
        "fig1",
        "sigma_sweep",
        "eps_sweep",
        "fig_certified",
        "fig_training",
        "fig_train_vs_certify",
        "fig_pag_metrics",
        "predict",
    ]
)


def _shared_root(tmp_path_factory) -> Path:
    """The session's temporary root, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _exclusive(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_once(tmp_path_factory, name: str, cmd: list[str]) -> Path:
    """A smoke copy of the repository built by ``cmd``, once per session whichever worker asks
    first; the others wait for it. Beside the copy: ``digests.json`` (its outputs just after the
    build) and ``dvc.lock`` when the build wrote one, which stay valid while tests edit the copy."""
    shared = _shared_root(tmp_path_factory) / f"build-{name}"
    shared.mkdir(exist_ok=True)
    repo = shared / "repo"
    with _exclusive(shared / ".lock"):
        if not (shared / "digests.json").exists():
            shutil.rmtree(repo, ignore_errors=True)  # what a failed attempt left
            copy_repo(repo)
            run(cmd, repo, timeout=1500)
            if (repo / "dvc.lock").exists():
                run(["git", "add", "dvc.lock"], repo)
                run(["git", "commit", "-qm", "results"], repo)
                shutil.copy2(repo / "dvc.lock", shared / "dvc.lock")
            (shared / "digests.json").write_text(json.dumps(digests(repo)))
    return repo


SMK_BUILD = ["snakemake", "--cores", "2", "--resources", "gpu=2"]
DVC_BUILD = ["dvc", "repro", *DVC_TARGETS]


@pytest.fixture(scope="session")
def smk(tmp_path_factory):
    """A copy built once by ``snakemake --cores 2`` (as make smoke does); its tests edit it."""
    # CPU only: the one-GPU cap of the profile is lifted, as `make smoke` does without a GPU.
    return _build_once(tmp_path_factory, "smk", SMK_BUILD)


@pytest.fixture(scope="session")
def dvc(tmp_path_factory):
    """A copy built once by ``dvc repro``, its dvc.lock committed; its tests edit it."""
    return _build_once(tmp_path_factory, "dvc", DVC_BUILD)


@pytest.fixture(scope="session")
def dvc_built(tmp_path_factory):
    """The folder of the DVC build's ``digests.json`` and ``dvc.lock``, for reading only: under
    pytest-xdist the copy itself belongs to the worker that runs the ``dvc`` tests."""
    return _build_once(tmp_path_factory, "dvc", DVC_BUILD).parent


# Under pytest-xdist (`make test`: --dist loadgroup) each group runs on one worker, in collection
# order: the tests that edit a shared build step by step, and each module, whose module fixtures
# would otherwise be built once per worker. The longest groups are dealt first.
LONGEST_FIRST = ("dvc", "smk", "test_slurm", "test_config", "test_crash", "test_fast_paper")


def _group(item) -> str:
    for build in ("dvc", "smk"):
        if build in item.fixturenames:
            return build
    return item.module.__name__


@pytest.hookimpl(tryfirst=True)  # before xdist reads the group markers
def pytest_collection_modifyitems(config, items):
    if not getattr(config.option, "loadgroup", False):  # set on the workers of --dist loadgroup
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each requested path on the server, prints nothing."""

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """(served folder, base URL, list of requested paths) of an HTTP server on a free port of
    127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_RecordingHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_client(endpoint: str):
    """A boto3 S3 client of the moto server at ``endpoint`` (credentials ``testing``)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 with an empty bucket ``pag``; yields its endpoint URL (access
    key and secret: ``testing``)."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = s3_client(endpoint)
    for _ in range(100):
        try:
            client.create_bucket(Bucket="pag")
            break
        except Exception:  # the server is still starting
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist passes a test's group to its scheduler as a suffix of the node id; pytest 9.2 made node
    ids structured and the suffix is lost without an error (pytest-xdist issue 1386), which would
    run each shared build once per worker. Stop instead."""
    lost = [nodeid for nodeid in ids if "@" not in nodeid]
    if node.config.getvalue("dist") == "loadgroup" and lost:
        why = "is pytest newer than pyproject.toml allows?"
        pytest.exit(f"xdist groups were not applied (e.g. {lost[0]}): {why}", returncode=4)
