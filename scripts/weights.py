#!/usr/bin/env python
"""Precompute the training target and the weight map w(x) of paper section 3.

w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)). Instances: ISBI = 4-connected
cell components of the labels; CTC = the GT/SEG instance labels. Writes two float32/uint8
TIFF stacks (one page per annotated image), readable in Fiji.
"""

import argparse
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.io import read_npz, write_tiff
from unet_repro.weights import isbi_instances, training_target, weight_map


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
    targets = np.stack([training_target(inst) for inst in instances])
    weights = np.stack(
        [
            weight_map(inst, w0=args.w0, sigma=args.sigma, class_balance=args.class_balance)
            for inst in instances
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
