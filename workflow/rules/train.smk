# Training (paper section 3): one model per dataset, held-out split and seed, on a GPU node.


rule train:
    """Weighted-loss SGD with elastic deformations; resumes from its checkpoint."""
    input:
        unpack(train_inputs),
    output:
        model="results/{ablation}models/{dataset}/{split}/seed{seed}/model.pt",
        loss="results/{ablation}models/{dataset}/{split}/seed{seed}/loss.csv",
        plot=report(
            "results/{ablation}models/{dataset}/{split}/seed{seed}/loss.png",
            caption="../report/loss.rst",
            category="Training",
            labels={
                "dataset": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "variant": "{ablation}",
            },
        ),
    log:
        "logs/{ablation}train/{dataset}-{split}-seed{seed}.log",
    benchmark:
        "logs/benchmarks/{ablation}train/{dataset}-{split}-seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    params:
        args=train_args,
        pasted=pasted_arg,
        variant=variant,
        # outside the declared outputs: Snakemake never deletes it, so a retried job resumes
        checkpoint="results/{ablation}checkpoints/{dataset}/{split}/seed{seed}/checkpoint.pt",
    shell:
        "python {input.script} --prepared {input.prepared} --weights {input.weights}"
        " --targets {input.targets} --frames {input.frames} {params.pasted} {params.args}"
        " --threads {threads}"
        " --variant {params.variant}"
        " --checkpoint {params.checkpoint} --out-model {output.model}"
        " --out-log {output.loss} --out-plot {output.plot} 2> {log}"
