"""Can any cut split the merged cells? P(cell) on the contact of every merged gold pair.

For each pair of gold cells of a CTC sequence that one result object covers (``merged`` in a
``<seq>.objects.csv`` of the scores), this prints the mean probability on their contact (the
pixels within 2 px of both) and the lowest threshold t in 0.50, 0.51, ..., 0.99 at which the
cores of the two cells (eroded by 3 px) fall into different connected components of P > t
(``-`` when none does: no threshold cut separates them). Several prediction stacks can be
given, for the same pairs side by side. A diagnosis of a model, not a timing.

Usage::

    python benchmarks/contact_probability.py \\
        --objects results/scores/PhC-C2DH-U373/train01/seed0/02.objects.csv \\
        --gold ../shared/data/ctc/PhC-C2DH-U373/02_GT/SEG \\
        --predictions results/predictions/PhC-C2DH-U373/train01/seed0/02.tif [more.tif ...]
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

THRESHOLDS = np.round(np.arange(0.50, 1.0, 0.01), 2)


def merged_pairs(objects_csv: Path) -> list[tuple[int, int, int]]:
    """(frame, label a, label b) for each pair of gold cells that one result object covers."""
    groups = defaultdict(list)
    with open(objects_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["category"] == "merged":
                groups[(int(row["frame"]), int(row["match"]))].append(int(row["label"]))
    return [
        (frame, a, b)
        for (frame, _), labels in sorted(groups.items())
        for a, b in itertools.combinations(sorted(labels), 2)
    ]


def separating_threshold(prob: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
    """The lowest t of :data:`THRESHOLDS` with ``a`` and ``b`` in different components of
    ``prob > t`` (None if there is none)."""
    for t in THRESHOLDS:
        lab, _ = ndi.label(prob > t)
        if not (set(np.unique(lab[a])) - {0}) & (set(np.unique(lab[b])) - {0}):
            return float(t)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=Path, required=True, help="<seq>.objects.csv")
    parser.add_argument("--gold", type=Path, required=True, help="the sequence's GT/SEG folder")
    parser.add_argument("--predictions", type=Path, nargs="+", required=True, help="P stacks")
    args = parser.parse_args()
    pairs = merged_pairs(args.objects)
    if not pairs:
        raise SystemExit(f"{args.objects}: no merged gold cells")
    head = ["frame", "gold cells"]
    for path in args.predictions:
        parts = path.parts
        name = parts[parts.index("ablations") + 1] if "ablations" in parts else "full"
        head += [f"{name}: P on contact", "split at t >"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for frame, a, b in pairs:
        gold = tifffile.imread(args.gold / f"man_seg{frame:03d}.tif")
        core_a = ndi.binary_erosion(gold == a, iterations=3)
        core_b = ndi.binary_erosion(gold == b, iterations=3)
        contact = (ndi.distance_transform_edt(gold != a) <= 2) & (
            ndi.distance_transform_edt(gold != b) <= 2
        )
        cells = [str(frame), f"{a}, {b}"]
        for path in args.predictions:
            prob = tifffile.imread(path, key=frame)
            t = separating_threshold(prob, core_a, core_b)
            mean = f"{prob[contact].mean():.3f}" if contact.any() else "no contact"
            cells += [mean, "-" if t is None else f"{t:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
