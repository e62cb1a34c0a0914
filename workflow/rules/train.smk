# Training (paper section 3): one model per dataset and held-out split, on a GPU node.


rule train:
    """Weighted-loss SGD with elastic deformations; resumes from its checkpoint."""
    input:
        unpack(train_inputs),
    output:
        model="results/models/{dataset}/{split}/model.pt",
        loss="results/models/{dataset}/{split}/loss.csv",
        plot=report(
            "results/models/{dataset}/{split}/loss.png",
            category="Training",
            labels={"dataset": "{dataset}", "split": "{split}"},
        ),
    log:
        "logs/train/{dataset}-{split}.log",
    benchmark:
        "benchmarks/out/train/{dataset}-{split}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    params:
        args=train_args,
        # outside the declared outputs: Snakemake never deletes it, so a retried job resumes
        checkpoint="results/checkpoints/{dataset}/{split}/checkpoint.pt",
    shell:
        "python {input.script} --prepared {input.prepared} --weights {input.weights}"
        " --targets {input.targets} {params.args} --threads {threads}"
        " --checkpoint {params.checkpoint} --out-model {output.model}"
        " --out-log {output.loss} --out-plot {output.plot} 2> {log}"
