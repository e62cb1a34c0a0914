# Weight maps of paper section 3, and a figure like the paper's figure 3.


rule weights:
    """Training target (separation borders removed), weight map w(x) and frame roles of one
    sequence (CTC: gold, silver or both as training data; selection frames held back).
    """
    input:
        script=script("weights.py"),
        prepared="results/prepared/{dataset}/{sequence}.npz",
    output:
        weights="results/{ablation}weights/{dataset}/{sequence}.weights.tif",
        target="results/{ablation}weights/{dataset}/{sequence}.target.tif",
        frames="results/{ablation}weights/{dataset}/{sequence}.frames.csv",
    log:
        "logs/{ablation}weights/{dataset}-{sequence}.log",
    benchmark:
        "logs/benchmarks/{ablation}weights/{dataset}-{sequence}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        args=weights_args,
    shell:
        "python {input.script} --prepared {input.prepared} {params.args}"
        " --out-weights {output.weights} --out-target {output.target}"
        " --out-frames {output.frames} 2> {log}"


rule paste:
    """Beyond the paper: composites of the training frames with pasted touching cells
    (`weights.touching_pastes`), trained on beside them."""
    input:
        script=script("paste.py"),
        weights_script=script("weights.py"),
        prepared="results/prepared/{dataset}/{sequence}.npz",
    output:
        "results/{ablation}weights/{dataset}/{sequence}.pasted.npz",
    log:
        "logs/{ablation}paste/{dataset}-{sequence}.log",
    benchmark:
        "logs/benchmarks/{ablation}paste/{dataset}-{sequence}.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        args=paste_args,
    shell:
        "python {input.script} --prepared {input.prepared} {params.args}"
        " --out {output} 2> {log}"


rule figure3:
    """Image, ground truth, separation borders and weight map, as in the paper's figure 3."""
    input:
        unpack(figure3_inputs),
    output:
        report(
            "results/figures/fig3_{dataset}.png",
            caption="../report/fig3.rst",
            category="Figures",
            labels={"figure": "weight map {dataset}"},
        ),
    log:
        "logs/figures/fig3_{dataset}.log",
    conda:
        "../../envs/data.yaml"
    params:
        index=lambda wc: (
            config["figures"]["isbi_slice"]
            if wc.dataset == ISBI
            else config["figures"]["ctc_annotation"]
        ),
    shell:
        "python {input.script} --prepared {input.prepared} --weights {input.weights}"
        " --target {input.target} --frames {input.frames} --index {params.index}"
        " --title {wildcards.dataset}"
        " --out {output} 2> {log}"


rule figure3_frame:
    """Figure 3 for one annotated CTC frame, with the ignored (unannotated) cells."""
    input:
        script=script("figure_weights.py"),
        prepared="results/prepared/{ctc_dataset}/{sequence}.npz",
        weights="results/weights/{ctc_dataset}/{sequence}.weights.tif",
        target="results/weights/{ctc_dataset}/{sequence}.target.tif",
        frames="results/weights/{ctc_dataset}/{sequence}.frames.csv",
    output:
        report(
            "results/figures/fig3_{ctc_dataset}_{sequence}_t{frame}.png",
            caption="../report/fig3_frame.rst",
            category="Figures",
            labels={"figure": "weight map {ctc_dataset} {sequence} t{frame}"},
        ),
    log:
        "logs/figures/fig3_{ctc_dataset}_{sequence}_t{frame}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python {input.script} --prepared {input.prepared} --weights {input.weights}"
        " --target {input.target} --frames {input.frames} --frame {wildcards.frame}"
        " --title '{wildcards.ctc_dataset} {wildcards.sequence}' --out {output} 2> {log}"


rule weight_maps:
    """Target: data fetched, checked and prepared; all weight maps; figure 3."""
    input:
        all_weight_maps(),
