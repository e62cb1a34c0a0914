# Beyond the paper: ablation variants (config `ablations`), each trained, predicted and scored
# like the full method wherever its settings differ, and one table of what each ingredient is
# worth. `snakemake ablations` builds it.


rule ablation_table:
    """One row per variant: Table 1 and 2 metrics and their differences to the full method."""
    input:
        script=script("ablations.py"),
        scores=[f for name in TABLE_VARIANTS for f in ablation_scores(name)],
    output:
        html=report(
            "results/tables/ablations.html",
            caption="../report/ablations.rst",
            category="Ablations",
            labels={"table": "ablations", "file": "HTML table"},
        ),
        csv=report(
            "results/tables/ablations.csv",
            caption="../report/ablations.rst",
            category="Ablations",
            labels={"table": "ablations", "file": "CSV"},
        ),
        md="results/tables/ablations.md",
        tex="results/tables/ablations.tex",
        figure=report(
            "results/figures/ablations.png",
            caption="../report/ablations_figure.rst",
            category="Ablations",
            labels={"table": "ablations", "file": "figure of the differences"},
        ),
    log:
        "logs/ablations.log",
    conda:
        "../../envs/eval.yaml"
    params:
        variants=ablation_variant_args(),
        overlays=shlex.quote(json.dumps(config["ablations"])),
    shell:
        "python {input.script} {params.variants} --overlays {params.overlays}"
        " --out-dir results/tables --out-figure {output.figure} 2> {log}"


rule ablations:
    """Target: the ablation table and figure (trains every variant that differs)."""
    input:
        rules.ablation_table.output,
