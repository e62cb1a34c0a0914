# Evaluation: ISBI metrics, CTC SEG and result folders, submission files, tables, figures.


rule evaluate_isbi:
    """Warping, Rand and pixel error of the held-out slices, all thresholds."""
    input:
        script=script("evaluate_isbi.py"),
        prepared="results/prepared/isbi2012/train.npz",
        proposal=lambda wc: f"{prediction_dir(wc)}/heldout.tif",
    output:
        csv=report(
            "results/{ablation}scores/isbi2012/{split}/seed{seed}/per_threshold.csv",
            caption="../report/per_threshold.rst",
            category="ISBI 2012",
            labels={
                "split": "{split}",
                "seed": "{seed}",
                "variant": "{ablation}",
                "table": "per threshold",
            },
        ),
        json="results/{ablation}scores/isbi2012/{split}/seed{seed}/scores.json",
    log:
        "logs/{ablation}evaluate/isbi2012-{split}-seed{seed}.log",
    benchmark:
        "logs/benchmarks/{ablation}evaluate/isbi2012-{split}-seed{seed}.tsv"
    conda:
        "../../envs/eval.yaml"
    params:
        indices=heldout_indices,
        name=config_name,
        variant=variant,
    shell:
        "python {input.script} --prepared {input.prepared} --indices {params.indices}"
        " --proposal {input.proposal} --split {wildcards.split} --seed {wildcards.seed}"
        " --config-name {params.name} --variant {params.variant}"
        " --out-csv {output.csv} --out-json {output.json} 2> {log}"


rule select_ctc:
    """Threshold and post-processing with the best SEG on frames of the training sequence(s):
    the selection frames against their silver truth (`unseen`), or the annotated frames.
    """
    input:
        unpack(select_inputs),
        script=script("select_ctc.py"),
    output:
        json="results/{ablation}scores/{ctc_dataset}/{split}/seed{seed}/postprocess.json",
        csv="results/{ablation}scores/{ctc_dataset}/{split}/seed{seed}/postprocess.csv",
    log:
        "logs/{ablation}evaluate/{ctc_dataset}-{split}-seed{seed}-select.log",
    conda:
        "../../envs/eval.yaml"
    params:
        grid=lambda wc: shlex.quote(json.dumps(cfg(wc)["evaluate"]["ctc_select"])),
        on=lambda wc: cfg(wc)["evaluate"]["ctc_select_on"],
        frames=lambda wc, input: (
            f"--frames {' '.join(input.frames)}" if "frames" in input.keys() else ""
        ),
        variant=variant,
    shell:
        "python {input.script} --predictions {input.predictions}"
        " --prepared {input.prepared} --on {params.on} {params.frames}"
        " --grid {params.grid} --variant {params.variant}"
        " --out-json {output.json} --out-csv {output.csv} 2> {log}"


rule evaluate_ctc:
    """CTC result folder <seq>_RES (every frame) and SEG of a held-out sequence."""
    input:
        unpack(ctc_postprocess_input),
        script=script("evaluate_ctc.py"),
        prediction=lambda wc: f"{prediction_dir(wc)}/{wc.sequence}.tif",
        root="results/raw/ctc/{ctc_dataset}",
    output:
        res=directory(
            "results/{ablation}submission/{ctc_dataset}/{split}/seed{seed}/{sequence}_RES"
        ),
        json="results/{ablation}scores/{ctc_dataset}/{split}/seed{seed}/{sequence}.seg.json",
        objects="results/{ablation}scores/{ctc_dataset}/{split}/seed{seed}/{sequence}.objects.csv",
    log:
        "logs/{ablation}evaluate/{ctc_dataset}-{split}-seed{seed}-{sequence}.log",
    conda:
        "../../envs/eval.yaml"
    params:
        postprocess=ctc_postprocess_args,
        crosscheck=lambda wc: (
            "--crosscheck"
            if cfg(wc)["evaluate"]["ctc_crosscheck"]
            else "--no-crosscheck"
        ),
        name=config_name,
        variant=variant,
        training_data=lambda wc: shlex.quote(cfg(wc)["weights"]["training_data"]),
    shell:
        "python {input.script} --prediction {input.prediction}"
        " --gt {input.root}/{wildcards.sequence}_GT {params.postprocess}"
        " --training-data {params.training_data}"
        " {params.crosscheck} --dataset {wildcards.ctc_dataset}"
        " --sequence {wildcards.sequence} --split {wildcards.split} --seed {wildcards.seed}"
        " --config-name {params.name} --variant {params.variant} --out-res {output.res}"
        " --out-json {output.json} --out-objects {output.objects} 2> {log}"


