# Overlap-tile prediction with test-time averaging, for the held-out data of each split.


rule predict_isbi:
    """P(cell) of the held-out slices of an ISBI split."""
    input:
        script=script("predict.py"),
        model=model_input,
        prepared="results/prepared/isbi2012/train.npz",
    output:
        "results/{ablation}predictions/isbi2012/{split}/seed{seed}/heldout.tif",
    log:
        "logs/{ablation}predict/isbi2012-{split}-seed{seed}-heldout.log",
    benchmark:
        "logs/benchmarks/{ablation}predict/isbi2012-{split}-seed{seed}-heldout.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    params:
        variant=variant,
        args=lambda wc: predict_args(ISBI, cfg(wc)),
        indices=heldout_indices,
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " --indices {params.indices} {params.args} --threads {threads} --variant {params.variant} --out {output} 2> {log}"


rule predict_isbi_test:
    """The ISBI challenge submission: P(non-membrane) of the 30-slice test volume.

    Asked for only from a whole-data split (`test` empty); uncompressed float32 pages.
    """
    input:
        script=script("predict.py"),
        model="results/models/isbi2012/{split}/seed{seed}/model.pt",
        prepared="results/prepared/isbi2012/test.npz",
    output:
        "results/submission/isbi2012/{split}/seed{seed}/test-volume.tif",
    log:
        "logs/predict/isbi2012-{split}-seed{seed}-test-volume.log",
    conda:
        "../../envs/torch.yaml"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    params:
        variant=variant,
        args=predict_args(ISBI),
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " {params.args} --uncompressed --threads {threads} --variant {params.variant} --out {output} 2> {log}"


rule predict_ctc:
    """P(cell) of every frame of a held-out CTC sequence."""
    input:
        script=script("predict.py"),
        model=model_input,
        prepared="results/prepared/{ctc_dataset}/{sequence}.npz",
    output:
        "results/{ablation}predictions/{ctc_dataset}/{split}/seed{seed}/{sequence}.tif",
    log:
        "logs/{ablation}predict/{ctc_dataset}-{split}-seed{seed}-{sequence}.log",
    benchmark:
        "logs/benchmarks/{ablation}predict/{ctc_dataset}-{split}-seed{seed}-{sequence}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    params:
        variant=variant,
        args=lambda wc: predict_args(wc.ctc_dataset, cfg(wc)),
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " {params.args} --threads {threads} --variant {params.variant} --out {output} 2> {log}"


rule predict_ctc_annotated:
    """P(cell) of the annotated frames of a training sequence (to choose post-processing)."""
    input:
        script=script("predict.py"),
        model=model_input,
        prepared="results/prepared/{ctc_dataset}/{sequence}.npz",
    output:
        "results/{ablation}predictions/{ctc_dataset}/{split}/seed{seed}/annotated-{sequence}.tif",
    log:
        "logs/{ablation}predict/{ctc_dataset}-{split}-seed{seed}-annotated-{sequence}.log",
    conda:
        "../../envs/torch.yaml"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    params:
        variant=variant,
        args=lambda wc: predict_args(wc.ctc_dataset, cfg(wc)),
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared} --annotated"
        " {params.args} --threads {threads} --variant {params.variant} --out {output} 2> {log}"


rule predict_ctc_selection:
    """P(cell) of the selection frames of a training sequence: frames without gold truth that
    no configuration trains on (the cut is chosen on them against their silver truth).
    """
    input:
        script=script("predict.py"),
        model=model_input,
        prepared="results/prepared/{ctc_dataset}/{sequence}.npz",
        frames=frames_csv,
    output:
        "results/{ablation}predictions/{ctc_dataset}/{split}/seed{seed}/select-{sequence}.tif",
    log:
        "logs/{ablation}predict/{ctc_dataset}-{split}-seed{seed}-select-{sequence}.log",
    conda:
        "../../envs/torch.yaml"
    threads: PREDICT_RESOURCES["threads"]
    resources:
        mem_mb=PREDICT_RESOURCES["mem_mb"],
        runtime=PREDICT_RESOURCES["runtime"],
        gpu=PREDICT_RESOURCES["gpu"],
    params:
        variant=variant,
        args=lambda wc: predict_args(wc.ctc_dataset, cfg(wc)),
    shell:
        "python {input.script} --model {input.model} --prepared {input.prepared}"
        " --frames-csv {input.frames} --role select"
        " {params.args} --threads {threads} --variant {params.variant} --out {output} 2> {log}"
