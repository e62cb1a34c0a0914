#!/usr/bin/env python
"""Precompute the training target and the weight map w(x) of paper section 3.

w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)). Instances: ISBI = 4-connected
cell components of the labels; CTC = the GT/SEG instance labels. With
``--unannotated ignore`` (CTC), cells that the tracking markers show and the gold truth lacks
get weight 0 (their extent from the silver truth): weight 0 means "ignored".

CTC training data (``--training-data``, the Challenge's names): ``GT`` = the gold frames,
``ST`` = the silver truth of every frame, ``GT+ST`` = gold where it exists, silver elsewhere;
every ``--holdout-every``-th frame without gold truth is held back from training in all
three (the post-processing is chosen on it, against its silver truth;
``unet_repro.datasets.frame_roles``).

With ``--core-erosion k`` (beyond the paper) every instance loses the ring of pixels within
k px of its outline (``unet_repro.weights.core_instances``): the target and w(x) are those of
the cores, and an instance too thin to keep a core is ignored.

Writes two float32/uint8 TIFF stacks (one page per training image), readable in Fiji, and
a CSV with every frame's role (``train``/``select``/``unused``), its truth
(``gold``/``silver``/``none``) and its page in the stacks.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.datasets import ROLES, TRAINING_DATA, frame_roles
from unet_repro.io import atomic_path, read_npz, write_tiff
from unet_repro.weights import (
    core_instances,
    isbi_instances,
    training_target,
    training_truth,
    weight_map,
)

FIELDS = ("frame", "role", "truth", "page")


def truth_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments that say what a sequence trains on (shared with paste.py)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prepared", type=Path, required=True, help="prepared .npz of one sequence"
    )
    parser.add_argument("--w0", type=float, default=10.0)
    parser.add_argument("--sigma", type=float, default=5.0)
    parser.add_argument(
        "--class-balance", default="inverse_frequency", choices=["inverse_frequency", "none"]
    )
    parser.add_argument(
        "--unannotated",
        choices=["ignore", "background"],
        default="ignore",
        help="CTC cells without gold truth: weight 0 (ignore) or background (as in the GT)",
    )
    parser.add_argument("--ignore-margin", type=float, default=2.0, help="pixels")
    parser.add_argument(
        "--ignore-fallback-radius",
        type=float,
        default=None,
        help="pixels around a marker without silver truth (default: median cell radius)",
    )
    parser.add_argument(
        "--training-data",
        choices=TRAINING_DATA,
        default="GT",
        help="CTC: gold frames (GT), silver truth of every frame (ST), or both (GT+ST)",
    )
    parser.add_argument(
        "--holdout-every",
        type=int,
        default=4,
        help="CTC: every k-th frame without gold truth is held back (the cut is chosen on it)",
    )
    parser.add_argument(
        "--core-erosion",
        type=int,
        default=0,
        help="pixels taken off every instance in the target (beyond the paper; 0 = the paper's)",
    )
    return parser


def main() -> None:
    parser = truth_parser(__doc__)
    parser.add_argument("--out-weights", type=Path, required=True)
    parser.add_argument("--out-target", type=Path, required=True)
    parser.add_argument("--out-frames", type=Path, required=True, help="CSV: each frame's role")
    args = parser.parse_args()
    log = setup_logging()
    data = read_npz(args.prepared)
    if "instances" in data:
        instances, ignores, rows = ctc_training_set(data, args, log)
    elif "labels" in data:
        instances = np.stack([isbi_instances(lab) for lab in data["labels"]])
        ignores = [None] * len(instances)
        rows = [
            {"frame": i, "role": "train", "truth": "gold", "page": i} for i in range(len(instances))
        ]
    else:
        raise SystemExit(f"{args.prepared}: holds no labels (a test volume has no weight map)")
    if args.core_erosion:
        instances, ignores = shrink_to_cores(instances, ignores, args.core_erosion, log)
    targets = np.stack([training_target(inst) for inst in instances])
    weights = np.stack(
        [frame_weights(inst, ig, args) for inst, ig in zip(instances, ignores, strict=True)]
    )
    write_tiff(args.out_target, targets.astype(np.uint8))
    write_tiff(args.out_weights, weights.astype(np.float32))
    with atomic_path(args.out_frames) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    log.info(
        "%s: %d images, %d instances, w in [%.3f, %.3f], mean %.3f",
        args.prepared,
        len(instances),
        sum(len(np.unique(i)) - 1 for i in instances),
        weights.min(),
        weights.max(),
        weights.mean(),
    )


def frame_weights(instances, ignore, args):
    """w(x) of one training image with the settings of ``args`` (shared with paste.py)."""
    return weight_map(
        instances, w0=args.w0, sigma=args.sigma, class_balance=args.class_balance, ignore=ignore
    )


def shrink_to_cores(instances, ignores, erosion, log):
    """Cores of the instances; instances too thin to keep a core are ignored (weight 0)."""
    cores, out_ignores, lost = [], [], 0
    for inst, ig in zip(instances, ignores, strict=True):
        core, vanished = core_instances(inst, erosion)
        lost += len(np.unique(inst[vanished]))
        if vanished.any():
            ig = vanished if ig is None else ig | vanished
        cores.append(core)
        out_ignores.append(ig)
    log.info("cores eroded by %d px; %d instances too thin for a core (ignored)", erosion, lost)
    return np.stack(cores), out_ignores


def ctc_training_set(data, args, log):
    """Instances, ignore regions and frame rows of a CTC sequence's training frames."""
    if "has_silver" not in data:  # prepared without the silver truth (fallback)
        if args.training_data != "GT":
            raise SystemExit(
                f"{args.prepared}: holds no silver truth (ST/SEG), which --training-data"
                f" {args.training_data} needs"
            )
        has_silver = np.zeros(len(data["images"]), dtype=bool)
    else:
        has_silver = data["has_silver"]
    rows = frame_roles(
        len(data["images"]), data["frames"], has_silver, args.training_data, args.holdout_every
    )
    if "markers" not in data and args.unannotated == "ignore":
        log.warning(
            "%s has no tracking markers (prepared with the fallback): no ignore region",
            args.prepared,
        )
    chosen = training_truth(
        data["instances"],
        data["frames"],
        rows,
        data.get("markers"),
        data.get("silver") if "has_silver" in data else None,
        unannotated=args.unannotated,
        margin=args.ignore_margin,
        fallback_radius=args.ignore_fallback_radius,
    )
    if not chosen:
        raise SystemExit(
            f"{args.prepared}: no training frame for --training-data {args.training_data}"
        )
    pages = {t: k for k, (t, *_) in enumerate(chosen)}
    for row in rows:
        row["page"] = pages.get(row["frame"], "")
    for t, truth, _, ig in chosen:
        if ig is not None:
            log.info("frame %d (%s): %.1f %% of the pixels ignored", t, truth, 100 * ig.mean())
    counts = {r: sum(row["role"] == r for row in rows) for r in ROLES}
    log.info("%s: %s frames (%s)", args.training_data, counts, args.prepared)
    return [lab for _, _, lab, _ in chosen], [ig for *_, ig in chosen], rows


if __name__ == "__main__":
    run(main)
