# From results to the paper: figures, LaTeX tables, in-text numbers and the PDF. Each job lists the
# result files of the ids it reads (robust.deps, as dvc.yaml does) and takes the folders of its
# copies of them (folder_of), so that storage-backed jobs find their copies.

REPORT = config["report"]
FIGURES = [
    *REPORT["pag_figures"],
    "certified_accuracy",
    "training_curves",
    "pag_metrics",
]
FIGURES += [f"train_vs_certify_{key}" for key in REPORT["train_vs_certify"]]
TABLES = ["certified_accuracy", "accuracy", "pag_metrics", "score_alignment"]
CERTIFIED = cli(REPORT["certified"])
TRAINING = cli(REPORT["training"])


# On a cluster these jobs of seconds run on the submit host instead of waiting in the queue; there, too,
# final_targets() found latexmk. (Local runs are unaffected.)
localrules:
    fig_pag,
    fig_certified,
    fig_train_vs_certify,
    fig_training,
    tables,
    numbers,
    paper,


rule fig_pag:
    input:
        code("scripts/fig_pag.py"),
        pag=lambda wc: id_files(
            "results/pag/{}.pt", REPORT["pag_figures"][wc.figure]["columns"]
        ),
    output:
        report(
            "paper/figures/{figure}.pdf",
            caption="../report/pag_figures.rst",
            category="PAG images",
        ),
        "paper/figures/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    wildcard_constraints:
        figure=one_of(REPORT["pag_figures"]),
    conda:
        "../envs/pytorch.yaml"
    params:
        args=lambda wc: cli(REPORT["pag_figures"][wc.figure]),
        pag_dir=folder_of("results/pag"),
        out=out_stem,
    shell:
        "python scripts/fig_pag.py {params.args} --pag_dir {params.pag_dir} --out {params.out} "
        "--log {log}"


rule fig_certified:
    input:
        code("scripts/fig_certified.py"),
        RESULTS["fig_certified"],
        reference=REPORT["certified"]["reference"],
    output:
        report(
            "paper/figures/certified_accuracy.pdf",
            caption="../report/certified_accuracy.rst",
            category="Certification",
        ),
        "paper/figures/certified_accuracy.png",
    log:
        "logs/figures/certified_accuracy.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=CERTIFIED,
        certify_dir=folder_of("results/certify"),
        out=out_stem,
    shell:
        "python scripts/fig_certified.py {params.args} --certify_dir {params.certify_dir} "
        "--out {params.out} --log {log}"


rule fig_train_vs_certify:
    input:
        code("scripts/fig_certified.py"),
        lambda wc: certify_files(REPORT["train_vs_certify"][wc.key]["runs"]),
        reference=lambda wc: REPORT["train_vs_certify"][wc.key]["reference"],
    output:
        report(
            "paper/figures/train_vs_certify_{key}.pdf",
            caption="../report/train_vs_certify.rst",
            category="Certification",
        ),
        "paper/figures/train_vs_certify_{key}.png",
    log:
        "logs/figures/train_vs_certify_{key}.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=lambda wc: cli(REPORT["train_vs_certify"][wc.key]),
        certify_dir=folder_of("results/certify"),
        out=out_stem,
    shell:
        "python scripts/fig_certified.py {params.args} --legend train_sigma "
        "--certify_dir {params.certify_dir} --out {params.out} --log {log}"


rule fig_training:
    input:
        code("scripts/fig_training.py"),
        RESULTS["fig_training"],
    output:
        report(
            "paper/figures/training_curves.pdf",
            caption="../report/training_curves.rst",
            category="Training",
        ),
        "paper/figures/training_curves.png",
    log:
        "logs/figures/training_curves.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=TRAINING,
        train_dir=folder_of("results/train"),
        out=out_stem,
    shell:
        "python scripts/fig_training.py {params.args} --train_dir {params.train_dir} "
        "--out {params.out} --log {log}"


rule tables:
    input:
        code("scripts/make_tables.py"),
        RESULTS["tables"],
        reference=REPORT["certified"]["reference"],
    output:
        "paper/tables/certified_accuracy.tex",
        "paper/tables/accuracy.tex",
        "paper/tables/certified_accuracy.md",
        summaries=RESULT_OUTPUTS["tables"],
    log:
        "logs/tables.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=f"{CERTIFIED} {TRAINING}",
        certify_dir=folder_of("results/certify"),
        eval_dir=folder_of("results/eval"),
        train_dir=folder_of("results/train"),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        # results/metrics, which holds models/<id>.json and certify/<run>.json
        summary_dir=lambda wc, output: os.path.dirname(
            os.path.dirname(output.summaries[0])
        ),
    shell:
        "python scripts/make_tables.py {params.args} --certify_dir {params.certify_dir} "
        "--eval_dir {params.eval_dir} --train_dir {params.train_dir} --out_dir {params.out_dir} "
        "--summary_dir {params.summary_dir} --log {log}"


rule numbers:
    input:
        code("scripts/make_numbers.py"),
        RESULTS["numbers"],
        reference=REPORT["certified"]["reference"],
        score_alignment="results/metrics/score_alignment.json",
        pag_metrics="results/metrics/pag_metrics.json",
    output:
        "paper/generated/numbers.tex",
    log:
        "logs/numbers.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=f"{CERTIFIED} {TRAINING} {cli(REPORT['numbers'])}",
        fig1_eps=REPORT["pag_figures"]["fig1"]["eps"],
        certify_dir=folder_of("results/certify"),
        eval_dir=folder_of("results/eval"),
        train_dir=folder_of("results/train"),
        pag_dir=folder_of("results/pag"),
    shell:
        "python scripts/make_numbers.py {params.args} --certify_dir {params.certify_dir} "
        "--eval_dir {params.eval_dir} --train_dir {params.train_dir} --pag_dir {params.pag_dir} "
        "--fig1_eps {params.fig1_eps} --score_alignment {input.score_alignment} "
        "--pag_metrics {input.pag_metrics} --out {output} --log {log}"


rule paper:
    input:
        code("scripts/build_paper.py"),
        tex="paper/main.tex",
        bib="paper/refs.bib",
        numbers="paper/generated/numbers.tex",
        figures=expand("paper/figures/{name}.pdf", name=FIGURES),
        tables=expand("paper/tables/{name}.tex", name=TABLES),
    output:
        "paper/main.pdf",
    log:
        "logs/paper.log",
    conda:
        "../envs/pytorch.yaml"
    shell:
        "python scripts/build_paper.py --tex {input.tex} --out {output} "
        "--latex_log paper/build/latexmk.log --log {log}"
