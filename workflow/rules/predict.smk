# Overlap-tile prediction with test-time averaging, for the held-out data of each split.


# the paper's "7 rotated versions" for ISBI, the 2015 release's 4 flips for the CTC data
DEFAULT_TRANSFORMS = {
    ISBI: ["identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose"],
    **{name: ["flips"] for name in CTC_DATASETS},
}


def predict_args(dataset):
    names = config["predict"]["transforms"].get(dataset, DEFAULT_TRANSFORMS[dataset])
    args = [
        f"--tile-size {config['predict']['tile_size']}",
        f"--batch-size {config['predict']['batch_size']}",
        f"--transforms {' '.join(names)}",
    ]
    if config["device"] != "auto":
        args.append(f"--device {config['device']}")
    return " ".join(args)


PREDICT_RESOURCES = config["resources"]["predict"]


rule predict_isbi:
    """P(cell) of the held-out slices of an ISBI split."""
    input:
        script=script("predict.py"),
        model="results/models/isbi2012/{split}/model.pt",
        prepared="results/prepared/isbi2012/train.npz",
    output:
        "results/predictions/isbi2012/{split}/heldout.tif",
    params:
        args=predict_args(ISBI),
        indices=lambda wc: split(ISBI, wc.split)["test"],
    log:
        "logs/predict/isbi2012-{split}-heldout.log",
    benchmark:
        "benchmarks/out/predict/isbi2012-{split}-heldout.tsv"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " --indices {params.indices} {params.args} --threads {threads} --out {output} 2> {log}"


rule predict_isbi_test:
    """The ISBI challenge submission: P(non-membrane) of the 30-slice test volume."""
    input:
        script=script("predict.py"),
        model="results/models/isbi2012/{split}/model.pt",
        prepared="results/prepared/isbi2012/test.npz",
    output:
        "results/submission/isbi2012/{split}/test-volume.tif",
    params:
        args=predict_args(ISBI),
    log:
        "logs/predict/isbi2012-{split}-test-volume.log",
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " {params.args} --threads {threads} --out {output} 2> {log}"


rule predict_ctc:
    """P(cell) of every frame of a held-out CTC sequence."""
    input:
        script=script("predict.py"),
        model="results/models/{ctc_dataset}/{split}/model.pt",
        prepared="results/prepared/{ctc_dataset}/{sequence}.npz",
    output:
        "results/predictions/{ctc_dataset}/{split}/{sequence}.tif",
    params:
        args=lambda wc: predict_args(wc.ctc_dataset),
    log:
        "logs/predict/{ctc_dataset}-{split}-{sequence}.log",
    benchmark:
        "benchmarks/out/predict/{ctc_dataset}-{split}-{sequence}.tsv"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " {params.args} --threads {threads} --out {output} 2> {log}"
