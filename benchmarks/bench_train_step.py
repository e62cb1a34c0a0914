"""Where a CPU training iteration goes: tile sampling against the torch step.

One iteration of ``unet_repro.train.train`` samples an augmented tile (``TileStream``: elastic
deformation, any-angle rotation, cubic interpolation of the image, nearest of the labels,
linear of the weights) and then runs forward, weighted cross-entropy, backward and an Adam
step. This prints, on synthetic 520 x 696 frames (the size of a PhC-C2DH-U373 frame) with the
augmentation of ``config/quick.yaml``:

    tile sampling     ``TileStream[i]`` alone, ms per tile
    torch step        the step alone on one fixed tile, ms
    serial            sampling then step, as ``train`` runs on the CPU (``workers: 0``), ms
    prefetch thread   the next tiles sampled in a Python thread while the step runs, ms

``--layouts`` adds the step alone in three other CPU modes, each on a fresh network: NHWC
(``channels_last``, model and input), bfloat16 autocast of the forward pass, and both
together (``train.amp: true`` with ``channels_last: auto``, what ``amp: auto`` does on a CPU
with AMX-BF16 or AVX512-BF16; this shows whether they pay on this CPU).

Usage: python benchmarks/bench_train_step.py [--base-channels 16] [--iterations 12] [--layouts]
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from unet_repro.config import PAPER_TILE
from unet_repro.model import UNet, output_size
from unet_repro.provenance import cpu_model
from unet_repro.train import TileStream, weighted_cross_entropy

QUICK = Path(__file__).resolve().parents[1] / "config" / "quick.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--layouts", action="store_true", help="also time channels_last and bf16")
    args = ap.parse_args()
    n = args.iterations
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(4):
        img = rng.normal(size=(520, 696))
        weights = rng.random((520, 696)).astype(np.float32) + 1
        samples.append((img, (img > 0).astype(np.int64), weights))
    aug = yaml.safe_load(QUICK.read_text())["train"]["augment"]
    tiles = TileStream(samples, PAPER_TILE, output_size(PAPER_TILE), aug, 0, n)
    torch.manual_seed(0)
    model = UNet(base_channels=args.base_channels)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(x, y, w, net=model, optimizer=opt, nhwc=False, bf16=False):
        x = x[None].contiguous(memory_format=torch.channels_last) if nhwc else x[None]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = weighted_cross_entropy(logits, y[None], w[None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def per_iteration(run) -> float:
        t = time.perf_counter()
        run()
        return (time.perf_counter() - t) / n * 1000

    tiles[1]
    sampling = per_iteration(lambda: [tiles[i] for i in range(1, n + 1)])
    fixed = tiles[1]
    step(*fixed)
    torch_step = per_iteration(lambda: [step(*fixed) for _ in range(n)])
    serial = per_iteration(lambda: [step(*tiles[i]) for i in range(1, n + 1)])

    def prefetched() -> None:
        q: queue.Queue = queue.Queue(maxsize=2)
        producer = threading.Thread(
            target=lambda: [q.put(tiles[i]) for i in range(1, n + 1)], daemon=True
        )
        producer.start()
        for _ in range(n):
            step(*q.get())

    prefetch = per_iteration(prefetched)
    rows = [
        ("tile sampling", sampling),
        ("torch step", torch_step),
        ("serial (train, float32)", serial),
        ("prefetch thread", prefetch),
    ]
    if args.layouts:
        for name, nhwc, bf16 in [
            ("channels_last", True, False),
            ("bf16 autocast", False, True),
            ("bf16 autocast, channels_last", True, True),
        ]:
            net = UNet(base_channels=args.base_channels)
            if nhwc:
                net = net.to(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(net.parameters(), 1e-3)
            kw = {"net": net, "optimizer": optimizer, "nhwc": nhwc, "bf16": bf16}
            step(*fixed, **kw)
            rows.append(
                (
                    f"torch step, {name}",
                    per_iteration(lambda kw=kw: [step(*fixed, **kw) for _ in range(n)]),
                )
            )
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, "
        f"torch {torch.get_num_threads()} threads, base {args.base_channels}, {n} iterations"
    )
    print("| part | ms per iteration |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.0f} |")


if __name__ == "__main__":
    main()
