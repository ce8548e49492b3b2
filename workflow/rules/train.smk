# Training: one checkpoint per entry of params.yaml `models` (standard, gaussian or adversarial).


rule train:
    input:
        code("scripts/train.py"),
        data=lambda wc: f"resources/data/{config['models'][wc.model]['dataset']}.pt",
    output:
        ckpt="results/models/{model}.pt",
        metrics="results/train/{model}.json",
    log:
        "logs/train/{model}.log",
    wildcard_constraints:
        model=one_of(config["models"]),
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=lambda wc: cli(config["models"][wc.model]),
        timing=cli(config["timing"]),
        state="resources/state/train/{model}.pt",
    shell:
        "python scripts/train.py --model_id {wildcards.model} {params.args} --data {input.data} "
        "--out {output.ckpt} --metrics {output.metrics} --state {params.state} {params.timing} --log {log}"
