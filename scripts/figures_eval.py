#!/usr/bin/env python
"""Evaluation figures: ISBI per-threshold curves, and overlays like the paper's figure 4."""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.datasets import parse_indices, read_ctc_sequence
from unet_repro.figures import figure4, isbi_curves
from unet_repro.io import read_npz, read_tiff
from unet_repro.metrics.ctc import instances_from_probability
from unet_repro.postprocess import KEYS, segment
from unet_repro.tables import PAPER_TABLE1
from unet_repro.weights import isbi_instances


def curves(args, log) -> None:
    tables = {}
    for label, path in zip(args.labels, args.csv, strict=True):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        metrics = ("warping_error", "rand_error", "pixel_error", "vrand_thinned", "vinfo_thinned")
        tables[label] = {
            m: {float(r["threshold"]): float(r[m]) for r in rows if r[m] != ""}
            for m in metrics
            if rows and m in rows[0]  # per-threshold files written before V_Rand/V_Info lack them
        }
    _, w, r, p = next(row for row in PAPER_TABLE1 if row[0].startswith("u-net"))
    isbi_curves(tables, args.out, {"warping_error": w, "rand_error": r, "pixel_error": p})
    log.info("wrote %s", args.out)


def overlay(args, log) -> None:
    probs = read_tiff(args.prediction)
    probs = probs[None] if probs.ndim == 2 else probs
    if args.gt_root:  # CTC: first annotated frame of the held-out sequence
        seq = read_ctc_sequence(args.gt_root, args.sequence)
        frame = int(seq.frames[0])
        image, truth, p = seq.images[frame], seq.instances[0], probs[frame]
        name = f"frame {frame}"
    else:  # ISBI: first held-out slice
        data = read_npz(args.prepared)
        index = parse_indices(args.indices, len(data["labels"]))[0]
        image, truth, p = data["images"][index], isbi_instances(data["labels"][index]), probs[0]
        name = f"slice {index}"
    if args.scores:  # the post-processing the SEG was computed with
        chosen = json.loads(args.scores.read_text())
        pred = segment(p, **{k: chosen[k] for k in KEYS if k in chosen})
    else:
        pred = instances_from_probability(p, args.threshold)
    figure4(image.astype(np.float32), truth, pred, args.out, title=f"{args.title} ({name})")
    log.info("wrote %s", args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curves", help="ISBI per-threshold curves")
    c.add_argument("--csv", type=Path, nargs="+", required=True)
    c.add_argument("--labels", nargs="+", required=True)
    c.add_argument("--out", type=Path, required=True)
    o = sub.add_parser("overlay", help="figure 4 style overlay")
    o.add_argument("--prediction", type=Path, required=True)
    o.add_argument("--gt-root", type=Path, help="CTC dataset folder")
    o.add_argument("--sequence", help="CTC held-out sequence")
    o.add_argument("--prepared", type=Path, help="ISBI prepared train.npz")
    o.add_argument("--indices", help="ISBI held-out slices")
    o.add_argument("--threshold", type=float, default=0.5)
    o.add_argument("--scores", type=Path, help="CTC .seg.json: its post-processing settings")
    o.add_argument("--title", default="")
    o.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    curves(args, log) if args.what == "curves" else overlay(args, log)


if __name__ == "__main__":
    run(main)
