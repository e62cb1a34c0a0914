# Training (paper section 3): one model per dataset and held-out split, on a GPU node.


def train_inputs(wildcards):
    """Prepared data, weight maps and targets of the split's training sequences."""
    seqs = ["train"] if wildcards.dataset == ISBI else ctc_train_sequences(wildcards)
    return {
        "script": script("train.py"),
        "prepared": [f"results/prepared/{wildcards.dataset}/{s}.npz" for s in seqs],
        "weights": [f"results/weights/{wildcards.dataset}/{s}.weights.tif" for s in seqs],
        "targets": [f"results/weights/{wildcards.dataset}/{s}.target.tif" for s in seqs],
    }


def train_config(dataset):
    cfg = dict(config["train"])
    cfg.update(config["train_overrides"].get(dataset, {}))
    return cfg


def train_args(wildcards):
    args = [
        f"--model-config {shlex.quote(json.dumps(config['model']))}",
        f"--train-config {shlex.quote(json.dumps(train_config(wildcards.dataset)))}",
    ]
    if wildcards.dataset == ISBI:
        args.append(f"--indices {split(ISBI, wildcards.split)['train']}")
    if config["device"] != "auto":
        args.append(f"--device {config['device']}")
    return " ".join(args)


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
    params:
        args=train_args,
        # outside the declared outputs: Snakemake never deletes it, so a retried job resumes
        checkpoint="results/checkpoints/{dataset}/{split}/checkpoint.pt",
    log:
        "logs/train/{dataset}-{split}.log",
    benchmark:
        "benchmarks/out/train/{dataset}-{split}.tsv"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {input.script} --prepared {input.prepared} --weights {input.weights}"
        " --targets {input.targets} {params.args} --threads {threads}"
        " --checkpoint {params.checkpoint} --out-model {output.model}"
        " --out-log {output.loss} --out-plot {output.plot} 2> {log}"
