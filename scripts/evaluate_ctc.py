#!/usr/bin/env python
"""Segment a held-out CTC sequence from P(cell); score it with CTC SEG, DET and OP_CSB.

Instances = connected components of ``P(cell) > threshold`` (4-connected; components below
``--min-size`` pixels removed, split at necks with ``--split-depth``, grown by a watershed
into ``P > --mask-threshold`` whose unseeded components are kept with ``--keep-unseeded``,
holes filled with ``--fill-holes``, labels grown by
``--expand`` pixels;
``unet_repro.postprocess.segment``), with the settings given or read from
``--postprocess`` (chosen on the training sequence by select_ctc.py). Writes the CTC result
folder ``<seq>_RES/maskNNN.tif`` (uint16, every frame, labels unique over the sequence) with
its ``res_track.txt`` (every object a track of one frame: a segmentation-only result), the SEG
over all annotated frames, DET over all frames' tracking markers and OP_CSB = (SEG + DET) / 2,
computed by our implementation and, when the package is installed, by the official
``py-ctcmetrics`` as a cross-check (which also validates the folder). With ``--out-objects``
also every gold object with its Jaccard and category (matched, merged, missed;
``unet_repro.metrics.ctc.object_errors``); the JSON gets what SEG loses to each category.
"""

import argparse
import csv
import json
from pathlib import Path

from _common import run, setup_logging

from unet_repro.io import DataError, atomic_path, read_tiff, write_json
from unet_repro.metrics.ctc import (
    evaluate_sequence_det,
    evaluate_sequence_objects,
    evaluate_sequence_seg,
    op_csb,
    seg_losses,
    write_ctc_result,
)
from unet_repro.postprocess import KEYS, segment
from unet_repro.provenance import score_provenance


