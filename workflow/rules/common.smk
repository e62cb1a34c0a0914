import json
import os
import shlex
import sys

import yaml
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The repository root, two levels above this file (workflow/rules/): workflow.basedir is the
# folder of the Snakefile that was run, which is the root or workflow/ depending on the entry.
REPO = Path(str(workflow.current_basedir)).parents[1]
sys.path.insert(0, str(REPO / "src"))
from unet_repro.ablations import (
    FULL,
    check_overlays,
    dataset_settings,
    selected_variants,
    stage_root,
    variant_config,
)  # noqa: E402
from unet_repro.config import (  # noqa: E402
    check_splits,
    coerce_config,
    has_heldout,
    tile_size_for,
)
from unet_repro.datasets import CTC_DATASETS, ISBI  # noqa: E402
from unet_repro.precision import text as precision_text  # noqa: E402
from unet_repro.provenance import (
    ENV as PROVENANCE_ENV,
    THREADS_ENV,
    config_digest,
)  # noqa: E402

if "sources" not in config:
    config["sources"] = yaml.safe_load(Path(REPO, "config/sources.yaml").read_text())
for where in [config.get("train", {}), *config.get("train_overrides", {}).values()]:
    if isinstance(where, dict) and "seed" in where:
        raise ValueError(
            "config: train.seed is replaced by the top-level list `seeds` (one model per seed)"
        )
# before the schema: its messages name the overlay's key less clearly
check_overlays(config.get("ablations"))
coerce_config(config, Path(REPO, "workflow/schemas/config.schema.yaml"))
validate(config, "../schemas/config.schema.yaml")
if config["mirror"]:
    config["mirror"] = str(Path(config["mirror"]).resolve())

DATASETS = config["datasets"]
CTC = [d for d in DATASETS if d in CTC_DATASETS]
SEQUENCES = ["01", "02"]
SEEDS = config["seeds"]
# train/test overlap, CTC sequences outside 01/02, empty training sets: stop here, naming the split
check_splits(config["splits"], ISBI, CTC_DATASETS, SEQUENCES)

# Ablation variants (`ablations` target): each overlay merged into the configuration and
# validated like it; VARIANTS[name] is the configuration of a variant, VARIANTS["full"] this one.
VARIANTS = {FULL: config}
for _name in config["ablations"]:
    VARIANTS[_name] = variant_config(config, _name)
    try:
        validate(VARIANTS[_name], "../schemas/config.schema.yaml")
    except Exception as err:
        raise ValueError(f"config: ablations.{_name}: the merged configuration: {err}")
# the variants the `ablations` target builds (`ablation_variants`; default: every one)
TABLE_VARIANTS = [FULL, *selected_variants(config)]

# Provenance: the digest of each variant's effective configuration reaches the jobs through
# the environment (not as a param: a param that changes re-runs every job), and every model,
# prediction, scores file and table records it (unet_repro.provenance).
os.environ[PROVENANCE_ENV] = json.dumps(
    {name: config_digest(settings) for name, settings in VARIANTS.items()},
    sort_keys=True,
)
# The thread count the configuration asks for, so that a training run with fewer (Snakemake
# lowers a rule's threads to --cores) says that its numbers will differ in the last bits.
os.environ[THREADS_ENV] = str(config["resources"]["train"]["threads"])


wildcard_constraints:
    dataset="|".join([ISBI, *CTC_DATASETS]),
    ctc_dataset="|".join(CTC_DATASETS),
    sequence="01|02|train|test",
    frame="[0-9]+",
    split="[A-Za-z0-9_.-]+",
    seed="[0-9]+",
    # "" for the full method's files, "ablations/<variant>/" for an ablation variant's
    ablation="(ablations/[A-Za-z0-9_-]+/)?",


def script(name):
    """Absolute path of a rule script (an input, so a changed script re-runs its rule)."""
    return str(Path(REPO, "scripts", name))


def mirror_args():
    """Command-line arguments passing the mirror (or nothing) to the fetch script."""
    args = f"--retries {config['download']['retries']} --timeout {config['download']['timeout']}"
    if config["mirror"]:
        args += f" --mirror {config['mirror']}"
    if config["allow_unverified"]:
        args += " --allow-unverified"
    return args


