# unet-repro: the workflow is workflow/Snakefile (the standard layout of the Snakemake workflow
# catalog); this file only includes it, so that `snakemake` from the repository root runs the
# same workflow as `snakemake -s workflow/Snakefile`.


include: "workflow/Snakefile"


# an included file's `default_target` does not carry over to the including one: restore it
workflow.default_target = "all"
