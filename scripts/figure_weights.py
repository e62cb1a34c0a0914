#!/usr/bin/env python
"""A figure like the paper's figure 3: image, ground truth, separation borders, weight map."""

import argparse
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.figures import figure3
from unet_repro.io import read_npz, read_tiff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0, help="which labelled image")
    parser.add_argument(
        "--frame", type=int, default=None, help="CTC: the annotated frame NNN (instead of --index)"
    )
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    data = read_npz(args.prepared)
    weights, target = read_tiff(args.weights), read_tiff(args.target)
    if weights.ndim == 2:
        weights, target = weights[None], target[None]
    i = args.index
    if args.frame is not None:
        frames = data.get("frames")
        if frames is None or args.frame not in frames:
            raise SystemExit(f"--frame {args.frame}: not an annotated frame of {args.prepared}")
        i = int(np.flatnonzero(frames == args.frame)[0])
    if not 0 <= i < len(weights):
        raise SystemExit(f"--index {i}: {args.weights} holds {len(weights)} images")
    if "instances" in data:
        image, truth = data["images"][data["frames"][i]], data["instances"][i]
    else:
        image, truth = data["images"][i], data["labels"][i]
    what = f"frame {args.frame}" if args.frame is not None else f"image {i}"
    figure3(image, truth, target[i], weights[i], args.out, title=f"{args.title} ({what})")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
