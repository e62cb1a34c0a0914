"""Inference tile size: the time of one whole-image prediction against the 572 tile.

The overlap-tile prediction is seamless for every valid tile size (``tests/test_inference.py``),
so the tile size is a speed setting only (``predict.tile_size``, per dataset). A 572 tile
predicts a 388 output tile (stride 384): a 512 x 512 image (ISBI, HeLa) takes 2 x 2 tiles, a
696 x 520 image (U373) 2 x 2 as well; one tile of 700 (output 516, stride 512) or 892 (output
708, stride 704) covers such an image whole. This prints, per image shape and tile size, the
tiles per image, the input pixels computed, the seconds per image (min over ``--reps``) and
the largest difference of P(cell) to the 572 tiling (rounding only: the same forward pass
over other tile borders).

With ``--model results/models/.../model.pt`` the network is a trained one (its base width and
depth), so the differences are those of real probability maps; without, a seeded random one.

Usage: python benchmarks/bench_tiles.py [--base 16 | --model PATH] [--reps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np
import torch

from unet_repro.config import PAPER_TILE
from unet_repro.inference import predict_tiled, tile_stride
from unet_repro.model import UNet
from unet_repro.train import load_model

SHAPES = {"512 x 512 (ISBI, HeLa)": (512, 512), "520 x 696 (U373)": (520, 696)}
TILES = (PAPER_TILE, 636, 700, 828, 892)  # the reference first


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=16, help="base channels (quick.yaml: 16)")
    parser.add_argument("--model", help="a trained model.pt instead of a random network")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = (load_model(args.model) if args.model else UNet(base_channels=args.base)).eval()
    args.base = net.config["base_channels"]
    weights = args.model or "random weights"
    print(f"tile size of the whole-image prediction; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} threads, "
          f"base {args.base}, batch {args.batch_size}, {weights}")  # fmt: skip
    print(_load() + " (timings are only comparable on an otherwise idle machine)")
    head = (
        f"{'image':<24} {'tile':>5} {'tiles':>6} {'Mpx in':>7} {'s/image':>8} {'x 572':>6} "
        f"{'max |dP|':>9}"
    )
    print(head + "\n" + "-" * len(head))
    for name, (h, w) in SHAPES.items():
        image = np.random.default_rng(0).standard_normal((h, w)).astype(np.float32)
        ref_p = ref_t = None
        for tile in TILES:
            s = tile_stride(tile)
            n_tiles = math.ceil(h / s) * math.ceil(w / s)
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                p = predict_tiled(net, image, tile, batch_size=args.batch_size)[1]
                times.append(time.perf_counter() - t0)
            t = min(times)
            if tile == PAPER_TILE:
                ref_p, ref_t = p, t
            diff = float(np.abs(p - ref_p).max())
            print(f"{name:<24} {tile:>5} {n_tiles:>6} {n_tiles * tile**2 / 1e6:>7.2f} "
                  f"{t:>7.2f}s {ref_t / t:>5.2f}x {diff:>9.1e}")  # fmt: skip
    print(_load())


if __name__ == "__main__":
    main()
