"""Fetching dataset archives: download (or copy a local archive), verify the md5, extract atomically.

Every failure is a ``DataError`` whose one-line message names the file, the URL and, where known, the
expected and actual checksums; no partial file or folder is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from robust import io


class DataError(RuntimeError):
    """A dataset could not be fetched, verified, extracted or read."""


def md5_of(path: Path, block: int = 1 << 20) -> str:
    """Hex md5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, handle, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s)/file URLs
        shutil.copyfileobj(response, handle, length=1 << 20)


def fetch(url: str, dest: Path, md5: str, archive: Path | None = None, timeout: float = 60.0) -> Path:
    """Put a verified copy of the archive at ``dest`` and return it.

    Args:
        url: where to download from (http, https or file URL); only named in messages when ``archive``
            is given.
        dest: final path of the archive; reused without downloading when its md5 already matches.
        md5: expected hex md5.
        archive: a local copy that replaces the download.
        timeout: seconds before an unreachable host fails.

    Raises:
        DataError: unreachable host, missing file, or checksum mismatch (nothing is left at ``dest``).
    """
    dest = Path(dest)
    if dest.is_file() and md5_of(dest) == md5:
        return dest
    source = str(archive) if archive is not None else url
    try:
        with io.atomic_path(dest) as tmp:
            with open(tmp, "wb") as handle:
                if archive is not None:
                    with open(archive, "rb") as src:
                        shutil.copyfileobj(src, handle, length=1 << 20)
                else:
                    _download(url, handle, timeout)
            actual = md5_of(tmp)
            if actual != md5:
                raise DataError(
                    f"{dest.name}: checksum mismatch for {source}: expected md5 {md5}, got {actual}"
                )
    except FileNotFoundError:
        raise DataError(f"{dest.name}: local archive not found: {source} (expected md5 {md5})") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(
            f"{dest.name}: cannot download {source}: {reason} (expected md5 {md5}, got nothing)"
        ) from None
    return dest


def extract_tar(archive: Path, dest_dir: Path) -> Path:
    """Extract a (gzipped) tar archive into ``dest_dir``: a temporary sibling folder, then a rename.

    An existing ``dest_dir`` is replaced. A truncated or corrupt archive raises ``DataError`` and leaves
    neither the temporary folder nor ``dest_dir`` behind.
    """
    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", dir=dest_dir.parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        os.replace(tmp, dest_dir)
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise DataError(f"{Path(archive).name}: cannot extract archive: {err}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return dest_dir
