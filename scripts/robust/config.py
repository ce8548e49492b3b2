"""Validation of params.yaml before any job (Snakemake from ``workflow/rules/common.smk``, DVC in
its ``check_params`` stage): the JSON Schema (types, ranges, required keys), then the
cross-references a schema cannot express (a run naming an existing model, n0 <= n, ...). Each
problem is one line naming the key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML has it (several times faster; the same safe constructors)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ParamsError(ValueError):
    """params.yaml is malformed; the message names the key and the reason, one problem per line."""


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML file into a dict, with a one-line error naming the file, line and reason."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}:{where}: YAML does not parse: {problem}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of sections")
    return data


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists ``properties`` closed: each listed key required
    (unless it states ``required`` itself) and no other key allowed, since params have no
    defaults; a schema of ``propertyNames`` (a map keyed by ids) requires an object."""
    if isinstance(schema, list):
        return [closed(node) for node in schema]
    if not isinstance(schema, dict):
        return schema
    # an `if` only tests a key; closing it would make it fail on every other key
    schema = {key: node if key == "if" else closed(node) for key, node in schema.items()}
    if "properties" in schema:
        close = {"type": "object", "additionalProperties": False}
        schema = close | {"required": list(schema["properties"])} | schema
    return {"type": "object"} | schema if "propertyNames" in schema else schema


def _describe(schema: dict, root: dict) -> str:
    """What a schema accepts, in words ('null', "a string matching '^[0-9a-f]{64}$'", ...)."""
    if "$ref" in schema:  # a local "#/$defs/<name>", its keys overridden by the ones beside it
        schema = root["$defs"][schema["$ref"].split("/")[-1]] | schema
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    words = {"null": "null", "string": "a string", "number": "a number", "integer": "an integer",
             "boolean": "true or false", "array": "a list", "object": "a map"}  # fmt: skip
    text = words.get(schema.get("type"), "a value")
    if "pattern" in schema:
        text += f" matching '{schema['pattern']}'"
    for bound, word in (("minimum", ">="), ("exclusiveMinimum", ">")):
        if bound in schema:
            text += f" {word} {schema[bound]}"
    return text


