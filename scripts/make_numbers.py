"""Every number quoted in the paper's text, as LaTeX macros (``\\newcommand{\\Name}{value}``).

One value per role (\\CleanAccStandard: the first standard model of --models; 'n/a' without one).
Model accuracies in percent (one decimal, no % sign); certified accuracies, differences and target
probabilities as fractions (two decimals), as in the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robust import cli, latex, metrics, results
from robust.io import write_text

FMT, PCT, NUM, NA = latex.format_fraction, latex.format_percent, latex.format_float, "n/a"
DATASET_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet", "synthetic": "a synthetic dataset"}
PAG_ROLES = {"standard": "Standard", "adversarial": "Adversarial", "smoothed": "Smoothed",
             "base": "NoiseBase"}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path)
    for flag in ("--runs", "--models", "--columns"):
        parser.add_argument(flag, nargs="+", required=True)
    parser.add_argument("--radii", nargs="+", type=float, required=True)
    parser.add_argument("--reference", type=Path, required=True, help="published accuracies TSV")
    for flag in ("--certify_dir", "--eval_dir", "--train_dir", "--pag_dir"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--fig1_eps", type=float, help="PAG radius of Figure 1 (default: largest)")
    parser.add_argument(
        "--train_vs_certify", nargs="*", default=[], metavar="KEY",
        help="keys of the figures paper/figures/train_vs_certify_<KEY>.pdf the paper shows",
    )  # fmt: skip
    parser.add_argument(
        "--score_alignment", type=Path, help="score-alignment JSON (absent/skipped: 'not computed')"
    )
    parser.add_argument("--pag_metrics", type=Path, required=True, help="JSON of pag_metrics.py")
    parser.add_argument("--out", type=Path, required=True, help="numbers.tex")
    return parser.parse_args(argv)


def distinct(values) -> str:
    """Distinct values in first-seen order as words ('90', '90 and 30', 'n/a' when empty)."""
    return latex.join_words(list(dict.fromkeys(values)))


def certify_macros(args: argparse.Namespace, m: dict) -> None:
    reference = results.read_reference(args.reference)
    runs = [results.load_certify_run(args.certify_dir, run, reference) for run in args.runs]
    m[r"\CertNZero"] = distinct(str(r["n0"]) for r in runs)
    m[r"\CertN"] = distinct(latex.format_int(r["n"]) for r in runs)
    m[r"\CertAlpha"] = distinct(NUM(r["alpha"]) for r in runs)
    m[r"\NumCertImages"] = distinct(str(r["n_images"]) for r in runs)
    m[r"\SigmaList"] = latex.join_words([NUM(r["sigma"]) for r in runs])
    m[r"\RadiusMax"] = NUM(max(args.radii))
    seconds = [float(r["seconds_per_image"]) for r in runs if "seconds_per_image" in r]
    mean = sum(seconds) / len(seconds) if seconds else 0.0
    # Runs with timing.record_time false write 0 s; say so rather than quote a time.
    timing = f"Certification took {mean:.1f}\\,s per image on average."
    m[r"\CertTiming"] = timing if mean > 0 else "Wall-clock times were not recorded in this run."
    m[r"\AbstainList"] = latex.join_words([FMT(r.get("abstain_rate")) for r in runs])
    clean, clean_ref, diffs = [], [], []
    radii = [0.0, *args.radii]
    for run in runs:
        acc = [FMT(a) for a in metrics.certified_accuracy(run["radius"], run["correct"], radii)]
        published = [results.lookup(run["published"], r) for r in radii]
        clean.append(acc[0])
        clean_ref += [] if published[0] is None else [FMT(published[0])]
        for r, value, ref in zip(args.radii, acc[1:], published[1:], strict=True):
            if ref is not None:
                diffs.append((abs(float(value) - ref), NUM(run["sigma"]), NUM(r)))
    m[r"\CertCleanList"] = latex.join_words(clean)
    m[r"\CertRefCleanList"] = latex.join_words(clean_ref)
    m[r"\CertNumCompared"] = str(len(diffs))
    worst = max(diffs, default=(None, NA, NA))
    m[r"\CertMeanAbsDiff"] = FMT(sum(d[0] for d in diffs) / len(diffs)) if diffs else NA
    m[r"\CertMaxAbsDiff"] = FMT(worst[0]) if diffs else NA
    m[r"\CertMaxAbsDiffSigma"], m[r"\CertMaxAbsDiffRadius"] = worst[1], worst[2]


def arch_tt(record: dict) -> str:
    """The architecture name of a training record in typewriter type."""
    return rf"\texttt{{{latex.tex_escape(record.get('arch', NA))}}}"


def training_setup(train: list[dict], m: dict) -> None:
    params = [t.get("params", {}) for t in train]
    dataset = str(train[0].get("dataset", NA))
    kind = str(train[0].get("dataset_kind", dataset))  # its kind names it, whatever its id
    m[r"\Dataset"] = DATASET_NAMES.get(kind, latex.tex_escape(dataset))
    m[r"\NumModels"] = str(len(train))
    m[r"\TrainArch"] = distinct(arch_tt(t) for t in train)
    for name, key in (("Epochs", "epochs"), ("Batch", "batch_size"), ("Lr", "lr")):
        m[rf"\Train{name}"] = distinct(NUM(p[key]) if key in p else NA for p in params)
    gaussian = [p for p in params if p.get("kind") == "gaussian"]
    adversarial = [p for p in params if p.get("kind") == "adversarial"]
    m[r"\TrainSigmaList"] = distinct(NUM(p.get("sigma", 0.0)) for p in gaussian)
    m[r"\AdvEps"] = distinct(NUM(p.get("eps", 0.0)) for p in adversarial)
    m[r"\AdvSteps"] = distinct(NUM(p.get("attack_steps", 0)) for p in adversarial)
    m[r"\AdvStepSize"] = distinct(NUM(p.get("attack_step_size", 0.0)) for p in adversarial)


def model_macros(args: argparse.Namespace, m: dict) -> None:
    train = [results.load_json(args.train_dir / f"{model}.json") for model in args.models]
    evals = [
        results.load_json(args.eval_dir / f"{m}.json", ["clean_accuracy"]) for m in args.models
    ]
    training_setup(train, m)
    robust = [{float(k): v for k, v in ev.get("robust_accuracy", {}).items()} for ev in evals]
    eps = sorted({e for rob in robust for e in rob})
    m[r"\EvalImages"] = str(evals[0].get("n_images", NA))
    m[r"\EvalSteps"] = str(evals[0].get("steps", NA))
    m[r"\EvalEpsList"] = latex.join_words([NUM(e) for e in eps])
    kinds = [str(ev.get("kind", t.get("kind", ""))) for t, ev in zip(train, evals, strict=True)]
    first = {kind: kinds.index(kind) for kind in ("standard", "adversarial") if kind in kinds}
    # the text quotes the adversarial model's training eps if evaluated there, else the least eps
    adversarial = evals[first["adversarial"]] if "adversarial" in first else {}
    close = [e for e in eps if abs(e - float(adversarial.get("train_eps", -1.0))) < 1e-9]
    main_eps = (close or eps or [None])[0]
    m[r"\EvalEpsMain"] = NA if main_eps is None else NUM(main_eps)
    for kind, name in (("standard", "Standard"), ("adversarial", "Adversarial")):
        i = first.get(kind)
        m[rf"\CleanAcc{name}"] = NA if i is None else PCT(evals[i]["clean_accuracy"])
        value = None if i is None or main_eps is None else results.lookup(robust[i], main_eps)
        m[rf"\RobustAcc{name}Main"] = NA if value is None else PCT(value)


def pag_macros(args: argparse.Namespace, m: dict) -> None:
    paths = [args.pag_dir / f"{column}.pt" for column in args.columns]
    records = [results.load_pag(path) for path in paths]
    all_eps = [float(e) for e in records[0]["eps"]]
    eps = max(all_eps) if args.fig1_eps is None else args.fig1_eps
    m[r"\PagEpsMain"] = NUM(eps)
    m[r"\PagEpsList"] = latex.join_words([NUM(e) for e in all_eps])
    m[r"\PagNumPairs"] = str(len(records[0]["labels"]))
    m[r"\PagSteps"] = str(records[0].get("steps", NA))
    m[r"\PagStepFactor"] = NUM(records[0]["step_factor"]) if "step_factor" in records[0] else NA
    smoothed = next((r for r in records if results.pag_role(r) == "smoothed"), {})
    m[r"\PagM"] = str(smoothed.get("m", NA))
    noise = {True: "fixed across steps", False: "drawn afresh at every step"}
    m[r"\PagNoise"] = noise.get(smoothed.get("fixed_noise"), NA)
    m[r"\PagSigmaSmoothed"] = NUM(smoothed["sigma"]) if smoothed else NA
    by_role: dict[str, str] = {}
    for record, path in zip(records, paths, strict=True):
        e = results.eps_index(record, eps, path)
        prob = FMT(float(results.require(record, "target_prob", path)[e].float().mean()))
        by_role.setdefault(results.pag_role(record), prob)  # the first column of each role
    for role, name in PAG_ROLES.items():
        m[rf"\PagProb{name}"] = by_role.get(role, NA)


JUDGE_WORDS = {"standard": "a standard", "adversarial": "an adversarially trained",
               "noise": "a noise-trained"}  # fmt: skip


def judge_words(role: str, judge: dict) -> str:
    """'an adversarially trained \\texttt{arch} (seed 3; $\\ell_\\infty$, $\\epsilon = 0.1$)'."""
    seed = "released checkpoint" if judge.get("seed") is None else f"seed {judge['seed']}"
    if role == "adversarial":
        norm = {"l2": "2", "linf": r"\infty"}.get(str(judge.get("norm")), str(judge.get("norm")))
        seed += rf"; $\ell_{{{norm}}}$, $\epsilon = {judge['eps']:.3g}$"
    elif role == "noise":
        seed += rf"; $\sigma = {judge['sigma']:.3g}$"
    return f"{JUDGE_WORDS.get(role, role)} {arch_tt(judge)} ({seed})"


def conclusion(record: dict, names: list[str], what: str) -> str:
    """Which columns beat the baseline (positive and Holm-significant) on every metric of names."""
    columns, base = record["columns"], record["paired"]["baseline"]
    above, below = [], []
    for c in record["settings"]["columns"]:
        if c != base:
            paired = record["paired"]["columns"][c]
            holds = all(paired[n]["holds"] and paired[n]["mean"] > 0 for n in names)
            (above if holds else below).append(columns[c]["title"])
    text = f"{what} is higher for {latex.join_words(above) if above else 'no column'} than for "
    text += f"the {columns[base]['title']} column after Holm's correction"
    return text + (f", but not for {latex.join_words(below)}." if below and above else ".")


def pag_metrics_macros(args: argparse.Namespace, m: dict) -> None:
    """The judges, training runs, conclusions and orderings of the PAG metrics, as sentences."""
    keys = ("settings", "judges", "columns", "paired", "judge_agreement")
    record = results.load_json(args.pag_metrics, keys)
    judges = record["judges"]
    roles = [r for r in JUDGE_WORDS if r in judges]  # the JSON's keys are sorted
    m[r"\PagJudges"] = latex.join_words([judge_words(r, judges[r]) for r in roles])
    apart = record["settings"].get("judges_apart", {})
    shared = [key for key in ("architecture", "seed") if not apart.get(key, False)]
    m[r"\PagJudgesApart"] = (
        "another architecture and seed than every model under test" if not shared else
        f"some share the {' and '.join(shared)} of a model under test"
    )  # fmt: skip
    runs = sorted({len(r) for r in record["settings"]["runs"].values()})
    m[r"\PagRuns"] = (
        "Every column is one training run, so the intervals are conditional on the trained "
        "weights: they cover the choice of pairs, not the training run."
        if runs == [1]
        else f"Each column pools {distinct(str(r) for r in runs)} training runs (seeds) of one "
        "recipe; the intervals resample runs and pairs (a two-level bootstrap), and $\\pm$ gives "
        "the standard deviation of the run means."
    )
    m[r"\PagHolmFamily"] = str(sum(len(v) for v in record["paired"]["columns"].values()))
    shares = [f"judge_{role}_share" for role in roles]
    m[r"\PagConclusions"] = " ".join([
        conclusion(record, shares, "Under every judge, the target share"),
        conclusion(record, ["cosine", "ref_corr"], "On both reference metrics, alignment"),
    ])  # fmt: skip
    taus = [
        f"{FMT(a['kendall_tau'])} ({a['metrics'][0].split('_')[1]} and "
        f"{a['metrics'][1].split('_')[1]})"
        for a in record["judge_agreement"] if a["metrics"][0].endswith("_share")
    ]  # fmt: skip
    m[r"\PagJudgeAgreement"] = (
        "Kendall's $\\tau$ between two judges' orderings of the columns by target share is "
        f"{latex.join_words(taus)}." if taus else "With one judge there is no ordering to compare."
    )  # fmt: skip
    agreement = record.get("reference_agreement", [])
    kept = all(a["resolved_same_order"] for a in agreement)
    m[r"\PagReferenceAgreement"] = (
        "" if not agreement else "On this dataset, whose class prototypes are known, the class "
        f"means {'keep' if kept else 'do not keep'} the order of every pair of columns that the "
        "prototypes tell apart (non-overlapping intervals; "
        f"{latex.join_words([str(a['resolved_pairs']) for a in agreement])} pairs) on both "
        "reference metrics; Kendall's $\\tau$ between their orders of all columns is "
        f"{latex.join_words([FMT(a['kendall_tau']) for a in agreement])}."
    )  # fmt: skip


def score_alignment_macros(args: argparse.Namespace, m: dict) -> None:
    """\\ScoreAlignmentComputed (1 if the stage ran, else 0) and \\ScoreAlignmentText."""
    record = {} if args.score_alignment is None else results.load_json(args.score_alignment)
    computed = record.get("skipped") is False
    if args.score_alignment is None:
        text = "Not computed: the score-alignment stage was not run."
    elif not computed:
        reason = latex.tex_escape(record.get("reason", "no reason recorded"))
        text = f"Not computed: weights absent ({reason})."
    else:
        columns = results.require(record, "columns", args.score_alignment)
        settings = results.require(record, "settings", args.score_alignment)
        parts = [f"{FMT(columns[c]['lpips']['mean'], 3)} for {columns[c]['title']}"
                 for c in settings["columns"]]  # fmt: skip
        text = (
            f"Over {settings['n_images']} test images, with $s = {NUM(settings['score_sigma'])}$ "
            f"and $m = {settings['m']}$, the mean LPIPS distance is "
            f"{latex.join_words(parts)} (Table~\\ref{{tab:score-alignment}})."
        )
    m[r"\ScoreAlignmentComputed"] = "1" if computed else "0"
    m[r"\ScoreAlignmentText"] = text


@cli.entrypoint
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli.setup_logging(args.log, outputs=args)
    macros: dict[str, str] = {}
    parts = (certify_macros, model_macros, pag_macros, pag_metrics_macros, score_alignment_macros)
    for part in parts:
        part(args, macros)
    macros[r"\TrainVsCertifyKeys"] = ",".join(args.train_vs_certify)
    lines = ["% Generated by scripts/make_numbers.py."]
    lines += [latex.newcommand(name, value) for name, value in macros.items()]
    write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
