"""What limits a CTC model on its held-out sequence: the outlines, the merges, or the cut?

A diagnosis of a finished run, never a choice: the workflow chooses the cut on the training
sequence's selection frames only. For the gold frames of a held-out sequence this prints

1. per category of the run's ``<seq>.objects.csv`` (``matched``: the only gold cell its
   result object covers; ``merged``: one result object for two or more gold cells), the mean
   Jaccard of the run and of the Challenge's silver truth (ST/SEG) on the *same* gold cells:
   how far the outlines are from what the fusion of the top methods draws;
2. the SEG of the cut the run chose, and the best SEG any cut of a grid (threshold 0.5 ...
   0.99, growth into P > 0.5 or none, +0 or +1 px; min 100 px, holes filled) reaches on
   these frames: the ceiling of the post-processing for these probabilities. Several
   prediction stacks are averaged first (an ensemble of seeds);
3. with ``--figure``, the six matched cells of the lowest Jaccard with the gold (green), the
   run's (red, the chosen cut on the averaged maps) and the silver truth's (cyan) outlines.

Usage::

    python benchmarks/held_out_ceiling.py \\
        --prepared results/prepared/PhC-C2DH-U373/02.npz \\
        --scores results/scores/PhC-C2DH-U373/train01/seed0 \\
        --predictions results/predictions/PhC-C2DH-U373/train01/seed0/02.tif [more.tif ...]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path

import numpy as np
import tifffile

from unet_repro.io import read_npz
from unet_repro.metrics.ctc import object_errors, seg_losses
from unet_repro.postprocess import KEYS, segment

GRID = {
    "threshold": [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99],
    "mask_threshold": [None, 0.5],
    "expand": [0, 1],
}


def seg_of(results, golds) -> float:
    """SEG of result label images against the gold frames."""
    objects = []
    for res, g in zip(results, golds, strict=True):
        objects += object_errors(g, res)
    return seg_losses(objects)["seg"]


def covering(labels: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The mask of the label covering most of ``cell`` (empty when that is background)."""
    values, counts = np.unique(labels[cell], return_counts=True)
    top = values[np.argmax(counts)]
    return labels == top if top else np.zeros_like(cell)


def draw_worst(path: Path, data, results, frames, rows) -> None:
    """Image crops of the given gold cells with the gold, run's and silver outlines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(len(rows), 1), figsize=(3.2 * max(len(rows), 1), 3.6))
    for ax, r in zip(np.atleast_1d(axes), rows, strict=False):
        t, label = int(r["frame"]), int(r["label"])
        i = frames.index(t)
        gold = data["instances"][i] == label
        run = covering(results[i], gold)
        silver = covering(data["silver"][t], gold) if data["has_silver"][t] else np.zeros_like(gold)
        ys, xs = np.nonzero(gold | run)
        box = (
            slice(max(ys.min() - 15, 0), ys.max() + 16),
            slice(max(xs.min() - 15, 0), xs.max() + 16),
        )
        ax.imshow(data["images"][t][box], cmap="gray")
        for mask, colour in ((gold, "lime"), (run, "red"), (silver, "cyan")):
            if mask[box].any():
                ax.contour(mask[box], [0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"frame {t}, cell {label}: J {float(r['jaccard']):.2f}", fontsize=9)
        ax.axis("off")
    fig.suptitle("gold (green), run (red), silver truth (cyan)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prepared", type=Path, required=True, help="held-out <seq>.npz")
    parser.add_argument(
        "--scores", type=Path, required=True, help="the run's scores folder (<seq>.seg.json)"
    )
    parser.add_argument("--predictions", type=Path, nargs="+", required=True)
    parser.add_argument("--figure", type=Path, help="PNG of the worst matched cells")
    args = parser.parse_args()
    data = read_npz(args.prepared)
    seq = args.prepared.stem
    frames = [int(t) for t in data["frames"]]
    golds = list(data["instances"])
    chosen = json.loads((args.scores / f"{seq}.seg.json").read_text())
    with open(args.scores / f"{seq}.objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    # 1. the run's and the silver truth's Jaccard on the same gold cells
    silver = {}
    for t, g in zip(frames, golds, strict=True):
        if data["has_silver"][t]:
            for o in object_errors(g, data["silver"][t]):
                silver[(t, o["label"])] = o["jaccard"]
    print(f"{args.prepared}: {len(frames)} gold frames, {len(rows)} gold cells\n")
    print("| category (the run's) | cells | run's Jaccard | silver truth's Jaccard, same cells |")
    print("|---|---|---|---|")
    for cat in ("matched", "merged", "missed"):
        sel = [r for r in rows if r["category"] == cat]
        if not sel:
            continue
        ours = np.mean([float(r["jaccard"]) for r in sel])
        st = [silver[k] for r in sel if (k := (int(r["frame"]), int(r["label"]))) in silver]
        st_text = f"{np.mean(st):.4f} ({len(st)} cells)" if st else "-"
        print(f"| {cat} | {len(sel)} | {ours:.4f} | {st_text} |")

    # 2. the chosen cut and the best cut of the grid on these frames
    probs = np.mean([tifffile.imread(p)[frames] for p in args.predictions], axis=0)
    cut = {k: chosen[k] for k in KEYS}
    print(f"\nchosen on the selection frames: {cut}")
    results = [segment(p, **cut) for p in probs]
    print(f"  SEG on {seq}: {seg_of(results, golds):.4f} ({len(args.predictions)} stack(s))")
    if args.figure:
        worst = sorted(
            (r for r in rows if r["category"] == "matched"), key=lambda r: float(r["jaccard"])
        )
        draw_worst(args.figure, data, results, frames, worst[:6])
        print(f"  the {min(6, len(worst))} worst matched cells: {args.figure}")
    best = (-1.0, None)
    for t, mt, e in itertools.product(*GRID.values()):
        if mt is not None and mt >= t:
            continue
        c = dict(threshold=t, mask_threshold=mt, expand=e, min_size=100, fill_holes=True)
        seg = seg_of([segment(p, **c) for p in probs], golds)
        best = max(best, (seg, c), key=lambda x: x[0])
    seg, c = best
    print(f"best cut of the grid on {seq} itself (a ceiling, not a choice): {seg:.4f} {c}")


if __name__ == "__main__":
    main()