def _lines(error, root: dict) -> list[tuple[list, str]]:
    """(key path, reason) of one schema error: a missing or unexpected key is named in the path
    (with the keys expected there), a choice of schemas (oneOf, anyOf) lists its alternatives."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        expected = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in expected]
        return [([*path, k], f"not expected here (expected: {', '.join(expected)})") for k in extra]
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [([*path, k], "required, missing") for k in missing]
    if error.validator == "pattern" and "description" in error.schema:  # the pattern in words
        return [(path, f"{error.instance!r} is not {error.schema['description']}")]
    if error.validator in ("oneOf", "anyOf"):
        options = [_describe(option, root) for option in error.validator_value]
        return [(path, f"{error.instance!r} is none of: {'; '.join(options)}")]
    return [(path, error.message)]


# Maps keyed by ids: an error repeated by several of their entries (a value merged from one
# template) is reported once, naming the entries.
ID_MAPS = (("models",), ("pretrained",), ("certify",), ("predict",), ("datasets",),
           ("pag", "columns"), ("report", "pag_figures"),
           ("report", "train_vs_certify"))  # fmt: skip


def grouped(lines: list[str]) -> list[str]:
    """``lines`` (``<key>: <reason>``) with the lines that differ only in the entry id of an id map
    merged into one: ``models.{a,b,c}.lr: <reason>``. Order of first appearance."""
    groups: dict[tuple, list[str]] = {}  # (*key parts with None for the entry id, reason) -> ids
    for line in lines:
        key, _, reason = line.partition(": ")
        parts = key.split(".")
        at = next((len(p) for p in ID_MAPS if tuple(parts[: len(p)]) == p), len(parts))
        ids = parts[at : at + 1]  # the entry id, if the key names one
        parts[at : at + 1] = [None] * len(ids)
        groups.setdefault((*parts, reason), []).extend(ids)
    out = []
    for (*parts, reason), ids in groups.items():
        entry = ids[0] if len(ids) == 1 else "{" + ",".join(ids) + "}"
        out.append(f"{'.'.join(entry if part is None else part for part in parts)}: {reason}")
    return out


def schema_errors(params: dict, schema: dict) -> list[str]:
    """One line per schema violation, ``<key>: <reason>``, sorted by key; a dataset's line names
    its kind (whose schema applies)."""
    import jsonschema  # installed with snakemake, which validates with it too

    validator = jsonschema.Draft202012Validator(closed(schema))
    lines = []
    for error in validator.iter_errors(params):
        leaf = jsonschema.exceptions.best_match([error])
        deepest = max([leaf, *error.context], key=lambda e: len(e.absolute_path))
        for path, reason in _lines(deepest, schema):
            if len(path) > 2 and path[0] == "datasets" and path[2] != "kind":
                reason += f" (a {params['datasets'][path[1]].get('kind')} dataset)"
            lines.append(f"{'.'.join(map(str, path)) or '(top level)'}: {reason}")
    return sorted(set(lines))


def _unknown(key: str, ids: str | list[str], pool: dict, what: str) -> Iterator[str]:
    """One line per id of ``ids`` (or the one id) that ``pool`` does not define."""
    for i in [ids] if isinstance(ids, str) else ids:
        if i not in pool:
            yield f"{key}: unknown {what} '{i}'; defined: {', '.join(pool) or 'none'}"


def _model_checks(params: dict) -> Iterator[str]:
    for mid, m in params["models"].items():
        key = f"models.{mid}"
        yield from _unknown(f"{key}.dataset", m["dataset"], params["datasets"], "dataset")
        if m["kind"] == "gaussian" and m["sigma"] <= 0:
            yield f"{key}.sigma: kind gaussian needs sigma > 0"
        if m["warmup_epochs"] >= m["epochs"]:
            yield f"{key}.warmup_epochs: must be less than epochs ({m['epochs']})"
        if m["kind"] != "gaussian" and m["sigma"] != 0:
            yield f"{key}.sigma: must be 0.0 for kind {m['kind']}"
        if m["kind"] == "adversarial":
            if m["eps"] <= 0 or m["attack_steps"] < 1 or m["attack_step_size"] <= 0:
                needs = "eps > 0, attack_steps >= 1, attack_step_size > 0"
                yield f"{key}: kind adversarial needs {needs}"
        elif m["eps"] != 0 or m["attack_steps"] != 0:
            yield f"{key}.eps: eps and attack_steps must be 0 for kind {m['kind']}"


NUM_CLASSES = {"cifar10": 10, "synthetic": 10, "imagenet": 1000}  # by dataset kind


def all_models(params: dict) -> dict[str, dict]:
    """Every model id a stage may name: the trained ``models`` and the converted ``pretrained``."""
    return {**params["models"], **params.get("pretrained", {})}


def _pretrained_checks(params: dict) -> Iterator[str]:
    models, datasets = params["models"], params["datasets"]
    if not models and not params["pretrained"]:
        yield "models: no model at all (models and pretrained are both empty)"
    for mid, m in params["pretrained"].items():
        key = f"pretrained.{mid}"
        if mid in models:
            yield f"{key}: the id is also in models; one id names one checkpoint"
        yield from _unknown(f"{key}.dataset", m["dataset"], datasets, "dataset")
        for name, kind in (("sigma", "gaussian"), ("eps", "adversarial")):
            if (m["kind"] == kind) != (m[name] > 0):
                yield f"{key}.{name}: {m[name]} does not fit kind {m['kind']} (> 0 only if {kind})"
        member = m["member"]
        if m["format"] == "cohen" and member == "none":
            yield f"{key}.member: cohen checkpoints come in one archive; name the file inside it"
        elif member.startswith("/") or ".." in member.split("/"):
            yield f"{key}.member: '{member}' must be a relative path without '..'"


def _run_checks(params: dict) -> Iterator[str]:
    models = all_models(params)
    runs = [(f"{s}.{rid}", run) for s in ("certify", "predict") for rid, run in params[s].items()]
    for key, run in runs:
        model = models.get(run["model"])
        yield from _unknown(f"{key}.model", run["model"], models, "model")
        if model is not None and run["dataset"] != model["dataset"]:
            run_dataset, model_dataset = run["dataset"], model["dataset"]
            yield f"{key}.dataset: '{run_dataset}' differs from model's dataset '{model_dataset}'"
        if "n0" in run and run["n0"] > run["n"]:
            yield f"{key}.n0: n0 ({run['n0']}) must not exceed n ({run['n']})"


def _pag_checks(params: dict) -> Iterator[str]:
    models, datasets, pag = all_models(params), params["datasets"], params["pag"]
    settings, pairs = pag["settings"], pag["settings"]["pairs"]
    dataset = datasets.get(settings["dataset"])
    yield from _unknown("pag.settings.dataset", settings["dataset"], datasets, "dataset")
    if dataset is not None:
        available = len(range(0, dataset["n_test"], settings["pair_skip"]))
        if pairs > available and not settings["idx"]:
            yield f"pag.settings.pairs: {pairs} pairs but only {available} test images at pair_skip"
    # explicit start images and targets: one per pair, inside the test split and the classes
    for key, bound in (("idx", "n_test"), ("targets", "classes")):
        values = settings[key]
        if values and len(values) != pairs:
            yield f"pag.settings.{key}: {len(values)} values for {pairs} pairs"
        if values and dataset is not None:
            limit = dataset["n_test"] if bound == "n_test" else NUM_CLASSES[dataset["kind"]]
            if max(values) >= limit:
                yield f"pag.settings.{key}: {max(values)} is out of range ({bound}: {limit})"
    for cid, column in pag["columns"].items():
        key, model = f"pag.columns.{cid}.model", models.get(column["model"])
        yield from _unknown(key, column["model"], models, "model")
        if model is not None and model["dataset"] != settings["dataset"]:
            yield f"{key}: model dataset '{model['dataset']}' is not pag's dataset"


def _report_checks(params: dict) -> Iterator[str]:
    report, runs, columns = params["report"], params["certify"], params["pag"]["columns"]
    settings = params["pag"]["settings"]
    for fig, grid in report["pag_figures"].items():
        key = f"report.pag_figures.{fig}"
        yield from _unknown(f"{key}.columns", grid["columns"], columns, "PAG column")
        for r in grid["rows"]:
            if r >= settings["pairs"]:
                yield f"{key}.rows: row {r} but pag.settings.pairs is {settings['pairs']}"
        if grid["eps"] != "all" and grid["eps"] not in settings["eps"]:
            yield f"{key}.eps: {grid['eps']} is not one of pag.settings.eps {settings['eps']}"
    yield from _unknown("report.certified.runs", report["certified"]["runs"], runs, "run")
    models = all_models(params)
    yield from _unknown("report.training.models", report["training"]["models"], models, "model")
    yield from _unknown("report.numbers.columns", report["numbers"]["columns"], columns, "column")
    if sorted(report["numbers"]["train_vs_certify"]) != sorted(report["train_vs_certify"]):
        yield (
            "report.numbers.train_vs_certify: must list exactly the keys of report.train_vs_certify"
        )
    for fid, figure in report["train_vs_certify"].items():
        yield from _unknown(f"report.train_vs_certify.{fid}.runs", figure["runs"], runs, "run")


def objective(model: dict) -> str:
    """A model's training objective in words: its kind with the threat model or noise level."""
    if model["kind"] == "gaussian":
        return f"gaussian sigma {model['sigma']}"
    if model["kind"] == "adversarial":
        return f"adversarial {model['norm']} eps {model['eps']}"
    return "standard"


