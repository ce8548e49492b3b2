# Datasets: one prepared tensor file per entry of params.yaml `datasets`.


# Snakemake checks params.yaml when it parses the workflow (common.smk); this job only mirrors DVC's first
# stage so both tools run the same commands (its folder guards DVC stages run alone: check_params.py). It
# is a target of `all`, not an input of other rules: a rerun after any edit of params.yaml must not make
# every downstream job look outdated.
# It takes a second, so on a cluster it runs on the submit host.
localrules:
    check_params,


rule check_params:
    input:
        code("scripts/check_params.py"),
        params=CONFIG_FILES,
        schema="workflow/schemas/params.schema.yaml",
        dvc_yaml=["dvc.yaml"] if CONFIG_FILES == ["params.yaml"] else [],
    output:
        directory(CHECKED),
    log:
        "logs/check_params.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        # dvc.yaml follows params.yaml; it says nothing about another configuration
        dvc_yaml=lambda wildcards, input: (
            f" --dvc_yaml {input.dvc_yaml}" if input.dvc_yaml else ""
        ),
    shell:
        "python scripts/check_params.py --params {input.params} --schema {input.schema}"
        "{params.dvc_yaml} --out {output} --log {log}"


rule prepare_data:
    input:
        code("scripts/prepare_data.py"),
    output:
        "resources/data/{dataset}.pt",
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../envs/pytorch.yaml"
    params:
        args=lambda wc: cli(config["datasets"][wc.dataset]),
    shell:
        "python scripts/prepare_data.py --dataset {wildcards.dataset} {params.args} "
        "--out {output} --work_dir resources/downloads/{wildcards.dataset} --log {log}"
