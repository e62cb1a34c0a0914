# Data: fetch (download or mirror, sha256-verified), then bring into the internal form.


localrules:
    fetch_isbi,
    fetch_isbi_test,
    fetch_ctc,


rule fetch_isbi:
    """ISBI 2012 training volume and labels (mirror, or torch-em's public isbi.h5)."""
    input:
        script=script("fetch.py"),
    output:
        volume="results/raw/isbi2012/train-volume.tif",
        labels="results/raw/isbi2012/train-labels.tif",
    log:
        "logs/fetch/isbi2012.log",
    retries: 2
    conda:
        "../../envs/data.yaml"
    params:
        source=lambda wc: config["sources"].get("isbi2012", {}),
        args=mirror_args(),
    shell:
        "python {input.script} isbi {params.args}"
        " --url '{params.source[url]}' --sha256 {params.source[sha256]}"
        " --out-volume {output.volume} --out-labels {output.labels} 2> {log}"


rule fetch_isbi_test:
    """ISBI 2012 test volume (no public URL: it must be in the mirror)."""
    input:
        script=script("fetch.py"),
    output:
        volume="results/raw/isbi2012/test-volume.tif",
    log:
        "logs/fetch/isbi2012-test.log",
    conda:
        "../../envs/data.yaml"
    params:
        args=mirror_args(),
    shell:
        "python {input.script} isbi-test {params.args} --out-volume {output.volume} 2> {log}"


rule fetch_ctc:
    """A Cell Tracking Challenge training set, unpacked (official zip or mirror)."""
    input:
        script=script("fetch.py"),
    output:
        directory("results/raw/ctc/{ctc_dataset}"),
    log:
        "logs/fetch/{ctc_dataset}.log",
    retries: 2
    conda:
        "../../envs/data.yaml"
    params:
        source=lambda wc: config["sources"].get(wc.ctc_dataset, {}),
        args=mirror_args(),
    shell:
        "python {input.script} ctc {params.args} --name {wildcards.ctc_dataset}"
        " --url '{params.source[url]}' --sha256 {params.source[sha256]} --out-dir {output} 2> {log}"


rule prepare_isbi:
    """ISBI volume + binary labels -> internal form (checked)."""
    input:
        script=script("prepare.py"),
        volume="results/raw/isbi2012/train-volume.tif",
        labels="results/raw/isbi2012/train-labels.tif",
    output:
        "results/prepared/isbi2012/train.npz",
    log:
        "logs/prepare/isbi2012-train.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python {input.script} isbi --volume {input.volume} --labels {input.labels}"
        " --out {output} 2> {log}"


rule prepare_isbi_test:
    input:
        script=script("prepare.py"),
        volume="results/raw/isbi2012/test-volume.tif",
    output:
        "results/prepared/isbi2012/test.npz",
    log:
        "logs/prepare/isbi2012-test.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python {input.script} isbi --volume {input.volume} --out {output} 2> {log}"


rule prepare_ctc:
    """One CTC sequence: all frames, GT/SEG instances, frame indices, TRA markers, ST."""
    input:
        script=script("prepare.py"),
        root="results/raw/ctc/{ctc_dataset}",
    output:
        "results/prepared/{ctc_dataset}/{sequence}.npz",
    log:
        "logs/prepare/{ctc_dataset}-{sequence}.log",
    conda:
        "../../envs/data.yaml"
    params:
        partial=(
            "--partial"
            if config["weights"]["unannotated"] == "ignore"
            else "--no-partial"
        ),
        missing=config["weights"]["missing_annotations"],
    shell:
        "python {input.script} ctc --root {input.root} --sequence {wildcards.sequence}"
        " {params.partial} --missing {params.missing} --out {output} 2> {log}"
