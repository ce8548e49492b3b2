# Clean and PGD-robust accuracy of every model.


rule evaluate:
    input:
        code("scripts/evaluate.py"),
        ckpt="results/models/{model}.pt",
        data=model_dataset,
    output:
        "results/eval/{model}.json",
    log:
        "logs/evaluate/{model}.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        args=cli(config["evaluate"]),
    shell:
        "python scripts/evaluate.py --model_id {wildcards.model} {params.args} "
        "--checkpoint {input.ckpt} --data {input.data} --out {output} --log {log}"
