"""Shared fixtures: a local HTTP server, a moto S3 server, and two smoke runs of the whole pipeline
(one by Snakemake, one by DVC) built once per test session on temporary copies of the repository
and shared by the end-to-end tests, also across pytest-xdist workers."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipeline_utils import BIN, copy_repo, run

LATEX = shutil.which("latexmk") is not None
# Without TeX the paper stage cannot run: DVC then reproduces everything up to it.
DVC_TARGETS = (
    []
    if LATEX
    else [
        "numbers",
        "tables",
        "fig_pag",
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
    """A smoke copy of the repository built by ``cmd``, once per session by whichever worker asks
    first while the others wait. It is shared as built: a test that runs a tool in it works on a
    ``pipeline_utils.workspace`` copy."""
    shared = _shared_root(tmp_path_factory) / f"build-{name}"
    shared.mkdir(exist_ok=True)
    repo = shared / "repo"
    with _exclusive(shared / ".lock"):
        if not (shared / "built").exists():
            shutil.rmtree(repo, ignore_errors=True)  # what a failed attempt left
            copy_repo(repo)
            run(cmd, repo, timeout=1500)
            if (repo / "dvc.lock").exists():
                run(["git", "add", "dvc.lock"], repo)
                run(["git", "commit", "-qm", "results"], repo)
            (shared / "built").touch()
    return repo


@pytest.fixture(autouse=True)
def _fresh_logger():
    """Scripts run in-process attach handlers to the "robust" logger (a log file among them);
    close and drop them after each test."""
    yield
    import logging

    for handler in logging.getLogger("robust").handlers[:]:
        handler.close()
        logging.getLogger("robust").removeHandler(handler)


@pytest.fixture(scope="session")
def smk(tmp_path_factory):
    """A copy built once by ``snakemake --cores 2`` (as make smoke does), read only."""
    # CPU only: the one-GPU cap of the profile is lifted, as `make smoke` does without a GPU.
    return _build_once(
        tmp_path_factory, "smk", ["snakemake", "--cores", "2", "--resources", "gpu=2"]
    )


@pytest.fixture(scope="session")
def dvc(tmp_path_factory):
    """A copy built once by ``dvc repro``, its dvc.lock committed, read only."""
    return _build_once(tmp_path_factory, "dvc", ["dvc", "repro", *DVC_TARGETS])


# `make test` runs the modules on pytest-xdist workers, each module on one worker (--dist loadfile),
# in this order: first the two modules that start the shared builds, one per worker, then the
# longest others; the other users of the builds come last, when both are built.
FIRST = ("test_pipeline_dvc", "test_pipeline", "test_slurm", "test_config", "test_crash")
LAST = (
    "test_handover",
    "test_storage",
    "test_remote",
    "test_dvc_experiments",
    "test_two_builds",
)


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(FIRST)}
    rank |= {name: len(FIRST) + 1 + i for i, name in enumerate(LAST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(FIRST)))


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
