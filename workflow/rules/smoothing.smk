# Randomized smoothing: Cohen et al.'s CERTIFY and PREDICT, one job per run of params.yaml.


rule certify:
    input:
        code("scripts/certify.py"),
        unpack(smoothing_inputs("certify")),
    output:
        tsv="results/certify/{run}.tsv",
        summary="results/certify/{run}.json",
        curve="results/plots/certified/{run}.tsv",
    log:
        "logs/certify/{run}.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=lambda wc: cli(config["certify"][wc.run]),
        state="resources/state/certify/{run}.tsv",
        timing=cli(config["timing"]),
    shell:
        "python scripts/certify.py --run_id {wildcards.run} {params.args} --checkpoint {input.ckpt} "
        "--data {input.data} --out {output.tsv} --summary {output.summary} --curve {output.curve} "
        "--state {params.state} {params.timing} --log {log}"


rule predict:
    input:
        code("scripts/predict.py"),
        unpack(smoothing_inputs("predict")),
    output:
        tsv="results/predict/{run}.tsv",
        summary="results/predict/{run}.json",
    log:
        "logs/predict/{run}.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=lambda wc: cli(config["predict"][wc.run]),
        state="resources/state/predict/{run}.tsv",
        timing=cli(config["timing"]),
    shell:
        "python scripts/predict.py --run_id {wildcards.run} {params.args} --checkpoint {input.ckpt} "
        "--data {input.data} --out {output.tsv} --summary {output.summary} --state {params.state} "
        "{params.timing} --log {log}"
