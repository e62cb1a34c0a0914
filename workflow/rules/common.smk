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
    config["sources"] = yaml.safe_load(Path(workflow.basedir, "config/sources.yaml").read_text())
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
