# Perceptual-alignment metrics of the PAG images, scored by a panel of judges trained apart from the models.

METRICS = config["pag_metrics"]


rule pag_metrics:
    input:
        code("scripts/pag_metrics.py"),
        RESULTS["pag_metrics"],
        data=f"resources/data/{config['pag']['settings']['dataset']}.pt",
    output:
        json="results/metrics/pag_metrics.json",
        tsv="results/metrics/pag_metrics.tsv",
        table="paper/tables/pag_metrics.tex",
        summaries=RESULT_OUTPUTS["pag_metrics"],
    log:
        "logs/pag_metrics.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=cli(METRICS),
        pag_dir=folder_of("results/pag"),
        models_dir=folder_of("results/models"),
        summary_dir=lambda wc, output: os.path.dirname(output.summaries[0]),
    shell:
        "python scripts/pag_metrics.py {params.args} --pag_dir {params.pag_dir} "
        "--models_dir {params.models_dir} "
        "--data {input.data} --out {output.json} --per_image {output.tsv} --table {output.table} "
        "--summary_dir {params.summary_dir} --log {log}"


# A plot of seconds: on a cluster it runs on the submit host, as the figures of paper.smk do.
localrules:
    fig_pag_metrics,


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
    params:
        out=out_stem,
    shell:
        "python scripts/fig_pag_metrics.py --metrics {input.metrics} --out {params.out} --log {log}"


# Score alignment (Srinivas et al. 2023) of classifiers at test images; optional: without its weight
# files the job records that it was skipped. Weights present at planning time are inputs, so adding
# them later reruns the job.
SCORE = config["score_alignment"]


rule score_alignment:
    input:
        code("scripts/score_alignment.py"),
        existing_files([SCORE["alexnet"], SCORE["lpips"], SCORE["denoiser"]]),
        RESULTS["score_alignment"],
        data=f"resources/data/{SCORE['dataset']}.pt",
    output:
        json="results/metrics/score_alignment.json",
        tsv="results/metrics/score_alignment.tsv",
        table="paper/tables/score_alignment.tex",
    log:
        "logs/score_alignment.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=cli(SCORE),
        models_dir=folder_of("results/models"),
    shell:
        "python scripts/score_alignment.py {params.args} --models_dir {params.models_dir} "
        "--data {input.data} --out {output.json} --per_image {output.tsv} --table {output.table} "
        "--log {log}"
