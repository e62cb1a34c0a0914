#!/usr/bin/env python
"""A figure like the paper's figure 3: image, ground truth, separation borders, weight map."""

import argparse
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.datasets import frames_of, read_frame_roles
from unet_repro.figures import figure3
from unet_repro.io import read_npz, read_tiff


def figure_inputs(data, n_pages, args):
    """Image, truth, page of the weight stacks and title of the image to draw.

    CTC: the annotated frame ``--frame`` (or the ``--index``-th annotated frame), its page in
    the stacks from the frame-roles CSV and the truth it was trained on (gold, or silver under
    ``ST``); ISBI: image ``--index``.
    """
    if "instances" not in data:
        if not 0 <= args.index < n_pages:
            raise SystemExit(f"--index {args.index}: {args.weights} holds {n_pages} images")
        i = args.index
        return data["images"][i], data["labels"][i], i, f"image {i}"
    frames = data["frames"]
    if args.frame is not None and args.frame not in frames:
        raise SystemExit(f"--frame {args.frame}: not an annotated frame of {args.prepared}")
    if args.frame is None and not 0 <= args.index < len(frames):
        raise SystemExit(
            f"--index {args.index}: {args.prepared} has {len(frames)} annotated frames"
        )
    t = args.frame if args.frame is not None else int(frames[args.index])
    rows = read_frame_roles(args.frames) if args.frames else None
    pages = frames_of(rows) if rows else [int(f) for f in frames]
    if t not in pages:
        raise SystemExit(f"frame {t} is not a training frame of {args.weights}")
    truth = data["instances"][int(np.flatnonzero(frames == t)[0])]
    if rows and next(r["truth"] for r in rows if int(r["frame"]) == t) == "silver":
        truth = data["silver"][t]
    what = f"frame {t}" if args.frame is not None else f"annotated frame {args.index}"
    return data["images"][t], truth, pages.index(t), what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0, help="which labelled image")
    parser.add_argument(
        "--frame", type=int, default=None, help="CTC: the annotated frame NNN (instead of --index)"
    )
    parser.add_argument(
        "--frames", type=Path, default=None, help="CTC: the weights rule's frame-roles CSV"
    )
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    data = read_npz(args.prepared)
    weights, target = read_tiff(args.weights), read_tiff(args.target)
    if weights.ndim == 2:
        weights, target = weights[None], target[None]
    image, truth, i, what = figure_inputs(data, len(weights), args)
    figure3(image, truth, target[i], weights[i], args.out, title=f"{args.title} ({what})")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
