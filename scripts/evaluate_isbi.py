#!/usr/bin/env python
"""Score P(cell) maps with the ISBI 2012 challenge metrics.

The paper's (2015) measures, warping, Rand and pixel error (lower is better), and the measures
today's leaderboard ranks by, V_Rand and V_Info after border thinning (higher is better;
``unet_repro.metrics.isbi_thinned``). Per-threshold values go to a CSV (the challenge's
11/10-value threshold loops); the best value of each metric and its threshold to a JSON file.
"""

import argparse
import time
from pathlib import Path

from _common import run, setup_logging

from unet_repro.datasets import parse_indices
from unet_repro.io import DataError, read_npz, read_tiff, write_json, write_text
from unet_repro.metrics.isbi import isbi_scores
from unet_repro.metrics.isbi_thinned import thinned_scores
from unet_repro.provenance import score_provenance

METRICS = ("warping_error", "rand_error", "pixel_error", "vrand_thinned", "vinfo_thinned")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prepared", type=Path, required=True, help="prepared ISBI train.npz (labels)"
    )
    parser.add_argument("--indices", required=True, help="the held-out slices, e.g. 25-29")
    parser.add_argument(
        "--proposal", type=Path, required=True, help="P(cell) TIFF stack of those slices"
    )
    parser.add_argument("--radius", type=int, default=20, help="warping-error radius")
    parser.add_argument("--split", required=True)
    parser.add_argument("--seed", type=int, default=None, help="the model's training seed")
    parser.add_argument("--config-name", required=True)
    parser.add_argument("--variant", default="full", help="configuration variant (provenance)")
    parser.add_argument("--out-csv", type=Path, required=True)
    parser.add_argument("--out-json", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    labels = read_npz(args.prepared)["labels"]
    indices = parse_indices(args.indices, len(labels))
    gt, proposal = labels[indices], read_tiff(args.proposal)
    proposal = proposal[None] if proposal.ndim == 2 else proposal
    if proposal.shape != gt.shape:
        raise DataError(
            f"{args.proposal}: shape {proposal.shape} does not match the labels {gt.shape}"
        )
    t0 = time.perf_counter()
    scores = isbi_scores(gt, proposal, radius=args.radius)
    scores.update(thinned_scores(gt, proposal))
    log.info("scored %d slices in %.1f s", len(gt), time.perf_counter() - t0)
    ths = sorted(set().union(*(scores[m].per_threshold for m in METRICS)))
    lines = ["threshold," + ",".join(METRICS)]
    for th in ths:
        values = (scores[m].per_threshold.get(th) for m in METRICS)
        lines.append(f"{th!r}," + ",".join("" if v is None else repr(v) for v in values))
    write_text(args.out_csv, "\n".join(lines) + "\n")
    summary = {
        "dataset": "isbi2012",
        "split": args.split,
        "seed": args.seed,
        "config": args.config_name,
        "heldout_slices": indices,
        "provenance": score_provenance(args.proposal, args.variant),
    }
    for m in METRICS:
        summary[m] = scores[m].best
        summary[f"{m}_threshold"] = scores[m].best_threshold
        log.info("%s = %.6g at threshold %.1f", m, scores[m].best, scores[m].best_threshold)
    write_json(args.out_json, summary)


if __name__ == "__main__":
    run(main)
