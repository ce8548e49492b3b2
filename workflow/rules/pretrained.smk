# Published checkpoints: one job per entry of params.yaml `pretrained`, converted into the checkpoint
# format of trained models (ids disjoint from `models`, so this rule and `train` never compete).
# Downloads are cached in resources/downloads/pretrained, shared by the jobs of one archive.


rule fetch_pretrained:
    input:
        code("scripts/fetch_pretrained.py"),
        data=model_dataset,
    output:
        ckpt="results/models/{model}.pt",
        record="results/train/{model}.json",
    log:
        "logs/pretrained/{model}.log",
    wildcard_constraints:
        model=one_of(config["pretrained"]),
    conda:
        "../envs/pytorch.yaml"
    params:
        args=lambda wc: cli(config["pretrained"][wc.model]),
    shell:
        "python scripts/fetch_pretrained.py --model_id {wildcards.model} {params.args} "
        "--data {input.data} --cache_dir resources/downloads/pretrained --out {output.ckpt} "
        "--record {output.record} --log {log}"
