# Perceptual-alignment metrics of the PAG images, judged by independently trained classifiers.

METRICS = config["pag_metrics"]


rule pag_metrics:
    input:
        code("scripts/pag_metrics.py"),
        pag=expand("results/pag/{column}.pt", column=METRICS["columns"]),
        judges=expand("results/models/{judge}.pt", judge=METRICS["judges"]),
        data=f"resources/data/{config['pag']['settings']['dataset']}.pt",
    output:
        json="results/metrics/pag_metrics.json",
        tsv="results/metrics/pag_metrics.tsv",
        table="paper/tables/pag_metrics.tex",
    log:
        "logs/pag_metrics.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=cli(METRICS),
    shell:
        "python scripts/pag_metrics.py {params.args} --pag_dir results/pag --models_dir results/models "
        "--data {input.data} --out {output.json} --per_image {output.tsv} --table {output.table} "
        "--log {log}"


rule fig_pag_metrics:
    input:
        code("scripts/fig_pag_metrics.py"),
        metrics="results/metrics/pag_metrics.json",
    output:
        report(
            "paper/figures/pag_metrics.pdf",
            caption="../report/pag_metrics.rst",
            category="PAG metrics",
        ),
        "paper/figures/pag_metrics.png",
    log:
        "logs/figures/pag_metrics.log",
    conda:
        "../envs/pytorch.yaml"
    shell:
        "python scripts/fig_pag_metrics.py --metrics {input.metrics} --out paper/figures/pag_metrics "
        "--log {log}"