def splits(dataset):
    """The held-out split names of a dataset (scored, in the tables and figures)."""
    names = [n for n, s in config["splits"].get(dataset, {}).items() if has_heldout(s)]
    if not names:
        raise ValueError(f"config: splits.{dataset} defines no held-out split")
    return names


def submission_splits():
    """ISBI splits with an empty `test`: whole-data models, trained only for the submission."""
    defined = config["splits"].get(ISBI, {})
    return [n for n, s in defined.items() if not has_heldout(s)]


def split(dataset, name):
    return config["splits"][dataset][name]


def heldout_indices(wildcards):
    """The held-out slices of an ISBI split; a whole-data split has none to predict or score."""
    if wildcards.split not in splits(ISBI):
        raise ValueError(
            f"config: splits.{ISBI}.{wildcards.split} is not a held-out split (empty test)"
        )
    return split(ISBI, wildcards.split)["test"]


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
        "frames": f"results/weights/{wildcards.dataset}/{seq}.frames.csv",
    }


def all_weight_maps():
    files = []
    for dataset in DATASETS:
        files += weights_inputs(dataset)
    figs = [d for d in (ISBI, config["figures"]["ctc_dataset"]) if d in DATASETS]
    files += expand("results/figures/fig3_{dataset}.png", dataset=figs)
    ignore_fig = config["figures"]["ctc_partial"]
    if ignore_fig and ignore_fig["dataset"] in DATASETS:
        files.append(
            "results/figures/fig3_{dataset}_{sequence}_t{frame:03d}.png".format(
                **ignore_fig
            )
        )
    return files


def variant(wildcards):
    """The variant whose files a job makes: "full", or <variant> of `ablations/<variant>/`."""
    part = getattr(wildcards, "ablation", "")
    return part.split("/")[1] if part else FULL


def cfg(wildcards):
    """The configuration of the job's variant (this configuration for the full method)."""
    return VARIANTS[variant(wildcards)]


def stage_prefix(name, stage, dataset):
    """`{ablation}` part of the `stage` files variant `name` uses: the full method's ("")
    where the variant's settings for that stage equal the full method's (unet_repro.ablations).
    """
    root = stage_root(config, name, stage, dataset)
    return "" if root == "results" else root.removeprefix("results/") + "/"


def stage_dir(wildcards, stage, dataset):
    return stage_prefix(variant(wildcards), stage, dataset)


def weights_args(wildcards):
    w = dataset_settings(cfg(wildcards), "weights", wildcards.dataset)
    args = (
        f"--w0 {w['w0']} --sigma {w['sigma']} --class-balance {w['class_balance']}"
        f" --unannotated {w['unannotated']} --ignore-margin {w['ignore_margin']}"
        f" --training-data {w['training_data']} --holdout-every {w['holdout_every']}"
    )
    if w["ignore_fallback_radius"] is not None:
        args += f" --ignore-fallback-radius {w['ignore_fallback_radius']}"
    if w.get("core_erosion"):  # beyond the paper; absent or 0: the paper's target
        args += f" --core-erosion {w['core_erosion']}"
    return args


def touching_pastes(wildcards):
    """Cells pasted into each composite of the job's dataset (0: no composites; ISBI: 0)."""
    if wildcards.dataset == ISBI:
        return 0
    return (
        dataset_settings(cfg(wildcards), "weights", wildcards.dataset).get(
            "touching_pastes"
        )
        or 0
    )


def paste_args(wildcards):
    w = dataset_settings(cfg(wildcards), "weights", wildcards.dataset)
    args = f"{weights_args(wildcards)} --touching-pastes {touching_pastes(wildcards)}"
    if w.get("touching_overlap"):  # absent: the script's (0, 0.2), a copy meets the rim
        args += " --touching-overlap {} {}".format(*w["touching_overlap"])
    if w.get("touching_roundness"):  # absent or 0: any cell is pasted
        args += f" --touching-roundness {w['touching_roundness']}"
    return args


