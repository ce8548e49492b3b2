"""Readers of the result files for the report scripts (JSON records, certify TSVs, published
reference tables, PAG records): a missing or malformed input raises a one-line ``ReportError``."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robust.latex import as_number, format_float, tex_escape
from robust.report import ReportError
from robust.stats import norm_ppf


def read_text(path: Path, what: str, role: str = "result") -> str:
    """The UTF-8 text of a ``role`` file; missing, binary or not UTF-8 -> a one-line error."""
    if not path.is_file():
        raise ReportError(f"missing {role} file {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise ReportError(f"{path}: not a {what} (binary or not UTF-8)")
    return text


def load_json(path: Path, keys: Sequence[str] = ()) -> dict:
    """A result JSON object that has ``keys``."""
    try:
        record = json.loads(read_text(path, "JSON text file"))
    except json.JSONDecodeError as err:
        raise ReportError(f"malformed JSON in {path}: {err.msg} (line {err.lineno})") from None
    if not isinstance(record, dict):
        raise ReportError(f"{path}: a JSON object was expected, found {type(record).__name__}")
    for key in keys:
        require(record, key, path)
    return record


def require(record: dict, key: str, path: Path) -> Any:
    """``record[key]`` or a one-line error naming the file and the key."""
    if key not in record:
        raise ReportError(f"{path}: missing key '{key}'")
    return record[key]


CERTIFY_COLUMNS = ("idx", "label", "predict", "radius", "correct")


def read_certify(
    path: Path, rows: int | None = None, max_radius: float = math.inf
) -> tuple[np.ndarray, np.ndarray]:
    """(radius float64 [N], correct bool [N]) from a certify TSV (Cohen et al.'s columns), checked:
    the columns, ``rows`` rows when given, finite radii in [0, ``max_radius``], correct 0 or 1."""
    reader = csv.DictReader(read_text(path, "certify TSV").splitlines(), delimiter="\t")
    missing = [c for c in CERTIFY_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ReportError(f"{path}: no column {', '.join(missing)} (expected a header "
                          f"{' '.join(CERTIFY_COLUMNS)} time)")  # fmt: skip
    table = list(reader)
    if rows is not None and len(table) != rows:
        raise ReportError(f"{path}: {len(table)} rows, but its summary says {rows} images")
    try:
        radius = np.array([float(r["radius"]) for r in table], dtype=np.float64)
        flags = [int(r["correct"]) for r in table]
    except (TypeError, ValueError):
        raise ReportError(f"{path}: a radius or correct value is not a number") from None
    bad = ~np.isfinite(radius) | (radius < 0) | (radius > max_radius + 1e-9)
    if bad.any():
        i = int(np.argmax(bad))
        raise ReportError(f"{path}: row {i + 1} has radius {radius[i]}, outside "
                          f"[0, {max_radius:.4g}] (the largest this run can certify)")  # fmt: skip
    if any(flag not in (0, 1) for flag in flags):
        raise ReportError(f"{path}: a correct value is neither 0 nor 1")
    return radius, np.array(flags, dtype=bool)


def read_reference(path: Path) -> dict[float, dict[float, float]]:
    """Published certified accuracies: {sigma: {radius: accuracy}} (non-numeric columns dropped)."""
    text = read_text(path, "reference TSV", role="reference")
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows or rows[0][0] != "sigma":
        raise ReportError(f"{path}: the header must start with 'sigma'")
    radii = {i: as_number(h) for i, h in enumerate(rows[0]) if i > 0 and as_number(h) is not None}
    return {float(r[0]): {radii[i]: float(r[i]) for i in radii} for r in rows[1:] if r}


def lookup(table: dict[float, Any], key: float) -> Any:
    """``table[key]`` with float keys compared by ``math.isclose``; None if absent."""
    return next((v for k, v in table.items() if math.isclose(k, key, abs_tol=1e-9)), None)


def load_certify_run(certify_dir: Path, run: str, reference: dict) -> dict:
    """A certify run: its summary JSON plus ``sigma`` and ``train_sigma`` (floats), ``radius`` and
    ``correct`` (the TSV's arrays) and ``published``, Cohen et al.'s {radius: accuracy} at its
    sigma ({} when certified at another sigma than its training sigma: nothing was published)."""
    meta = load_json(certify_dir / f"{run}.json", ("sigma", "n0", "n", "alpha", "n_images"))
    sigma = float(meta["sigma"])
    train_sigma = float(meta.get("train_sigma", sigma))
    # the largest radius n samples can certify: p_A's lower bound is at most alpha ** (1 / n)
    largest = sigma * norm_ppf(float(meta["alpha"]) ** (1.0 / float(meta["n"])))
    radius, correct = read_certify(certify_dir / f"{run}.tsv", int(meta["n_images"]), largest)
    published = (lookup(reference, sigma) if math.isclose(sigma, train_sigma) else None) or {}
    return meta | {"sigma": sigma, "train_sigma": train_sigma, "radius": radius,
                   "correct": correct, "published": published}  # fmt: skip


def train_note(run: dict) -> str:
    """' (train 0.25)' for a run certified at another sigma than its training sigma, else ''."""
    same = math.isclose(run["sigma"], run["train_sigma"])
    return "" if same else f" (train {format_float(run['train_sigma'])})"


PAG_KEYS = ("column", "kind", "sigma", "eps", "labels", "targets", "class_names", "x0", "images")


def load_pag(path: Path) -> dict:
    """A PAG result (.pt, see the result formats) as a dict."""
    import torch

    if not path.is_file():
        raise ReportError(f"missing PAG result {path}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a corrupt file
        raise ReportError(f"cannot read PAG result {path}: {type(err).__name__}") from None
    for key in PAG_KEYS:
        require(record, key, path)
    return record


def eps_index(record: dict, eps: float, path: Path) -> int:
    """Position of ``eps`` in the record's generation radii, or a one-line error listing them."""
    values = [float(e) for e in record["eps"]]
    for i, value in enumerate(values):
        if math.isclose(value, eps, rel_tol=1e-6, abs_tol=1e-9):
            return i
    found = ", ".join(format_float(v) for v in values)
    raise ReportError(f"eps {format_float(eps)} not in {path} (has {found})")


def training_label(kind: str, sigma: float, eps: float) -> str:
    """How a classifier was trained, in LaTeX and mathtext alike: 'Gaussian ($\\sigma = 0.25$)',
    'PGD ($\\epsilon = 0.5$)' or the kind itself."""
    if kind == "gaussian":
        return rf"Gaussian ($\sigma = {format_float(sigma)}$)"
    if kind == "adversarial":
        return rf"PGD ($\epsilon = {format_float(eps)}$)"
    return tex_escape(kind)


def pag_role(record: dict) -> str:
    """'smoothed' (sigma > 0), 'standard', 'adversarial' or 'base' (noise-trained f, unsmoothed)."""
    if float(record["sigma"]) > 0:
        return "smoothed"
    return {"standard": "standard", "adversarial": "adversarial"}.get(str(record["kind"]), "base")


def column_info(
    model_id: str, kind: str, sigma: float, train_sigma: float, train_eps: float
) -> dict:
    """A column of the metrics JSON: the arguments plus its title (one line) and role."""
    info = {"model_id": str(model_id), "kind": str(kind), "sigma": float(sigma),
            "train_sigma": float(train_sigma), "train_eps": float(train_eps)}  # fmt: skip
    return {"title": pag_title(info).replace("\n", " "), "role": pag_role(info)} | info


def pag_title(record: dict) -> str:
    """Column title of a PAG column in mathtext, from its metadata."""
    role = pag_role(record)
    if role == "smoothed":
        return rf"Smoothed ($\sigma$={format_float(record['sigma'])})"
    if role == "adversarial":
        return rf"Adv. trained ($\epsilon$={format_float(record.get('train_eps', 0.0))})"
    if role == "base":
        sigma = format_float(record.get("train_sigma", 0.0))
        return f"Noise-trained base\n($\\sigma$={sigma}), no smoothing"
    return "Standard"
