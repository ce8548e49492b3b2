# From results to the paper: figures, LaTeX tables, in-text numbers and the PDF.
# The scripts read whole result folders (DVC declares the folders as deps); Snakemake lists the files
# and derives the folder arguments from them (folder_of), so that storage-backed jobs find their copies.

REPORT = config["report"]
FIGURES = [
    "fig1",
    "sigma_sweep",
    "eps_sweep",
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
        pag=lambda wc: pag_files(REPORT[wc.figure]["columns"]),
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
        figure="fig1|sigma_sweep|eps_sweep",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=lambda wc: cli(REPORT[wc.figure]),
        pag_dir=folder_of("pag"),
        out=out_stem,
    shell:
        "python scripts/fig_pag.py --figure {wildcards.figure} {params.args} "
        "--pag_dir {params.pag_dir} --out {params.out} --log {log}"


rule fig_certified:
    input:
        code("scripts/fig_certified.py"),
        certify=certify_files(REPORT["certified"]["runs"]),
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
        certify_dir=folder_of("certify"),
        out=out_stem,
    shell:
        "python scripts/fig_certified.py {params.args} --certify_dir {params.certify_dir} "
        "--out {params.out} --log {log}"


rule fig_train_vs_certify:
    input:
        code("scripts/fig_certified.py"),
        certify=lambda wc: certify_files(REPORT["train_vs_certify"][wc.key]["runs"]),
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
        certify_dir=folder_of("certify"),
        out=out_stem,
    shell:
        "python scripts/fig_certified.py {params.args} --legend train_sigma "
        "--certify_dir {params.certify_dir} --out {params.out} --log {log}"


rule fig_training:
    input:
        code("scripts/fig_training.py"),
        train=expand("results/train/{model}.json", model=REPORT["training"]["models"]),
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
        train_dir=folder_of("train"),
        out=out_stem,
    shell:
        "python scripts/fig_training.py {params.args} --train_dir {params.train_dir} "
        "--out {params.out} --log {log}"


rule tables:
    input:
        code("scripts/make_tables.py"),
        certify=certify_files(REPORT["certified"]["runs"]),
        eval=expand("results/eval/{model}.json", model=REPORT["training"]["models"]),
        reference=REPORT["certified"]["reference"],
    output:
        "paper/tables/certified_accuracy.tex",
        "paper/tables/accuracy.tex",
    log:
        "logs/tables.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=f"{CERTIFIED} {TRAINING}",
        certify_dir=folder_of("certify"),
        eval_dir=folder_of("eval"),
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "python scripts/make_tables.py {params.args} --certify_dir {params.certify_dir} "
        "--eval_dir {params.eval_dir} --out_dir {params.out_dir} --log {log}"


rule numbers:
    input:
        code("scripts/make_numbers.py"),
        certify=certify_files(REPORT["certified"]["runs"]),
        eval=expand("results/eval/{model}.json", model=REPORT["training"]["models"]),
        train=expand("results/train/{model}.json", model=REPORT["training"]["models"]),
        pag=pag_files(REPORT["numbers"]["columns"]),
        reference=REPORT["certified"]["reference"],
        score_alignment="results/metrics/score_alignment.json",
    output:
        "paper/generated/numbers.tex",
    log:
        "logs/numbers.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=f"{CERTIFIED} {TRAINING} {cli(REPORT['numbers'])}",
        fig1_eps=REPORT["fig1"]["eps"],
        certify_dir=folder_of("certify"),
        eval_dir=folder_of("eval"),
        train_dir=folder_of("train"),
        pag_dir=folder_of("pag"),
    shell:
        "python scripts/make_numbers.py {params.args} --certify_dir {params.certify_dir} "
        "--eval_dir {params.eval_dir} --train_dir {params.train_dir} --pag_dir {params.pag_dir} "
        "--fig1_eps {params.fig1_eps} --score_alignment {input.score_alignment} "
        "--out {output} --log {log}"


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
