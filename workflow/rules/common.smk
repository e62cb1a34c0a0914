import json
import shlex
import sys

import yaml
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from unet_repro.config import coerce_config  # noqa: E402
from unet_repro.datasets import CTC_DATASETS, ISBI  # noqa: E402

if "sources" not in config:
    config["sources"] = yaml.safe_load(
        Path(workflow.basedir, "config/sources.yaml").read_text()
    )
coerce_config(config, Path(workflow.basedir, "workflow/schemas/config.schema.yaml"))
validate(config, "../schemas/config.schema.yaml")
if config["mirror"]:
    config["mirror"] = str(Path(config["mirror"]).resolve())

DATASETS = config["datasets"]
CTC = [d for d in DATASETS if d in CTC_DATASETS]
SEQUENCES = ["01", "02"]


wildcard_constraints:
    dataset="|".join([ISBI, *CTC_DATASETS]),
    ctc_dataset="|".join(CTC_DATASETS),
    sequence="01|02|train|test",
    split="[A-Za-z0-9_.-]+",


def script(name):
    """Absolute path of a rule script (an input, so a changed script re-runs its rule)."""
    return str(Path(workflow.basedir, "scripts", name))


def mirror_args():
    """Command-line arguments passing the mirror (or nothing) to the fetch script."""
    args = f"--retries {config['download']['retries']} --timeout {config['download']['timeout']}"
    if config["mirror"]:
        args += f" --mirror {config['mirror']}"
    if config["allow_unverified"]:
        args += " --allow-unverified"
    return args


def splits(dataset):
    """The held-out split names of a dataset."""
    names = list(config["splits"].get(dataset, {}))
    if not names:
        raise ValueError(f"config: splits.{dataset} defines no split")
    return names


def split(dataset, name):
    return config["splits"][dataset][name]


def ctc_train_sequences(wildcards):
    return split(wildcards.dataset, wildcards.split)["train"]


def weights_inputs(dataset):
    """Weight map and target files of every training sequence of a dataset."""
    seqs = ["train"] if dataset == ISBI else SEQUENCES
    return expand(
        "results/weights/{dataset}/{sequence}.{kind}.tif",
        dataset=dataset,
        sequence=seqs,
        kind=["weights", "target"],
    )


def figure3_inputs(wildcards):
    if wildcards.dataset == ISBI:
        seq, index = "train", config["figures"]["isbi_slice"]
    else:
        seq, index = (
            config["figures"]["ctc_sequence"],
            config["figures"]["ctc_annotation"],
        )
    return {
        "script": script("figure_weights.py"),
        "prepared": f"results/prepared/{wildcards.dataset}/{seq}.npz",
        "weights": f"results/weights/{wildcards.dataset}/{seq}.weights.tif",
        "target": f"results/weights/{wildcards.dataset}/{seq}.target.tif",
    }


def all_weight_maps():
    files = []
    for dataset in DATASETS:
        files += weights_inputs(dataset)
    figs = [d for d in (ISBI, config["figures"]["ctc_dataset"]) if d in DATASETS]
    files += expand("results/figures/fig3_{dataset}.png", dataset=figs)
    return files


def train_inputs(wildcards):
    """Prepared data, weight maps and targets of the split's training sequences."""
    seqs = ["train"] if wildcards.dataset == ISBI else ctc_train_sequences(wildcards)
    return {
        "script": script("train.py"),
        "prepared": [f"results/prepared/{wildcards.dataset}/{s}.npz" for s in seqs],
        "weights": [
            f"results/weights/{wildcards.dataset}/{s}.weights.tif" for s in seqs
        ],
        "targets": [
            f"results/weights/{wildcards.dataset}/{s}.target.tif" for s in seqs
        ],
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


def ctc_test_sequences(dataset, name):
    return split(dataset, name)["test"]


def isbi_scores_files():
    if ISBI not in DATASETS:
        return []
    return expand("results/scores/isbi2012/{split}/scores.json", split=splits(ISBI))


def ctc_scores_files():
    return [
        f"results/scores/{d}/{s}/{seq}.seg.json"
        for d in CTC
        for s in splits(d)
        for seq in ctc_test_sequences(d, s)
    ]


def isbi_test_volume_wanted():
    setting = config["evaluate"]["isbi_test_volume"]
    if setting == "auto":
        return (
            bool(config["mirror"])
            and Path(config["mirror"], "isbi2012", "test-volume.tif").is_file()
        )
    return bool(setting)


def evaluation_targets():
    files = ["results/tables/table1.csv", "results/tables/table2.csv"]
    if ISBI in DATASETS:
        files.append("results/figures/isbi_thresholds.png")
        files += expand("results/figures/fig4_isbi2012_{split}.png", split=splits(ISBI))
        if isbi_test_volume_wanted():
            files += expand(
                "results/submission/isbi2012/{split}/test-volume.tif",
                split=splits(ISBI),
            )
    files += [
        f"results/figures/fig4_{d}_{s}_{seq}.png"
        for d in CTC
        for s in splits(d)
        for seq in ctc_test_sequences(d, s)
    ]
    files += (
        expand(
            "results/models/{dataset}/{split}/loss.png",
            dataset=ISBI,
            split=splits(ISBI),
        )
        if ISBI in DATASETS
        else []
    )
    files += [f"results/models/{d}/{s}/loss.png" for d in CTC for s in splits(d)]
    return files
