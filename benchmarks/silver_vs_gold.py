"""How good a reference is the silver truth? Its SEG against the gold truth, by kind of error.

The CTC cut is chosen on frames the network never saw, against their silver truth (ST/SEG):
this prints, per dataset and sequence, the SEG of the silver truth against the gold truth
(GT/SEG) of the gold frames, and what it loses to outlines, merged and missed objects
(``unet_repro.metrics.ctc.object_errors``). A quality check of the reference, not a timing.

Usage: ``python benchmarks/silver_vs_gold.py [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import tifffile

from unet_repro.metrics.ctc import object_errors, seg_losses

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")


def silver_against_gold(root: Path, seq: str) -> dict:
    """:func:`seg_losses` of ``<seq>_ST/SEG`` against ``<seq>_GT/SEG`` over the gold frames
    that have a silver mask."""
    objects, frames = [], 0
    for gold in sorted((root / f"{seq}_GT" / "SEG").glob("man_seg*.tif")):
        silver = root / f"{seq}_ST" / "SEG" / gold.name
        if not re.fullmatch(r"man_seg\d+\.tif", gold.name) or not silver.is_file():
            continue
        objects += object_errors(tifffile.imread(gold), tifffile.imread(silver))
        frames += 1
    return {"frames": frames, **seg_losses(objects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA, help="the mirror (shared/data)")
    args = parser.parse_args()
    head = ["dataset", "seq", "frames", "objects", "SEG", "outlines", "merged", "missed"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for ds in DATASETS:
        for seq in ("01", "02"):
            root = args.data / "ctc" / ds
            if not (root / f"{seq}_ST" / "SEG").is_dir():
                raise SystemExit(f"{root / f'{seq}_ST' / 'SEG'}: not found (--data)")
            r = silver_against_gold(root, seq)
            print(
                f"| {ds} | {seq} | {r['frames']} | {r['objects']} | {r['seg']:.4f}"
                f" | {r['loss_matched']:.4f} | {r['loss_merged']:.4f} ({r['merged']})"
                f" | {r['loss_missed']:.4f} ({r['missed']}) |"
            )


if __name__ == "__main__":
    main()
