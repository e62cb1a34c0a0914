#!/usr/bin/env python
"""Bring a dataset into the internal form (a checked ``.npz``).

ISBI: ``images`` (N,H,W) uint8 [+ ``labels`` (N,H,W) bool, True = cell].
CTC sequence: ``images`` (T,H,W), ``instances`` (K,H,W) uint16, ``frames`` (K,); with
``--partial`` also ``markers`` (GT/TRA), ``silver`` (ST/SEG) and ``has_silver`` of all T frames.
"""

import argparse
from pathlib import Path

from _common import run, setup_logging

from unet_repro.datasets import read_ctc_sequence, read_isbi
from unet_repro.io import write_npz


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["isbi", "ctc"])
    parser.add_argument("--volume", type=Path, help="ISBI volume TIFF")
    parser.add_argument("--labels", type=Path, help="ISBI labels TIFF (omit for the test volume)")
    parser.add_argument("--root", type=Path, help="unpacked CTC dataset folder")
    parser.add_argument("--sequence", help="CTC sequence, e.g. 01")
    parser.add_argument(
        "--partial",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CTC: also read the GT/TRA markers and the ST/SEG silver truth of every frame",
    )
    parser.add_argument(
        "--missing",
        choices=["error", "fallback"],
        default="error",
        help="CTC: a missing TRA or ST folder stops (error) or is skipped with a warning",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    if args.what == "isbi":
        if args.labels:
            images, labels = read_isbi(args.volume, args.labels)
            write_npz(args.out, images=images, labels=labels)
            log.info(
                "%s: %s slices, %.1f %% cell pixels", args.volume, len(images), 100 * labels.mean()
            )
        else:
            images = read_isbi(args.volume)
            write_npz(args.out, images=images)
            log.info("%s: %s slices", args.volume, len(images))
    else:
        seq = read_ctc_sequence(args.root, args.sequence, args.partial, args.missing)
        extra = {
            k: getattr(seq, k)
            for k in ("markers", "silver", "has_silver")
            if getattr(seq, k) is not None
        }
        write_npz(args.out, images=seq.images, instances=seq.instances, frames=seq.frames, **extra)
        log.info(
            "%s/%s: %d frames %s, annotated frames %s",
            args.root,
            args.sequence,
            len(seq.images),
            seq.images.shape[1:],
            seq.frames.tolist(),
        )


if __name__ == "__main__":
    run(main)