rule tables:
    """Tables 1 and 2: our held-out rows beside the paper's (the HTML ones show in the report)."""
    input:
        script=script("tables.py"),
        isbi=isbi_scores_files(),
        ctc=ctc_scores_files(),
    output:
        # one report item per table and file (items with equal labels would hide each other)
        table1_html=report(
            "results/tables/table1.html",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (ISBI 2012)", "file": "HTML table"},
        ),
        table1_csv=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (ISBI 2012)", "file": "CSV"},
        ),
        table1_md=report(
            "results/tables/table1.md",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (ISBI 2012)", "file": "Markdown"},
        ),
        table1_tex=report(
            "results/tables/table1.tex",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (ISBI 2012)", "file": "LaTeX"},
        ),
        table2_html=report(
            "results/tables/table2.html",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2 (CTC)", "file": "HTML table"},
        ),
        table2_csv=report(
            "results/tables/table2.csv",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2 (CTC)", "file": "CSV"},
        ),
        table2_md=report(
            "results/tables/table2.md",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2 (CTC)", "file": "Markdown"},
        ),
        table2_tex=report(
            "results/tables/table2.tex",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "Table 2 (CTC)", "file": "LaTeX"},
        ),
        provenance=report(
            "results/tables/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"table": "Provenance of every scores file", "file": "HTML table"},
        ),
    log:
        "logs/tables.log",
    conda:
        "../../envs/eval.yaml"
    shell:
        "python {input.script} --isbi {input.isbi} --ctc {input.ctc}"
        " --out-dir results/tables 2> {log}"


rule figure_isbi_curves:
    """ISBI metrics against the threshold, every split (first seed), beside the paper's values."""
    input:
        script=script("figures_eval.py"),
        csv=expand(
            "results/scores/isbi2012/{split}/seed{seed}/per_threshold.csv",
            split=splits(ISBI) if ISBI in DATASETS else [],
            seed=SEEDS[0],
        ),
    output:
        report(
            "results/figures/isbi_thresholds.png",
            caption="../report/isbi_thresholds.rst",
            category="Figures",
            labels={"figure": "ISBI per-threshold curves"},
        ),
    log:
        "logs/figures/isbi_thresholds.log",
    conda:
        "../../envs/eval.yaml"
    params:
        labels=" ".join(splits(ISBI)) if ISBI in DATASETS else "",
    shell:
        "python {input.script} curves --csv {input.csv} --labels {params.labels}"
        " --out {output} 2> {log}"


rule figure4_isbi:
    input:
        script=script("figures_eval.py"),
        prediction="results/predictions/isbi2012/{split}/seed{seed}/heldout.tif",
        prepared="results/prepared/isbi2012/train.npz",
    output:
        report(
            "results/figures/fig4_isbi2012_{split}_seed{seed}.png",
            caption="../report/fig4_isbi.rst",
            category="Figures",
            labels={"figure": "overlay isbi2012 {split} seed {seed}"},
        ),
    log:
        "logs/figures/fig4_isbi2012_{split}_seed{seed}.log",
    conda:
        "../../envs/eval.yaml"
    params:
        indices=heldout_indices,
    shell:
        "python {input.script} overlay --prediction {input.prediction}"
        " --prepared {input.prepared} --indices {params.indices}"
        " --title 'isbi2012 {wildcards.split} seed {wildcards.seed}' --out {output} 2> {log}"


rule figure4_ctc:
    input:
        script=script("figures_eval.py"),
        prediction="results/predictions/{ctc_dataset}/{split}/seed{seed}/{sequence}.tif",
        root="results/raw/ctc/{ctc_dataset}",
        scores="results/scores/{ctc_dataset}/{split}/seed{seed}/{sequence}.seg.json",
    output:
        report(
            "results/figures/fig4_{ctc_dataset}_{split}_seed{seed}_{sequence}.png",
            caption="../report/fig4_ctc.rst",
            category="Figures",
            labels={"figure": "overlay {ctc_dataset} {split} seed {seed} {sequence}"},
        ),
    log:
        "logs/figures/fig4_{ctc_dataset}_{split}_seed{seed}_{sequence}.log",
    conda:
        "../../envs/eval.yaml"
    shell:
        "python {input.script} overlay --prediction {input.prediction}"
        " --gt-root {input.root} --sequence {wildcards.sequence}"
        " --scores {input.scores}"
        " --title '{wildcards.ctc_dataset} {wildcards.split} seed {wildcards.seed}' --out {output} 2> {log}"
