# Perceptually aligned images: one job per PAG column (a model, plain or smoothed).


rule pag:
    input:
        code("scripts/make_pag.py"),
        ckpt=lambda wc: f"results/models/{config['pag']['columns'][wc.column]['model']}.pt",
        data=f"resources/data/{config['pag']['settings']['dataset']}.pt",
    output:
        "results/pag/{column}.pt",
    log:
        "logs/pag/{column}.log",
    conda:
        "../envs/pytorch.yaml"
    resources:
        gpu=1,
    params:
        column=lambda wc: cli(config["pag"]["columns"][wc.column]),
        settings=cli(config["pag"]["settings"]),
    shell:
        "python scripts/make_pag.py --column {wildcards.column} {params.column} {params.settings} "
        "--checkpoint {input.ckpt} --data {input.data} --out {output} --log {log}"