def train_inputs(wildcards):
    """Prepared data, weight maps and targets of the split's training sequences (and their
    composites with pasted touching cells, `weights.touching_pastes`)."""
    seqs = ["train"] if wildcards.dataset == ISBI else ctc_train_sequences(wildcards)
    w = f"results/{stage_dir(wildcards, 'weights', wildcards.dataset)}weights"
    inputs = {
        "script": script("train.py"),
        "prepared": [f"results/prepared/{wildcards.dataset}/{s}.npz" for s in seqs],
        "weights": [f"{w}/{wildcards.dataset}/{s}.weights.tif" for s in seqs],
        "targets": [f"{w}/{wildcards.dataset}/{s}.target.tif" for s in seqs],
        "frames": [f"{w}/{wildcards.dataset}/{s}.frames.csv" for s in seqs],
    }
    if touching_pastes(wildcards):
        inputs["pasted"] = [f"{w}/{wildcards.dataset}/{s}.pasted.npz" for s in seqs]
    return inputs


def pasted_arg(wildcards, input):
    """`--pasted <files>` where the training has composites, else nothing."""
    return f"--pasted {' '.join(input.pasted)}" if "pasted" in input.keys() else ""


def frames_csv(wildcards):
    """Frame-roles CSV of a CTC sequence, from the weights stage the job's variant uses."""
    ds = wildcards.ctc_dataset
    return f"results/{stage_dir(wildcards, 'weights', ds)}weights/{ds}/{wildcards.sequence}.frames.csv"


def select_inputs(wildcards):
    """What the cut is chosen on: the training sequences' selection frames (`unseen`, with
    their frame-roles CSVs) or their annotated frames (`annotated`)."""
    ds, seqs = (
        wildcards.ctc_dataset,
        split(wildcards.ctc_dataset, wildcards.split)["train"],
    )
    on = cfg(wildcards)["evaluate"]["ctc_select_on"]
    kind = "select" if on == "unseen" else "annotated"
    files = {
        "predictions": [f"{prediction_dir(wildcards)}/{kind}-{s}.tif" for s in seqs],
        "prepared": [f"results/prepared/{ds}/{s}.npz" for s in seqs],
    }
    if on == "unseen":
        w = stage_dir(wildcards, "weights", ds)
        files["frames"] = [f"results/{w}weights/{ds}/{s}.frames.csv" for s in seqs]
    return files


def job_dataset(wildcards):
    return getattr(wildcards, "ctc_dataset", ISBI)


def model_input(wildcards):
    """The model a prediction job uses (the full method's where the training is the same)."""
    ds = job_dataset(wildcards)
    prefix = stage_dir(wildcards, "train", ds)
    return (
        f"results/{prefix}models/{ds}/{wildcards.split}/seed{wildcards.seed}/model.pt"
    )


def prediction_dir(wildcards):
    """Folder of the predictions an evaluation job uses (the full method's where the same)."""
    ds = job_dataset(wildcards)
    prefix = stage_dir(wildcards, "predict", ds)
    return f"results/{prefix}predictions/{ds}/{wildcards.split}/seed{wildcards.seed}"


def train_config(dataset, seed, settings=None):
    """Training settings of a dataset (with its overrides) for one seed."""
    settings = settings or config
    cfg = dataset_settings(settings, "train", dataset)
    cfg["seed"] = int(seed)
    return cfg