def _group_checks(group: str, columns: dict, models: dict) -> Iterator[str]:
    """The runs of a column joined by '+': known PAG columns, one smoothing sigma, models that
    differ only in their seed."""
    runs = group.split("+")
    yield from _unknown("pag_metrics.columns", runs, columns, "PAG column")
    if len(set(runs)) < len(runs):
        yield f"pag_metrics.columns: '{group}' names a run twice"
    if any(r not in columns or columns[r]["model"] not in models for r in runs):
        return
    first = models[columns[runs[0]]["model"]]
    for run in runs[1:]:
        model = models[columns[run]["model"]]
        differ = [k for k in first if k != "seed" and model.get(k) != first[k]]
        if columns[run]["sigma"] != columns[runs[0]]["sigma"]:
            differ.insert(0, "sigma of the column")
        if differ or model.get("seed") == first.get("seed"):
            yield (
                f"pag_metrics.columns: runs '{runs[0]}' and '{run}' of '{group}' must differ "
                f"only in their model's seed ({', '.join(differ) or 'same seed'})"
            )


def _judge_checks(judge: dict, jid: str, tested: dict, trained: dict) -> Iterator[str]:
    """A judge apart from the models under test (``tested``: model id -> entry): another training
    objective if robust, and, for trained models, another architecture and seed."""
    for mid, model in tested.items():
        if judge["kind"] != "standard" and objective(judge) == objective(model):
            yield (
                f"pag_metrics.judges: '{jid}' has the training objective of column model "
                f"'{mid}' ({objective(model)}); a robust judge needs another threat model or sigma"
            )
            return
    for mid in (m for m in tested if m in trained and jid in trained):
        same = [k for k in ("arch", "seed") if trained[jid][k] == trained[mid][k]]
        if same:
            yield (
                f"pag_metrics.judges: '{jid}' has the {' and '.join(same)} of column model "
                f"'{mid}'; a judge needs another architecture and seed"
            )
            return


