# Datasets: one prepared tensor file per entry of params.yaml `datasets`.


rule check_params:
    input:
        code("scripts/check_params.py"),
        params="params.yaml",
        schema="workflow/schemas/params.schema.yaml",
    output:
        CHECKED,
    log:
        "logs/check_params.log",
    conda:
        "../envs/pytorch.yaml"
    shell:
        "python scripts/check_params.py --params {input.params} --schema {input.schema} "
        "--out {output} --log {log}"


rule prepare_data:
    input:
        code("scripts/prepare_data.py"),
        checked=CHECKED,
    output:
        "resources/data/{dataset}.pt",
    params:
        args=lambda wc: cli(config["datasets"][wc.dataset]),
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../envs/pytorch.yaml"
    shell:
        "python scripts/prepare_data.py --dataset {wildcards.dataset} {params.args} "
        "--out {output} --work_dir resources/downloads/{wildcards.dataset} --log {log}"