def official_scores(res: Path, gt: Path, log, det: bool) -> dict[str, float | None]:
    """SEG (and DET, OP_CSB, Valid) from py-ctcmetrics; None values when it is not installed
    or fails."""
    metrics = ["Valid", "SEG", "DET"] if det else ["SEG"]
    empty = dict.fromkeys(["SEG", "DET", "OP_CSB", "Valid"])
    try:
        from ctc_metrics import evaluate_sequence
    except ImportError:
        return empty
    try:
        found = evaluate_sequence(str(res), str(gt), metrics=metrics, threads=1)
    except Exception as err:  # a cross-check only: report, never fail the rule on it
        log.warning("py-ctcmetrics failed: %s", err)
        return empty
    return {k: (None if found.get(k) is None else float(found[k])) for k in empty}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prediction", type=Path, required=True, help="P(cell) TIFF stack, every frame"
    )
    parser.add_argument("--gt", type=Path, required=True, help="the sequence's <seq>_GT folder")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--min-size", type=int, default=0)
    parser.add_argument("--expand", type=int, default=0, help="grow labels by this many pixels")
    parser.add_argument("--fill-holes", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        help="grow the instances by a watershed on -P into P > this (below --threshold)",
    )
    parser.add_argument(
        "--keep-unseeded",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="with --mask-threshold: keep the mask's components without a seed as instances",
    )
    parser.add_argument(
        "--split-depth",
        type=float,
        default=None,
        help="split the instances at necks: h-maxima of this depth (px) of their distance map",
    )
    parser.add_argument(
        "--training-data",
        default="GT",
        help="the CTC training data the model learnt from (GT, ST, GT+ST), for the table",
    )
    parser.add_argument(
        "--postprocess",
        type=Path,
        help="JSON of select_ctc.py: its settings replace the seven above",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--sequence", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--seed", type=int, default=None, help="the model's training seed")
    parser.add_argument("--config-name", required=True)
    parser.add_argument("--variant", default="full", help="configuration variant (provenance)")
    parser.add_argument(
        "--crosscheck",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also compute SEG with py-ctcmetrics (skipped above --crosscheck-max-objects)",
    )
    parser.add_argument("--crosscheck-max-objects", type=int, default=1000)
    parser.add_argument("--out-res", type=Path, required=True, help="result folder <seq>_RES")
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument(
        "--out-objects", type=Path, help="CSV: every gold object's Jaccard and category"
    )
    args = parser.parse_args()
    log = setup_logging()
    probs = read_tiff(args.prediction)
    if probs.ndim != 3:
        raise DataError(f"{args.prediction}: expected a (T, H, W) stack, got {probs.shape}")
    settings = {k: getattr(args, k) for k in KEYS}
    chosen = {}
    if args.postprocess:
        chosen = json.loads(args.postprocess.read_text())
        chosen.setdefault("mask_threshold", None)  # files written before seeded growth
        chosen.setdefault("split_depth", None)  # and before the split at necks
        chosen.setdefault("keep_unseeded", False)  # and before unseeded components
        missing = sorted(set(settings) - set(chosen))
        if missing:
            raise DataError(f"{args.postprocess}: lacks {', '.join(missing)}")
        settings = {k: chosen[k] for k in settings}
    log.info("post-processing %s", settings)
    masks = [segment(p, **settings) for p in probs]
    complete = write_ctc_result(args.out_res, masks)
    if not complete:
        log.warning(
            "%s: more than 65535 objects in the sequence: the masks keep per-frame labels and"
            " there is no res_track.txt, so the folder is not a valid CTC result (SEG and DET"
            " are still computed)",
            args.out_res,
        )
    seg = evaluate_sequence_seg(args.out_res, args.gt)
    det = evaluate_sequence_det(args.out_res, args.gt)
    objects = evaluate_sequence_objects(args.out_res, args.gt)
    losses = seg_losses(objects)
    log.info("SEG lost to %s", {k: v for k, v in losses.items() if k.startswith("loss")})
    if args.out_objects:
        with atomic_path(args.out_objects) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=["frame", "label", "match", "jaccard", "category"]
            )
            writer.writeheader()
            writer.writerows(objects)
    most = max(int(m.max()) for m in masks)
    official = dict.fromkeys(["SEG", "DET", "OP_CSB", "Valid"])
    # py-ctcmetrics' matching assumes label 0 is present in every result frame: in a frame
    # without background it drops the first object and shifts the others, so its SEG is wrong
    full = [t for t, m in enumerate(masks) if (m > 0).all()]
    if args.crosscheck and full:
        log.warning(
            "py-ctcmetrics cross-check skipped: frame(s) %s have no background pixel, which"
            " py-ctcmetrics mis-matches",
            full[:5],
        )
    elif args.crosscheck and most <= args.crosscheck_max_objects:
        official = official_scores(args.out_res, args.gt, log, det=complete)
    elif args.crosscheck:  # py-ctcmetrics slows to a crawl on thousands of (noise) objects
        log.warning("py-ctcmetrics cross-check skipped: up to %d objects in a frame", most)
    log.info(
        "%s %s: SEG %.4f, DET %.4f, OP_CSB %.4f (py-ctcmetrics: %s)",
        args.dataset,
        args.sequence,
        seg,
        det,
        op_csb(seg, det),
        official,
    )
    write_json(
        args.out_json,
        {
            "dataset": args.dataset,
            "sequence": args.sequence,
            "split": args.split,
            "seed": args.seed,
            "config": args.config_name,
            "seg": seg,
            "seg_py_ctcmetrics": official["SEG"],
            "det": det,
            "det_py_ctcmetrics": official["DET"],
            "op_csb": op_csb(seg, det),
            "valid_py_ctcmetrics": official["Valid"],
            "ctc_result_complete": complete,
            **settings,
            "postprocess": "selected" if args.postprocess else "fixed",
            "selected_on": chosen.get("selected_on"),
            "selection_reference": chosen.get("reference"),
            "training_data": args.training_data,
            "seg_selection": chosen.get("seg"),
            "objects": {k: v for k, v in losses.items() if k != "seg"},
            "objects_selection": chosen.get("objects"),
            "frames": len(masks),
            "provenance": score_provenance(args.prediction, args.variant),
        },
    )


if __name__ == "__main__":
    run(main)
