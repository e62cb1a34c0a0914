"""How often do cells touch? Per dataset, sequence and truth, the cells near another cell.

The separation-border term of w(x) teaches the network to split touching cells only where
the training frames show touching cells. This prints, for the gold (GT/SEG) and silver
(ST/SEG) truth of both sequences of each CTC dataset, how many cells come within 2, 5 and
10 px of another cell (``unet_repro.paste.cell_gaps``: pixel centre to pixel centre; 1 =
4-adjacent) and the four smallest distinct gaps. A fact about the data, not a timing.

Usage: ``python benchmarks/touching_cells.py [--data ../shared/data] [--silver-every 1]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from unet_repro.paste import cell_gaps

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
LIMITS = (2, 5, 10)


def gaps_of(folder: Path, every: int = 1) -> tuple[int, np.ndarray]:
    """Frames read and every cell's gap, over the masks of one SEG folder."""
    masks = sorted(folder.glob("man_seg*.tif"))[::every]
    gaps = [g for m in masks for g in cell_gaps(tifffile.imread(m)).values()]
    return len(masks), np.asarray(gaps, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="the mirror (shared/data)")
    parser.add_argument(
        "--silver-every", type=int, default=1, help="read every k-th silver mask (speed)"
    )
    args = parser.parse_args()
    head = ["dataset", "seq", "truth", "frames", "cells", *(f"gap <= {d} px" for d in LIMITS)]
    head.append("smallest gaps (px)")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for ds in DATASETS:
        for seq in ("01", "02"):
            for truth, every in (("GT", 1), ("ST", args.silver_every)):
                folder = args.data / "ctc" / ds / f"{seq}_{truth}" / "SEG"
                if not folder.is_dir():
                    raise SystemExit(f"{folder}: not found (--data)")
                frames, gaps = gaps_of(folder, every)
                near = " | ".join(f"{int((gaps <= d).sum())}" for d in LIMITS)
                least = ", ".join(f"{g:.2f}" for g in np.unique(gaps[np.isfinite(gaps)])[:4])
                print(f"| {ds} | {seq} | {truth} | {frames} | {len(gaps)} | {near} | {least} |")


if __name__ == "__main__":
    main()
