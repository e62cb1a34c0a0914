#!/usr/bin/env python
"""Choose how CTC instances are cut from P(cell), on frames of the training sequence(s).

Tries every combination of threshold, seeded growth (keeping unseeded components or not),
minimum size, split at necks, hole filling and label growth (``unet_repro.postprocess``) and
keeps the one with the best SEG on

* ``--on unseen`` (default): the selection frames of the split's training sequence(s), frames
  without gold truth that no configuration trains on (``--frames``: the weights rule's
  frame-roles CSV, role ``select``), scored against their silver truth (ST/SEG);
* ``--on annotated``: the annotated frames (those with gold truth), against the gold truth;
  the network trained on them.

The held-out sequence never influences the choice. Writes the chosen settings with the
frames and reference they were chosen on and what SEG loses there to outlines, merged and
missed objects (JSON), and every candidate's SEG (CSV).
"""

import argparse
import csv
import json
from pathlib import Path

from _common import run, setup_logging

from unet_repro.datasets import read_frames
from unet_repro.io import (
    DataError,
    atomic_path,
    read_npz,
    read_tiff,
    tiff_description,
    write_json,
)
from unet_repro.metrics.ctc import object_errors, seg_losses
from unet_repro.postprocess import KEYS, segment, select_postprocessing
from unet_repro.provenance import score_provenance

REFERENCE = {
    "unseen": "silver truth (ST/SEG) of frames not trained on",
    "annotated": "gold truth (GT/SEG) of the trained-on frames",
}


def selection_frames(frames_csv, prediction, data, prepared) -> list[int]:
    """The selection frames of a sequence, checked against the prediction and the data."""
    frames = read_frames(frames_csv, "select")
    if not frames:
        raise DataError(f"{frames_csv}: no selection frame (role select) to choose the cut on")
    written = (json.loads(tiff_description(prediction) or "{}") or {}).get("frames")
    if written is not None and written != frames:
        raise DataError(
            f"{prediction}: holds frames {written}, {frames_csv} names {frames} for selection"
        )
    if "has_silver" not in data or not data["has_silver"][frames].all():
        raise DataError(f"{prepared}: no silver truth for the selection frames {frames}")
    gold = set(int(t) for t in data["frames"])
    if gold & set(frames):
        raise DataError(
            f"{frames_csv}: selection frames {sorted(gold & set(frames))} have gold truth"
        )
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        nargs="+",
        required=True,
        help="P(cell) of each training sequence's frames (predict.py --frames-csv, or"
        " --annotated with --on annotated)",
    )
    parser.add_argument(
        "--on",
        choices=["unseen", "annotated"],
        default="unseen",
        help="selection frames against their silver truth, or annotated frames against gold",
    )
    parser.add_argument(
        "--frames", type=Path, nargs="+", help="--on unseen: frame-roles CSV per sequence"
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
    if args.on == "unseen" and len(args.frames or []) != len(args.prepared):
        raise SystemExit("--on unseen needs one --frames CSV per --prepared file")
    probs, truths, chosen_on = [], [], []
    for k, (pred, prepared) in enumerate(zip(args.predictions, args.prepared, strict=True)):
        p = read_tiff(pred)
        p = p[None] if p.ndim == 2 else p
        data = read_npz(prepared)
        if args.on == "unseen":
            frames = selection_frames(args.frames[k], pred, data, prepared)
            truth = data["silver"][frames]
        else:
            frames, truth = [int(t) for t in data["frames"]], data["instances"]
        if p.shape != truth.shape:
            raise DataError(
                f"{pred}: shape {p.shape} differs from the {len(frames)} frames {truth.shape}"
                f" of {prepared} it should hold"
            )
        probs += list(p)
        truths += list(truth)
        chosen_on.append({"prepared": str(prepared), "frames": frames})
    best, rows = select_postprocessing(probs, truths, json.loads(args.grid))
    settings = {k: best[k] for k in KEYS}
    objects = [
        o
        for p, t in zip(probs, truths, strict=True)
        for o in object_errors(t, segment(p, **settings))
    ]
    best["objects"] = {k: v for k, v in seg_losses(objects).items() if k != "seg"}
    best["selected_on"] = chosen_on
    best["reference"] = REFERENCE[args.on]
    best["frames"] = len(probs)
    best["provenance"] = score_provenance(args.predictions[0], args.variant)
    write_json(args.out_json, best)
    with atomic_path(args.out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info("chosen on %d frames (%s): %s", len(probs), best["reference"], best)


if __name__ == "__main__":
    run(main)
