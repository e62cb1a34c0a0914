#!/usr/bin/env python
"""Predict P(cell) with overlap-tile inference, averaged over transformed inputs.

Writes a float32 TIFF stack (one page per image; 1 = cell / non-membrane, 0 = background /
membrane), zlib-compressed; with --uncompressed (the ISBI test volume), the challenge's
submission format: an uncompressed 32-bit float stack.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.datasets import parse_indices, read_frames
from unet_repro.inference import predict_volume, resolve_transforms
from unet_repro.io import read_npz, write_tiff
from unet_repro.precision import describe as describe_precision
from unet_repro.precision import parse as parse_precision
from unet_repro.precision import resolve as resolve_precision
from unet_repro.provenance import record
from unet_repro.train import load_model, normalize


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--prepared", type=Path, required=True, help="prepared .npz (all its images)"
    )
    parser.add_argument("--indices", help="only these images (ISBI held-out slices), e.g. 25-29")
    parser.add_argument(
        "--annotated",
        action="store_true",
        help="CTC: only the annotated frames (those with gold truth), in their order",
    )
    parser.add_argument(
        "--frames-csv",
        type=Path,
        help="CTC: only the frames of --role in this frame-roles CSV (the weights rule's)",
    )
    parser.add_argument("--role", default="select", help="the role --frames-csv picks")
    parser.add_argument("--tile-size", type=int, required=True, help="network input tile size")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument(
        "--amp",
        type=parse_precision,
        default=False,
        help="bfloat16 autocast: true, false (default) or auto (where the hardware has it)",
    )
    parser.add_argument(
        "--channels-last",
        type=parse_precision,
        default="auto",
        help="NHWC model and tiles: true, false or auto (default: CUDA, and CPU bfloat16)",
    )
    parser.add_argument("--transforms", nargs="*", default=["identity"], help="test-time averaging")
    parser.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CUDA only: deterministic kernels, no autotuning (default: on)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", default="full", help="configuration variant (provenance)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--uncompressed",
        action="store_true",
        help="write uncompressed pages (the ISBI submission format) instead of zlib",
    )
    args = parser.parse_args()
    log = setup_logging()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        from unet_repro.train import configure_cuda

        configure_cuda(args.deterministic)
    model = load_model(args.model, map_location=device)
    data = read_npz(args.prepared)
    images = data["images"]
    if args.annotated:
        if "frames" not in data:
            raise SystemExit(f"--annotated: {args.prepared} has no annotated CTC frames")
        images = images[data["frames"]]
    frames = None  # the frame of each page, where it is a subset (the selection frames)
    if args.frames_csv:
        frames = read_frames(args.frames_csv, args.role)
        if not frames:
            raise SystemExit(f"{args.frames_csv}: no frame has the role {args.role!r}")
        if max(frames) >= len(images):
            raise SystemExit(f"{args.frames_csv}: frame {max(frames)} is not in {args.prepared}")
        images = images[frames]
        log.info("frames %s (role %s in %s)", frames, args.role, args.frames_csv)
    if args.indices:
        images = images[parse_indices(args.indices, len(images))]
    names = args.transforms[0] if len(args.transforms) == 1 else args.transforms  # a set name
    transforms = resolve_transforms(names)
    amp, nhwc = resolve_precision(args.amp, args.channels_last, device)
    log.info(
        "%d images %s, tile %d, batch %d, transforms %s, %s, %s",
        len(images),
        images.shape[1:],
        args.tile_size,
        args.batch_size,
        transforms,
        device,
        describe_precision(amp, nhwc),
    )
    t0 = time.perf_counter()
    probs = predict_volume(
        model,
        np.stack([normalize(i) for i in images]),
        args.tile_size,
        transforms,
        args.batch_size,
        device,
        progress=lambda done, total: log.info("image %d/%d", done, total),
        amp=amp,
        channels_last=nhwc,
    )
    # what made these numbers, in the TIFF itself (ImageDescription): the model's training
    # record (with its seed) and this prediction's
    trained = dict(model.provenance or {})
    provenance = {
        "seed": trained.pop("seed", None),
        "train": trained or None,
        "predict": {
            **record(args.variant, device, torch.get_num_threads()),
            "precision": describe_precision(amp, nhwc),
        },
    }
    write_tiff(
        args.out,
        probs.astype(np.float32),
        None if args.uncompressed else "zlib",
        description=json.dumps({"provenance": provenance, "frames": frames}, sort_keys=True),
    )
    log.info("wrote %s in %.1f s", args.out, time.perf_counter() - t0)


if __name__ == "__main__":
    run(main)
