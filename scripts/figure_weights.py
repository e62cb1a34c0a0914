#!/usr/bin/env python
"""A figure like the paper's figure 3: image, ground truth, separation borders, weight map."""

import argparse
from pathlib import Path

from _common import run, setup_logging

from unet_repro.figures import figure3
from unet_repro.io import read_npz, read_tiff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0, help="which labelled image")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    data = read_npz(args.prepared)
    weights, target = read_tiff(args.weights), read_tiff(args.target)
    if weights.ndim == 2:
        weights, target = weights[None], target[None]
    i = args.index
    if not 0 <= i < len(weights):
        raise SystemExit(f"--index {i}: {args.weights} holds {len(weights)} images")
    if "instances" in data:
        image, truth = data["images"][data["frames"][i]], data["instances"][i]
    else:
        image, truth = data["images"][i], data["labels"][i]
    figure3(image, truth, target[i], weights[i], args.out, title=f"{args.title} (image {i})")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
