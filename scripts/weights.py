#!/usr/bin/env python
"""Precompute the training target and the weight map w(x) of paper section 3.

w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)). Instances: ISBI = 4-connected
cell components of the labels; CTC = the GT/SEG instance labels. With
``--unannotated ignore`` (CTC), cells that the tracking markers show and the gold truth lacks
get weight 0 (their extent from the silver truth): weight 0 means "ignored". Writes two
float32/uint8 TIFF stacks (one page per annotated image), readable in Fiji.
"""

import argparse
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.io import read_npz, write_tiff
from unet_repro.weights import (
    isbi_instances,
    training_target,
    unannotated_region,
    weight_map,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    parser.add_argument("--out-weights", type=Path, required=True)
    parser.add_argument("--out-target", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    data = read_npz(args.prepared)
    if "instances" in data:
        instances = data["instances"]
    elif "labels" in data:
        instances = np.stack([isbi_instances(lab) for lab in data["labels"]])
    else:
        raise SystemExit(f"{args.prepared}: holds no labels (a test volume has no weight map)")
    ignores = [None] * len(instances)
    if "instances" in data and args.unannotated == "ignore":
        if "markers" not in data:
            log.warning(
                "%s has no tracking markers (prepared with the fallback): no ignore region",
                args.prepared,
            )
        else:
            silver = data.get("silver")
            ignores = [
                unannotated_region(
                    inst,
                    data["markers"][k],
                    None if silver is None else silver[k],
                    margin=args.ignore_margin,
                    fallback_radius=args.ignore_fallback_radius,
                )
                for k, inst in enumerate(instances)
            ]
            for k, ig in enumerate(ignores):
                if ig.any():
                    log.info(
                        "frame %d: %.1f %% of the pixels ignored (unannotated cells)",
                        data["frames"][k],
                        100 * ig.mean(),
                    )
    targets = np.stack([training_target(inst) for inst in instances])
    weights = np.stack(
        [
            weight_map(
                inst, w0=args.w0, sigma=args.sigma, class_balance=args.class_balance, ignore=ig
            )
            for inst, ig in zip(instances, ignores, strict=True)
        ]
    )
    write_tiff(args.out_target, targets.astype(np.uint8))
    write_tiff(args.out_weights, weights.astype(np.float32))
    log.info(
        "%s: %d images, %d instances, w in [%.3f, %.3f], mean %.3f",
        args.prepared,
        len(instances),
        sum(len(np.unique(i)) - 1 for i in instances),
        weights.min(),
        weights.max(),
        weights.mean(),
    )


if __name__ == "__main__":
    run(main)
