"""Shared fixtures: a local HTTP server, and two smoke runs of the whole pipeline (one by
Snakemake, one by DVC) built once per test session on temporary copies of the repository and
shared by the end-to-end tests."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time

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


@pytest.fixture(scope="session")
def smk(tmp_path_factory):
    """A copy built once by ``snakemake --cores 2`` (as make smoke does)."""
    repo = copy_repo(tmp_path_factory.mktemp("smk") / "repo")
    # CPU only: the one-GPU cap of the profile is lifted, as `make smoke` does without a GPU.
    run(["snakemake", "--cores", "2", "--resources", "gpu=2"], repo, timeout=1500)
    return repo


@pytest.fixture(scope="session")
def dvc(tmp_path_factory):
    """A copy built once by ``dvc repro``, its dvc.lock committed."""
    repo = copy_repo(tmp_path_factory.mktemp("dvc") / "repo")
    run(["dvc", "repro", *DVC_TARGETS], repo, timeout=1500)
    run(["git", "add", "dvc.lock"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    return repo


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
