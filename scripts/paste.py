#!/usr/bin/env python
"""Composite training frames with touching cells (beyond the paper; unet_repro.paste).

For every training frame of a CTC sequence (the frames the weights rule trains on, with the
same truth and ignore regions: the same arguments), one composite into which
``--touching-pastes`` cells cut from the training frames are pasted, each touching a cell of
the frame and covering a share U(``--touching-overlap``) of its own area of it (with
``--touching-roundness``, only cells at least that round are cut). Selection
frames and unused frames are never cut from nor pasted into. Its target and w(x) come from
its labels as the weights rule computes them. The composites are drawn
from ``numpy.random.default_rng([--seed, frame])``: the same for every training seed.

Writes one ``.npz``: ``images`` (float32, the prepared images' grey values), ``instances``
(int32, the pasted cells numbered after the frame's), ``targets`` (uint8), ``weights``
(float32), ``frames`` (the frame each composite was made from, in the order of the weights
rule's pages) and ``pasted`` (cells pasted into each).
"""

from pathlib import Path

import numpy as np
from _common import run, setup_logging
from weights import ctc_training_set, frame_weights, shrink_to_cores, truth_parser

from unet_repro.datasets import frames_of
from unet_repro.io import read_npz, write_npz
from unet_repro.paste import check_overlap, cut_cells, paste_touching
from unet_repro.weights import training_target


def main() -> None:
    parser = truth_parser(__doc__)
    parser.add_argument(
        "--touching-pastes", type=int, required=True, help="cells pasted into each composite"
    )
    parser.add_argument(
        "--touching-overlap",
        type=float,
        nargs=2,
        default=(0.0, 0.2),
        metavar=("LOW", "HIGH"),
        help="share of a copy's area over the cell it touches: U(LOW, HIGH) (default 0 0.2)",
    )
    parser.add_argument(
        "--touching-roundness",
        type=float,
        default=0.0,
        help="paste only cells of at least this roundness, 4 pi A / P^2 (default 0: any)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the composites' generator")
    parser.add_argument("--out", type=Path, required=True, help="composites (.npz)")
    args = parser.parse_args()
    log = setup_logging()
    if args.touching_pastes < 1:
        raise SystemExit(f"--touching-pastes must be >= 1, got {args.touching_pastes}")
    try:  # refused before anything is read or written
        overlap = check_overlap(args.touching_overlap)
    except ValueError as err:
        raise SystemExit(f"--touching-overlap: {err}") from None
    if not 0 <= args.touching_roundness < 1:
        raise SystemExit(f"--touching-roundness must be in [0, 1), got {args.touching_roundness}")
    data = read_npz(args.prepared)
    if "instances" not in data:
        raise SystemExit(f"{args.prepared}: not a CTC sequence (composites need instances)")
    instances, ignores, rows = ctc_training_set(data, args, log)
    frames = frames_of(rows)  # the frame of each training page, as train.py reads them
    if len(frames) != len(instances):
        raise SystemExit(
            f"{args.prepared}: {len(frames)} training frames for {len(instances)} pages"
        )
    images = data["images"]
    cells = []
    for t, inst, ig in zip(frames, instances, ignores, strict=True):
        cells += cut_cells(images[t], inst, ig, min_roundness=args.touching_roundness)
    if not cells:
        raise SystemExit(
            f"{args.prepared}: no cell of the training frames can be cut out"
            + (f" (roundness >= {args.touching_roundness})" if args.touching_roundness else "")
        )
    out = {k: [] for k in ("images", "instances", "targets", "weights", "frames", "pasted")}
    for t, inst, ig in zip(frames, instances, ignores, strict=True):
        rng = np.random.default_rng([args.seed, t])
        img, lab, ig, n = paste_touching(
            images[t],
            inst,
            cells,
            rng,
            n_cells=args.touching_pastes,
            ignore=ig,
            overlap=overlap,
        )
        if args.core_erosion:
            (lab,), (ig,) = shrink_to_cores(lab[None], [ig], args.core_erosion, log)
        out["images"].append(img.astype(np.float32))
        out["instances"].append(lab.astype(np.int32))
        out["targets"].append(training_target(lab))
        out["weights"].append(frame_weights(lab, ig, args))
        out["frames"].append(t)
        out["pasted"].append(n)
    write_npz(args.out, **{k: np.stack(v) for k, v in out.items()})
    log.info(
        "%s: one composite of each of %d training frames, %d cells pasted (%d to choose from)",
        args.prepared,
        len(frames),
        sum(out["pasted"]),
        len(cells),
    )


if __name__ == "__main__":
    run(main)
