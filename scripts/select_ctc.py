#!/usr/bin/env python
"""Choose how CTC instances are cut from P(cell), on the training sequence's annotated frames.

Tries every combination of threshold, minimum size, hole filling and label growth
(``unet_repro.postprocess``) and keeps the one with the best SEG on the annotated frames of
the split's training sequence(s). Only those frames are read: the held-out sequence never
influences the choice. Writes the chosen settings (JSON) and every candidate's SEG (CSV).
"""

import argparse
import csv
import json
from pathlib import Path

from _common import run, setup_logging

from unet_repro.io import DataError, atomic_path, read_npz, read_tiff, write_json
from unet_repro.postprocess import select_postprocessing
from unet_repro.provenance import score_provenance


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        required=True,
        help="P(cell) of the annotated frames of each training sequence (predict.py --annotated)",
    )
    parser.add_argument(
        "--prepared", type=Path, nargs="+", required=True, help="prepared .npz, same order"
    )
    parser.add_argument("--grid", default="{}", help="JSON: candidate values per setting")
    parser.add_argument("--variant", default="full", help="configuration variant (provenance)")
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--out-csv", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    if len(args.predictions) != len(args.prepared):
        raise SystemExit("--predictions and --prepared need the same number of files")
    probs, truths, sources = [], [], []
    for pred, prepared in zip(args.predictions, args.prepared, strict=True):
        p = read_tiff(pred)
        p = p[None] if p.ndim == 2 else p
        inst = read_npz(prepared)["instances"]
        if p.shape != inst.shape:
            raise DataError(
                f"{pred}: shape {p.shape} differs from the annotated frames {inst.shape} of "
                f"{prepared}"
            )
        probs += list(p)
        truths += list(inst)
        sources.append(str(prepared))
    best, rows = select_postprocessing(probs, truths, json.loads(args.grid))
    best["selected_on"] = sources
    best["frames"] = len(probs)
    best["provenance"] = score_provenance(args.predictions[0], args.variant)
    write_json(args.out_json, best)
    with atomic_path(args.out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("chosen on %d training frames: %s", len(probs), best)


if __name__ == "__main__":
    run(main)