def _metrics_checks(params: dict) -> Iterator[str]:
    section, columns, models = params["pag_metrics"], params["pag"]["columns"], all_models(params)
    for group in section["columns"]:
        yield from _group_checks(group, columns, models)
    runs = {r for group in section["columns"] for r in group.split("+") if r in columns}
    tested = {columns[r]["model"]: models[columns[r]["model"]] for r in sorted(runs)
              if columns[r]["model"] in models}  # fmt: skip
    key = "pag_metrics.judges"
    yield from _unknown(key, section["judges"], models, "model")
    kinds: dict[str, list[str]] = {}
    for judge in (j for j in section["judges"] if j in models):
        kinds.setdefault(models[judge]["kind"], []).append(judge)
        if judge in tested:
            yield f"{key}: '{judge}' made some of the images it would judge"
        elif models[judge]["dataset"] != params["pag"]["settings"]["dataset"]:
            yield f"{key}: '{judge}' was trained on another dataset than the PAG images"
        else:
            yield from _judge_checks(models[judge], judge, tested, params["models"])
    for kind, judges in kinds.items():
        if len(judges) > 1:
            yield f"{key}: {', '.join(judges)} are all of kind {kind}; one per kind"
    dataset = params["datasets"].get(params["pag"]["settings"]["dataset"], {})
    if section["reference"] == "class_means" and dataset.get("n_train") == 0:
        yield "pag_metrics.reference: class_means needs training images (n_train is 0)"
    if section["reference"] == "prototypes" and dataset.get("kind") != "synthetic":
        yield (
            "pag_metrics.reference: prototypes exist only for the synthetic dataset; use "
            "class_means"
        )


def _score_alignment_checks(params: dict) -> Iterator[str]:
    section, models, datasets = params["score_alignment"], all_models(params), params["datasets"]
    key, dataset = "score_alignment", section["dataset"]
    yield from _unknown(f"{key}.dataset", dataset, datasets, "dataset")
    if dataset in datasets and section["n_images"] > datasets[dataset]["n_test"]:
        yield f"{key}.n_images: more than the {datasets[dataset]['n_test']} test images"
    if len(section["sigmas"]) != len(section["models"]):
        yield f"{key}.sigmas: needs one sigma per model ({len(section['models'])})"
    elif len(set(zip(section["models"], section["sigmas"], strict=True))) < len(section["models"]):
        yield f"{key}.models: a (model, sigma) pair is listed twice"
    yield from _unknown(f"{key}.models", section["models"], models, "model")
    for model in (m for m in section["models"] if m in models):
        if models[model]["dataset"] != dataset:
            yield f"{key}.models: '{model}' was trained on another dataset than {dataset}"


# The cross-reference checks of a params dict, in the order their lines are reported.
CHECKS = (_model_checks, _pretrained_checks, _run_checks, _pag_checks, _metrics_checks,
          _score_alignment_checks, _report_checks)  # fmt: skip


def semantic_errors(params: dict, root: Path = Path(".")) -> list[str]:
    """Cross-reference problems of a schema-valid params dict, one line each; ``root`` holds the
    report's reference files."""
    lines = [line for check in CHECKS for line in check(params)]
    report = params["report"]
    figures = {"certified": report["certified"]}
    figures |= {f"train_vs_certify.{k}": v for k, v in report["train_vs_certify"].items()}
    for key, figure in figures.items():
        if not (root / figure["reference"]).is_file():
            lines.append(f"report.{key}.reference: file not found: {root / figure['reference']}")
    return lines


def merge(layers: list[dict]) -> dict:
    """The configuration of several files, each overriding the ones before it key by key (nested
    maps merged, anything else replaced), as Snakemake merges ``--configfile`` files."""
    merged: dict = {}
    for layer in layers:
        for key, value in layer.items():
            nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = merge([merged[key], value]) if nested else copy.deepcopy(value)
    return merged


def attribute(message: str, sources: list[tuple[Path, dict]]) -> str:
    """``message`` (one problem per line, ``<key>: <reason>``) with every line prefixed by the file
    its key comes from: of ``sources`` ((path, data) in merge order), the last whose data holds
    the longest part of the dotted key."""

    def depth(data: Any, key: str) -> int:
        found = 0
        for part in key.split("."):
            if not isinstance(data, dict) or part not in data:
                break
            data, found = data[part], found + 1
        return found

    def origin(line: str) -> Path:
        key = re.sub(r"\{([^,}]+)[^}]*\}", r"\1", line.split(": ", 1)[0])  # models.{a,b} -> a
        return max(reversed(sources), key=lambda pair: depth(pair[1], key))[0]

    return "\n".join(f"{origin(line)}: {line}" for line in message.splitlines())


def check(params: dict, schema_path: Path, root: Path = Path(".")) -> None:
    """Raise ParamsError listing every problem (schema first, then cross-references)."""
    errors = schema_errors(params, load_yaml(schema_path)) or semantic_errors(params, root)
    if errors:
        raise ParamsError("\n".join(grouped(errors)))
