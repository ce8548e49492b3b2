# Configuration checks, command-line rendering and target lists shared by all rules.
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "scripts"))

from robust import config as params_check  # noqa: E402
from robust.deps import certify_files, id_files, library_deps  # noqa: E402
from robust.deps import result_inputs, result_outputs  # noqa: E402

SCHEMA = Path(workflow.basedir) / "schemas" / "params.schema.yaml"
# The files the configuration came from, in merge order (later ones override).
CONFIG_FILES = [
    str(path) for path in workflow.configfiles if str(path) == "params.yaml"
]
CONFIG_FILES += [os.path.relpath(path) for path in workflow.overwrite_configfiles]

try:
    params_check.check(config, SCHEMA)
except params_check.ParamsError as err:
    sources = [(p, params_check.load_yaml(Path(p))) for p in CONFIG_FILES]
    for line in params_check.attribute(str(err), sources).splitlines():
        print(f"error: {line}", file=sys.stderr)
    raise SystemExit(2)


def visible_gpus():
    """GPUs this machine shows (CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`), 0 without."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


# GPU jobs at once on this machine, unless `--resources gpu=N` says otherwise: one per visible GPU; on a
# machine without one they run on the CPU, as many as there are cores. A cluster schedules its own (and
# a job that a cluster or storage executor started runs alone).
if (
    workflow.is_main_process
    and workflow.nodes is None  # --jobs N: jobs go to a cluster or cloud executor
    and "gpu" not in workflow.global_resources
):
    GPU_CAP = visible_gpus() or workflow.cores
    workflow.register_resource("gpu", GPU_CAP)
    print(
        f"GPU jobs at once: {GPU_CAP} ({visible_gpus()} GPUs visible)", file=sys.stderr
    )


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    model="[A-Za-z0-9][A-Za-z0-9_-]*",
    run="[A-Za-z0-9][A-Za-z0-9_-]*",
    column="[A-Za-z0-9][A-Za-z0-9_-]*",


def _arg(value):
    return shlex.quote(value) if isinstance(value, str) else str(value)


def cli(section):
    """Render a params section as flags exactly as DVC unpacks ``${section}`` in a command.

    (DVC with parsing.bool = boolean_optional: true -> --k, false -> --no-k, list -> --k a b, [] omitted;
    strings shell-quoted with shlex.quote, as DVC does.)
    """
    out = []
    for key, value in section.items():
        if isinstance(value, bool):
            out.append(f"--{key}" if value else f"--no-{key}")
        elif isinstance(value, list):
            if value:
                out.append(" ".join([f"--{key}"] + [_arg(v) for v in value]))
        else:
            out.append(f"--{key} {_arg(value)}")
    return " ".join(out)


def folder_of(folder):
    """A ``--x_dir`` argument: ``folder`` (``results/pag``), where the job reads its inputs from.

    Locally that is the folder DVC's command names. With a default storage provider a job sees
    local copies of its inputs under ``.snakemake/storage/``, and a folder written out in the
    command would be empty there; this one follows the copies of the job's inputs.
    """

    def located(wildcards, input):
        return os.path.dirname(next(path for path in input if f"{folder}/" in path))

    return located


def out_stem(wildcards, output):
    """A figure's ``--out`` argument: its first output without the suffix (``paper/figures/fig1``,
    or the local copy of it under a default storage provider)."""
    return os.path.splitext(output[0])[0]


def code(script):
    """A stage script and the library files it imports: inputs, so that code edits rerun the rule."""
    return [script, *library_deps(script)]


def smoothing_inputs(section):
    def inputs(wc):
        run = config[section][wc.run]
        return {
            "ckpt": f"results/models/{run['model']}.pt",
            "data": f"resources/data/{run['dataset']}.pt",
        }

    return inputs


def all_models():
    """Every model id: trained (``models``) and converted (``pretrained``) -> its params entry."""
    return params_check.all_models(config)


def model_dataset(wc):
    """The prepared dataset of the model ``wc.model``, trained or pretrained."""
    return f"resources/data/{all_models()[wc.model]['dataset']}.pt"


def one_of(names):
    """A wildcard constraint matching exactly these ids (none at all when there are none)."""
    return "|".join(sorted(names)) or "(?!)"


# stage -> the result files of the ids it lists, and the summary files it writes for them
RESULTS, RESULT_OUTPUTS = result_inputs(config), result_outputs(config)


def existing_files(paths):
    """The paths that exist when the workflow is planned: optional inputs (the score-alignment
    weights), so that adding one reruns the rule and lacking one is no error."""
    return [path for path in paths if Path(path).is_file()]


CHECKED = "results/params.ok"


def final_targets():
    targets = [CHECKED, "paper/generated/numbers.tex"]
    targets += expand("paper/figures/{name}.{ext}", name=FIGURES, ext=["pdf", "png"])
    targets += expand("paper/tables/{name}.tex", name=TABLES)
    targets += expand("results/predict/{run}.json", run=config["predict"])
    targets += expand("results/certify/{run}.json", run=config["certify"])
    # checkpoints and their records too: a run after a kill restores them, even when every
    # figure that needs them is still there
    targets += expand("results/models/{model}.pt", model=all_models())
    targets += expand("results/train/{model}.json", model=all_models())
    targets += expand("results/eval/{model}.json", model=all_models())
    targets += expand("results/pag/{column}.pt", column=config["pag"]["columns"])
    # without its weight files the score-alignment job writes a skip record
    targets.append("results/metrics/score_alignment.json")
    # robust.report.latex_available, without importing numpy
    if shutil.which("latexmk"):
        targets.append("paper/main.pdf")
    else:
        print(
            "note: no latexmk found; figures and tables are built but not paper/main.pdf "
            "(apt-get install texlive-latex-base texlive-latex-recommended "
            "texlive-fonts-recommended latexmk)",
            file=sys.stderr,
        )
    return targets