def train_args(wildcards):
    settings = cfg(wildcards)
    train = train_config(wildcards.dataset, wildcards.seed, settings)
    model = dataset_settings(settings, "model", wildcards.dataset)
    args = [
        f"--model-config {shlex.quote(json.dumps(model))}",
        f"--train-config {shlex.quote(json.dumps(train))}",
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


def predict_args(dataset, settings=None):
    """Command-line settings of predict.py for a dataset (the variant's `settings`)."""
    predict = (settings or config)["predict"]
    names = predict["transforms"].get(dataset, DEFAULT_TRANSFORMS[dataset])
    args = [
        f"--tile-size {tile_size_for(predict, dataset)}",
        f"--batch-size {predict['batch_size']}",
        f"--transforms {' '.join(names)}",
    ]
    for key in ("amp", "channels_last"):  # true, false or auto
        args.append(f"--{key.replace('_', '-')} {precision_text(predict[key])}")
    if not predict["deterministic"]:
        args.append("--no-deterministic")
    if config["device"] != "auto":
        args.append(f"--device {config['device']}")
    return " ".join(args)


PREDICT_RESOURCES = config["resources"]["predict"]


def ctc_test_sequences(dataset, name):
    return split(dataset, name)["test"]


def ctc_postprocess_input(wildcards):
    """The settings chosen on the training sequence(s), when they are chosen."""
    if cfg(wildcards)["evaluate"]["ctc_postprocess"] != "select":
        return {}
    return {
        "postprocess": "results/{ablation}scores/{ctc_dataset}/{split}/seed{seed}/postprocess.json".format(
            **wildcards
        )
    }


def ctc_postprocess_args(wildcards, input):
    ev = cfg(wildcards)["evaluate"]
    if ev["ctc_postprocess"] == "select":
        return f"--postprocess {input.postprocess}"
    return (
        f"--threshold {ev['ctc_threshold']} --min-size {ev['ctc_min_size']}"
        f" --expand {ev['ctc_expand']}"
        + (" --fill-holes" if ev["ctc_fill_holes"] else " --no-fill-holes")
        + (
            f" --mask-threshold {ev['ctc_mask_threshold']}"
            if ev["ctc_mask_threshold"] is not None
            else ""
        )
        + (" --keep-unseeded" if ev["ctc_keep_unseeded"] else "")
        + (
            f" --split-depth {ev['ctc_split_depth']}"
            if ev["ctc_split_depth"] is not None
            else ""
        )
    )


def isbi_scores_files(name=FULL):
    """Held-out ISBI scores of every split and seed (of an ablation variant: its own where its
    evaluation differs from the full method's, else the full method's)."""
    if ISBI not in DATASETS:
        return []
    prefix = stage_prefix(name, "evaluate", ISBI)
    return expand(
        f"results/{prefix}scores/isbi2012/{{split}}/seed{{seed}}/scores.json",
        split=splits(ISBI),
        seed=SEEDS,
    )


def ctc_scores_files(name=FULL):
    return [
        f"results/{stage_prefix(name, 'evaluate', d)}scores/{d}/{s}/seed{seed}/{seq}.seg.json"
        for d in CTC
        for s in splits(d)
        for seed in SEEDS
        for seq in ctc_test_sequences(d, s)
    ]


def config_name(wildcards):
    """The name in score files: the configuration's, with the variant of an ablation."""
    name = variant(wildcards)
    return config["name"] if name == FULL else f"{config['name']}/{name}"


def isbi_test_volume_wanted():
    setting = config["evaluate"]["isbi_test_volume"]
    if setting == "auto":
        return (
            bool(config["mirror"])
            and Path(config["mirror"], "isbi2012", "test-volume.tif").is_file()
        )
    if setting and not submission_splits():
        raise ValueError(
            f"config: evaluate.isbi_test_volume is true but splits.{ISBI} has no whole-data"
            ' split (one with an empty test, e.g. all: {train: "0-29", test: []})'
        )
    return bool(setting)


def evaluation_targets():
    """Tables (every seed), loss curves (every model), figures (the first seed's models)."""
    files = ["results/tables/table1.csv", "results/tables/table2.csv"]
    first = SEEDS[0]
    if ISBI in DATASETS:
        files.append("results/figures/isbi_thresholds.png")
        files += expand(
            "results/figures/fig4_isbi2012_{split}_seed{seed}.png",
            split=splits(ISBI),
            seed=first,
        )
        if isbi_test_volume_wanted():
            # only the whole-data models (trained on all slices, as in the paper) submit;
            # one submission, from the first seed (the challenge scores one)
            for s in submission_splits():
                files += [
                    f"results/submission/isbi2012/{s}/seed{first}/test-volume.tif",
                    f"results/models/isbi2012/{s}/seed{first}/loss.png",
                ]
    files += [
        f"results/figures/fig4_{d}_{s}_seed{first}_{seq}.png"
        for d in CTC
        for s in splits(d)
        for seq in ctc_test_sequences(d, s)
    ]
    held_out = [(ISBI, s) for s in splits(ISBI)] if ISBI in DATASETS else []
    held_out += [(d, s) for d in CTC for s in splits(d)]
    files += [
        f"results/models/{d}/{s}/seed{seed}/loss.png"
        for d, s in held_out
        for seed in SEEDS
    ]
    return files


def ablation_scores(name):
    """Score files of a variant (or of "full"): its own where its evaluation differs."""
    return isbi_scores_files(name) + ctc_scores_files(name)


def ablation_variant_args():
    return " ".join(
        f"--variant {name} {' '.join(ablation_scores(name))}" for name in TABLE_VARIANTS
    )
