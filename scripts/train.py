#!/usr/bin/env python
"""Train a U-Net on the training part of one held-out split (paper section 3).

Resumes from ``--checkpoint`` when it exists (a retried or re-submitted job continues where
the last one stopped), or from the previous checkpoint kept beside it when that one does not
load (``checkpoint.prev.pt``); the log says which. Writes the final model, the loss log
(CSV) and the loss curve. Without ``--device`` and without CUDA, it first times one training
step on the CPU and stops with the estimate and the choices when the training would take more
than 12 hours (``unet_repro.cpu_check``).
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
from _common import run, setup_logging

from unet_repro.cpu_check import auto_device_check
from unet_repro.datasets import read_frames
from unet_repro.model import UNet
from unet_repro.provenance import THREADS_ENV
from unet_repro.train import (
    check_train_config,
    load_composites,
    load_samples,
    plot_loss,
    train,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prepared", type=Path, nargs="+", required=True, help="prepared .npz per sequence"
    )
    parser.add_argument(
        "--weights", type=Path, nargs="+", required=True, help="weight maps, same order"
    )
    parser.add_argument(
        "--targets", type=Path, nargs="+", required=True, help="targets, same order"
    )
    parser.add_argument(
        "--frames",
        type=Path,
        nargs="+",
        help="frame-roles CSV per sequence, same order (the weights rule's): the frame of"
        " each page of the weight maps",
    )
    parser.add_argument(
        "--pasted",
        type=Path,
        nargs="*",
        default=[],
        help="composites with pasted touching cells (.npz, the paste rule's), trained on too",
    )
    parser.add_argument("--indices", help="ISBI: training slice indices, e.g. 0-24")
    parser.add_argument("--model-config", default="{}", help="JSON: UNet arguments")
    parser.add_argument("--train-config", default="{}", help="JSON: training settings")
    parser.add_argument(
        "--device",
        default=None,
        help="cuda / cpu (default: cuda when available; without CUDA, stop with an estimate "
        "when the training would take more than 12 hours on the CPU)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument(
        "--configured-threads",
        type=int,
        default=int(os.environ.get(THREADS_ENV, 0)) or None,
        help="the configuration's thread count (resources.train.threads), to compare with the"
        f" one it runs with (default: ${THREADS_ENV}, which the workflow sets)",
    )
    parser.add_argument("--variant", default="full", help="configuration variant (provenance)")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out-model", type=Path, required=True)
    parser.add_argument("--out-log", type=Path, required=True, help="loss CSV")
    parser.add_argument("--out-plot", type=Path, required=True, help="loss curve PNG")
    args = parser.parse_args()
    log = setup_logging()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    log.info("torch runs with %d thread(s)", threads)
    if args.configured_threads and threads != args.configured_threads:
        log.warning(
            "training with %d torch thread(s) where the configuration asks for %d (Snakemake"
            " lowers a rule's threads to --cores): the numbers will differ in the last bits"
            " from a run with %d threads, and so will everything computed from this model",
            threads,
            args.configured_threads,
            args.configured_threads,
        )
    if not len(args.prepared) == len(args.weights) == len(args.targets):
        raise SystemExit("--prepared, --weights and --targets need the same number of files")
    if args.frames and len(args.frames) != len(args.prepared):
        raise SystemExit("--frames needs one CSV per --prepared file")
    samples = []
    for k, (prepared, weights, targets) in enumerate(
        zip(args.prepared, args.weights, args.targets, strict=True)
    ):
        frames = read_frames(args.frames[k]) if args.frames else None
        samples += load_samples(prepared, weights, targets, args.indices, frames)
    for path in args.pasted:
        composites = load_composites(path)
        log.info("%s: %d composites with pasted touching cells", path, len(composites))
        samples += composites
    model_cfg, train_cfg = json.loads(args.model_config), json.loads(args.train_config)
    seed = check_train_config(train_cfg)["seed"]
    # the initial weights from a generator seeded from the seed, not from torch's global one
    model = UNet(in_channels=1, n_classes=2, **model_cfg, seed=seed)
    log.info("%d training images; model %s; training %s", len(samples), model_cfg, train_cfg)
    if args.device is None:  # `device: auto`; an explicit device is never second-guessed
        stop = auto_device_check(model, check_train_config(train_cfg))
        if stop:
            print(f"error: {stop}", flush=True)  # stdout: Snakemake's terminal; stderr: the log
            raise SystemExit(f"error: {stop}")
    train(
        model,
        samples,
        train_cfg,
        out_model=args.out_model,
        checkpoint=args.checkpoint,
        log_csv=args.out_log,
        device=args.device,
        variant=args.variant,
    )
    plot_loss(args.out_log, args.out_plot)
    rows = np.loadtxt(args.out_log, delimiter=",", skiprows=1, ndmin=2)
    log.info(
        "done: %d iterations, last logged loss %.4f, %.0f s", rows[-1, 0], rows[-1, 1], rows[-1, 3]
    )


if __name__ == "__main__":
    run(main)
