"""Fetching, verifying and extracting CIFAR-10-format archives, served from a local HTTP server."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robust.download import (
    CIFAR10_CLASSES,
    CIFAR10_URL,
    DataError,
    fetch,
    prepare_cifar10,
)

N_PER_BATCH, N_TEST = 4, 3
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _batch(n: int, offset: int) -> dict:
    rng = np.random.default_rng(offset)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {b"data": data, b"labels": [(offset + i) % 10 for i in range(n)], b"batch_label": b"x"}


def _archive(members: dict[str, object]) -> bytes:
    """A .tar.gz of pickled members (protocol 2, like the original) under cifar-10-batches-py/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, obj in members.items():
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _members() -> dict[str, object]:
    members: dict[str, object] = {
        name: _batch(N_PER_BATCH, offset=k * N_PER_BATCH) for k, name in enumerate(TRAIN_BATCHES)
    }
    members["test_batch"] = _batch(N_TEST, offset=100)
    members["batches.meta"] = {b"label_names": [c.encode() for c in CIFAR10_CLASSES]}
    return members


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _serve(server, data: bytes, name: str = "cifar-10-python.tar.gz") -> str:
    folder, base, _ = server
    (folder / name).write_bytes(data)
    return f"{base}/{name}"


def _assert_nothing_left(tmp_path: Path) -> None:
    assert not (tmp_path / "out.pt").exists()
    work = tmp_path / "work"
    assert not work.exists() or list(work.iterdir()) == []


def test_good_archive_is_prepared(tmp_path, server):
    data = _archive(_members())
    url = _serve(server, data)
    out, work = tmp_path / "out.pt", tmp_path / "work"
    prepare_cifar10(out, work, url=url, md5=_md5(data))
    prepared = torch.load(out, weights_only=True)
    assert prepared["dataset"] == "cifar10"
    assert prepared["x_train"].shape == (5 * N_PER_BATCH, 3, 32, 32)
    assert prepared["x_train"].dtype == torch.uint8 and prepared["y_train"].dtype == torch.int64
    assert prepared["x_test"].shape == (N_TEST, 3, 32, 32)
    first = _batch(N_PER_BATCH, 0)
    assert torch.equal(
        prepared["x_train"][:N_PER_BATCH].flatten(1), torch.from_numpy(first[b"data"])
    )
    assert prepared["y_train"].tolist() == [i % 10 for i in range(5 * N_PER_BATCH)]
    assert prepared["y_test"].tolist() == [(100 + i) % 10 for i in range(N_TEST)]
    assert prepared["class_names"] == list(CIFAR10_CLASSES)
    assert sorted(p.name for p in work.iterdir()) == [
        "cifar-10-python.tar.gz"
    ]  # no extraction left

    # Subsets keep the first n; the verified archive is reused without downloading.
    (server[0] / "cifar-10-python.tar.gz").unlink()
    prepare_cifar10(out, work, url=url, md5=_md5(data), n_train=5, n_test=2)
    small = torch.load(out, weights_only=True)
    assert small["x_train"].shape[0] == 5 and small["y_test"].shape == (2,)
    assert torch.equal(small["x_train"], prepared["x_train"][:5])


def test_wrong_checksum_names_both_md5s_and_leaves_nothing(tmp_path, server):
    data = _archive(_members())
    url = _serve(server, data)
    with pytest.raises(DataError) as err:
        prepare_cifar10(tmp_path / "out.pt", tmp_path / "work", url=url, md5="0" * 32)
    message = str(err.value)
    assert "\n" not in message and "cifar-10-python.tar.gz" in message and url in message
    assert "0" * 32 in message and _md5(data) in message
    _assert_nothing_left(tmp_path)


def test_truncated_archive_with_matching_md5_fails_extraction_and_leaves_nothing(tmp_path, server):
    data = _archive(_members())[:-300]
    url = _serve(server, data)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz") as err:
        prepare_cifar10(tmp_path / "out.pt", tmp_path / "work", url=url, md5=_md5(data))
    assert "\n" not in str(err.value)
    _assert_nothing_left(tmp_path)


def test_archive_without_a_member_fails_and_leaves_nothing(tmp_path, server):
    members = _members()
    del members["test_batch"]
    data = _archive(members)
    url = _serve(server, data)
    with pytest.raises(DataError, match="test_batch"):
        prepare_cifar10(tmp_path / "out.pt", tmp_path / "work", url=url, md5=_md5(data))
    _assert_nothing_left(tmp_path)


def test_pickles_that_would_run_code_are_refused(tmp_path, server):
    members = _members()
    members["data_batch_1"] = collections.OrderedDict(a=1)  # needs a global beyond numpy arrays
    data = _archive(members)
    url = _serve(server, data)
    with pytest.raises(DataError, match="refusing to load collections.OrderedDict"):
        prepare_cifar10(tmp_path / "out.pt", tmp_path / "work", url=url, md5=_md5(data))
    _assert_nothing_left(tmp_path)


def test_missing_file_is_a_one_line_error(tmp_path, server):
    url = f"{server[1]}/nothing-here.tar.gz"
    with pytest.raises(DataError, match="404") as err:
        prepare_cifar10(tmp_path / "out.pt", tmp_path / "work", url=url, md5="a" * 32)
    assert url in str(err.value) and "a" * 32 in str(err.value) and "\n" not in str(err.value)
    _assert_nothing_left(tmp_path)


def test_unreachable_host_is_a_one_line_error(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    with pytest.raises(DataError, match="cannot fetch") as err:
        fetch(url, tmp_path / "work" / "a.tar.gz", "b" * 32, timeout=5.0)
    assert url in str(err.value) and "b" * 32 in str(err.value)
    _assert_nothing_left(tmp_path)


def test_local_archive_replaces_the_url(tmp_path):
    data = _archive(_members())
    local = tmp_path / "mine.tar.gz"
    local.write_bytes(data)
    out = tmp_path / "out.pt"
    prepare_cifar10(out, tmp_path / "work", url=CIFAR10_URL, md5=_md5(data), archive=local)
    assert torch.load(out, weights_only=True)["x_test"].shape == (N_TEST, 3, 32, 32)
    assert local.read_bytes() == data  # the user's file is only read
    # A plain path in place of the URL works too (a mirror on a mounted disk).
    assert fetch(str(local), tmp_path / "copy.tar.gz", _md5(data)) == _md5(data)
    assert (tmp_path / "copy.tar.gz").read_bytes() == data
    with pytest.raises(DataError, match="No such file"):
        fetch(CIFAR10_URL, tmp_path / "x.tar.gz", _md5(data), archive=tmp_path / "absent.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()


def test_only_the_batches_are_read_and_nothing_is_extracted(tmp_path):
    """Members are read from the archive, never written: one that would escape the folder (or a
    file CIFAR-10 does not need, like its readme) is ignored."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(_archive(_members()))) as good,
        tarfile.open(fileobj=buffer, mode="w:gz") as tar,
    ):
        for info in good:
            tar.addfile(info, good.extractfile(info))
        for name, payload in (("../escaped", b"x"), ("cifar-10-batches-py/readme.html", b"<html>")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    local = tmp_path / "mine.tar.gz"
    local.write_bytes(buffer.getvalue())
    out, work = tmp_path / "out.pt", tmp_path / "work"
    prepare_cifar10(out, work, md5=_md5(buffer.getvalue()), archive=local)
    assert torch.load(out, weights_only=True)["x_train"].shape == (5 * N_PER_BATCH, 3, 32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.tar.gz", "out.pt", "work"]
    assert sorted(p.name for p in work.iterdir()) == ["cifar-10-python.tar.gz"]
