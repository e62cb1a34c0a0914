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
   run's (red, the chosen cut on the averaged maps) and the silver truth's (cyan) outlines;
4. with ``--temporal``, the SEG of the chosen cut when every frame's objects are split by the
   previous frame's (:func:`split_by_previous`, frame by frame in time order over the whole
   stack): how many merged cells the sequence's own time course would separate.

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
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

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


def split_by_previous(
    labels: np.ndarray, previous: np.ndarray, min_share: float = 0.3, min_size: int = 100
) -> np.ndarray:
    """Split the objects of frame t that hold two or more objects of frame t - 1.

    An object :math:`o` of ``labels`` is split when at least two instances :math:`q` of
    ``previous`` (each of at least ``min_size`` pixels) have at least ``min_share`` of their
    pixels inside it: its pixels are divided among the markers :math:`q \\cap o`, eroded by
    2 px, by a watershed on :math:`-d` (:math:`d`: the distance to the outside of :math:`o`).
    A split that would leave a part under ``min_size`` pixels is not made. A tracking-based
    repair of merges, for the diagnosis only: the workflow does not use it.
    """
    lab = np.asarray(labels)
    prev = np.asarray(previous)
    if not lab.any() or not prev.any():
        return lab.copy()
    n_lab, n_prev = int(lab.max()) + 1, int(prev.max()) + 1
    pair = lab.astype(np.int64) * n_prev + prev
    overlap = np.bincount(pair.ravel(), minlength=n_lab * n_prev).reshape(n_lab, n_prev)
    size = np.bincount(prev.ravel(), minlength=n_prev)
    held = (overlap >= min_share * size) & (size >= min_size)
    held[0, :] = held[:, 0] = False  # background on either side holds nothing
    out = lab.astype(np.int64)
    nxt = n_lab
    for o in np.flatnonzero(held.sum(axis=1) >= 2):
        inside = lab == o
        markers = np.zeros(lab.shape, dtype=np.int64)
        for i, q in enumerate(np.flatnonzero(held[o]), start=1):
            markers[ndi.binary_erosion(inside & (prev == q), iterations=2)] = i
        if len(np.unique(markers[markers > 0])) < 2:
            continue
        parts = watershed(-ndi.distance_transform_edt(inside), markers, mask=inside)
        sizes = np.bincount(parts[inside], minlength=int(markers.max()) + 1)[1:]
        if (sizes[sizes > 0] < min_size).any():
            continue
        for i in np.flatnonzero(sizes)[1:] + 1:
            out[parts == i] = nxt
            nxt += 1
    return relabel_sequential(out)[0].astype(np.uint16)


def covering(labels: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The mask of the label covering most of ``cell`` (empty when that is background)."""
    values, counts = np.unique(labels[cell], return_counts=True)
    top = values[np.argmax(counts)]
    return labels == top if top else np.zeros_like(cell)


def draw_worst(path: Path, data, results, frames, rows) -> None:
    """Image crops of the given gold cells with the gold, run's and silver outlines."""
    import matplotlib.pyplot as plt

    from unet_repro.figures import save  # the Agg backend; written atomically

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
    save(fig, path, dpi=80)


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
    parser.add_argument(
        "--temporal", action="store_true", help="also split each frame by the previous one"
    )
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
    stack = np.mean([tifffile.imread(p) for p in args.predictions], axis=0)  # every frame
    probs = stack[frames]
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
    if args.temporal:
        previous, split = None, []
        for p in stack:
            lab = segment(p, **cut)
            previous = lab if previous is None else split_by_previous(lab, previous)
            split.append(previous)
        objects = [
            o for t, g in zip(frames, golds, strict=True) for o in object_errors(g, split[t])
        ]
        r = seg_losses(objects)
        print(
            f"  each frame split by the previous one (--temporal, {len(stack)} frames in time"
            f" order): SEG {r['seg']:.4f}, merged {r['merged']} of {r['objects']} cells"
        )
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
