"""How a CTC truth draws a configuration: crops of named cells with the truth's outlines.

A fact about the data, not a timing. Each cell is named ``SEQ:FRAME:LABEL:TRUTH`` (``TRUTH``
``GT`` for the gold ``<seq>_GT/SEG``, ``ST`` for the silver ``<seq>_ST/SEG``); each panel shows
the frame around that cell (``--margin`` px beyond its bounding box) with the named cell's
outline in green and every other instance of the same truth mask in magenta, so a reader sees
whether the truth draws, say, a bright rounded body and the flat region beside it as one cell
or as two. Prints each cell's area and the labels of the truth instances its crop holds.

Usage::

    python benchmarks/truth_crops.py --dataset PhC-C2DH-U373 --out rounded.png \\
        01:1:4:GT 01:59:6:GT 02:41:7:GT 02:59:6:GT [--data ../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import tifffile
from skimage.segmentation import find_boundaries

from unet_repro.figures import save  # the Agg backend; written atomically

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Cell(NamedTuple):
    seq: str
    frame: int
    label: int
    truth: str


def parse_cell(text: str) -> Cell:
    """``"01:59:4:GT"`` -> Cell("01", 59, 4, "GT"); a clear error for anything else."""
    parts = text.split(":")
    if len(parts) != 4 or parts[3] not in ("GT", "ST"):
        raise ValueError(f"{text!r}: expected SEQ:FRAME:LABEL:TRUTH with TRUTH GT or ST")
    try:
        frame, label = int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"{text!r}: FRAME and LABEL must be integers") from None
    if frame < 0 or label < 1:
        raise ValueError(f"{text!r}: FRAME must be >= 0 and LABEL >= 1")
    return Cell(parts[0], frame, label, parts[3])


def crop_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by ``margin`` px on every side, inside the image."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the mask is empty")
    h, w = mask.shape
    return (
        slice(max(int(rows.min()) - margin, 0), min(int(rows.max()) + margin + 1, h)),
        slice(max(int(cols.min()) - margin, 0), min(int(cols.max()) + margin + 1, w)),
    )


def overlay(image: np.ndarray, truth: np.ndarray, label: int) -> np.ndarray:
    """RGB of ``image`` (min-max scaled) with ``label``'s outline green, the others' magenta."""
    img = np.asarray(image, dtype=np.float64)
    span = np.ptp(img)
    grey = (img - img.min()) / span if span > 0 else np.zeros_like(img)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    others = find_boundaries(np.where(truth == label, 0, truth), mode="inner")
    rgb[others] = (1.0, 0.0, 1.0)
    rgb[find_boundaries(truth == label, mode="inner")] = (0.0, 1.0, 0.0)
    return rgb


def read_cell(data: Path, dataset: str, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """The frame and its truth mask of ``cell``, or SystemExit naming the missing file."""
    root = data / "ctc" / dataset
    paths = (
        root / cell.seq / f"t{cell.frame:03d}.tif",
        root / f"{cell.seq}_{cell.truth}" / "SEG" / f"man_seg{cell.frame:03d}.tif",
    )
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path}: not found (--data, --dataset, or no {cell.truth} frame)")
    image, truth = (tifffile.imread(p) for p in paths)
    if not (truth == cell.label).any():
        raise SystemExit(f"{paths[1]}: holds no instance {cell.label}")
    return image, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cells", nargs="+", type=parse_cell, help="SEQ:FRAME:LABEL:TRUTH")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", type=Path, default=DATA, help="the mirror (shared/data)")
    parser.add_argument("--margin", type=int, default=25)
    parser.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    args = parser.parse_args()

    fig, axes = plt.subplots(1, len(args.cells), figsize=(3.2 * len(args.cells), 3.4))
    for ax, cell in zip(np.atleast_1d(axes), args.cells, strict=True):
        image, truth = read_cell(args.data, args.dataset, cell)
        box = crop_box(truth == cell.label, args.margin)
        inside = sorted(int(v) for v in np.unique(truth[box]) if v)
        area = int((truth == cell.label).sum())
        print(f"{cell.seq} t{cell.frame:03d} {cell.truth} cell {cell.label}: {area} px; "
              f"instances in the crop: {inside}")  # fmt: skip
        ax.imshow(overlay(image[box], truth[box], cell.label))
        ax.set_title(f"{cell.seq} t{cell.frame:03d} {cell.truth}, cell {cell.label}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    save(fig, args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
