"""Cost of the U-Net: FLOPs, training-step time, whole-image prediction time, peak memory.

Compares the paper's network (64 base channels) with the narrower networks of the CPU
configuration (16 and 8 base channels) in the same run, on this machine's CPU and, when
available, on CUDA. Every measurement runs in a fresh process, so the peak resident memory
(CPU) or peak allocated memory (CUDA) belongs to that measurement alone.

Columns
    params       trainable parameters (millions)
    GF@572       forward GFLOP for one 572 x 572 tile (multiply-add = 2 FLOP)
    GF@<t>       forward GFLOP for one tile of the CPU configuration's size
    step@572     one SGD step (forward, weighted cross-entropy, backward, momentum update) on
                 one 572 tile, seconds; GF/s = 3 x forward FLOPs / time
    step@<t>     the same on one smaller tile
    pred         512 x 512 image, 572 tiles (2 x 2), no averaging, seconds
    pred x7      the same averaged over 7 transforms; "~" marks 7 x pred (not run, see --full)
    peak MB      peak memory of the step@572 process (CPU: resident set incl. ~300 MB of
                 Python + torch; CUDA: max allocated by torch)
    x paper      step@572 time of the paper's network / this row's

Usage: python benchmarks/bench_unet.py [--reps 1] [--threads N] [--full] [--cuda-only]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from unet_repro.inference import TRANSFORMS, predict_averaged
from unet_repro.model import UNet, count_parameters, forward_flops

PAPER_TILE = 572
NETS = [("paper (base 64)", 64), ("CPU net (base 16)", 16), ("CPU net (base 8)", 8)]
SEVEN = list(TRANSFORMS)[:7]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _train_step_job(base: int, tile: int, reps: int, device: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = UNet(base_channels=base).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
    out = net.output_size(tile)
    x = torch.randn(1, 1, tile, tile, device=device)
    target = torch.randint(0, 2, (1, out, out), device=device)
    weight = torch.rand(1, out, out, device=device) * 10 + 1

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = (weight * F.cross_entropy(net(x), target, reduction="none")).mean()
        loss.backward()
        opt.step()

    step()  # warm-up: allocations, kernel selection
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"time": min(times), "peak": _peak_mb(device)}


def _predict_job(base: int, n_transforms: int, reps: int, device: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = UNet(base_channels=base).to(device)
    image = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    names = SEVEN[:n_transforms]
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        predict_averaged(net, image, names, tile_size=PAPER_TILE, batch_size=4, device=device)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"time": min(times), "peak": _peak_mb(device)}


def _run(pool_ctx, fn, *args) -> dict:
    with pool_ctx.Pool(1) as pool:  # a fresh process per measurement: its own peak memory
        return pool.apply(fn, args)


def bench_device(device: str, args: argparse.Namespace) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows = []
    for name, base in NETS:
        paper = base == 64
        reps = args.reps if paper else max(args.reps, 3)
        cfg = {"base_channels": base}
        row = {
            "name": name,
            "params": count_parameters(UNet(**cfg)) / 1e6,
            "gf572": forward_flops(cfg, PAPER_TILE) / 1e9,
            "gf_tile": forward_flops(cfg, args.tile) / 1e9,
        }
        t0 = time.perf_counter()
        s572 = _run(ctx, _train_step_job, base, PAPER_TILE, reps, device, args.threads)
        row["step572"], row["peak"] = s572["time"], s572["peak"]
        row["step_tile"] = _run(ctx, _train_step_job, base, args.tile, reps, device, args.threads)[
            "time"
        ]
        pred_reps = 1 if paper else reps
        row["pred"] = _run(ctx, _predict_job, base, 1, pred_reps, device, args.threads)["time"]
        if paper and not args.full and not device.startswith("cuda"):
            row["pred7"], row["pred7_est"] = 7 * row["pred"], True
        else:
            row["pred7"] = _run(ctx, _predict_job, base, 7, 1, device, args.threads)["time"]
            row["pred7_est"] = False
        row["wall"] = time.perf_counter() - t0
        rows.append(row)
        print(f"  [{device}] {name}: done in {row['wall']:.0f} s", flush=True)
    return rows


def print_table(device: str, rows: list[dict], tile: int) -> None:
    ref = rows[0]["step572"]
    head = (
        f"{'network':<18} {'params':>7} {'GF@572':>7} {f'GF@{tile}':>7} {'step@572':>9} "
        f"{'GF/s':>6} {f'step@{tile}':>9} {'pred':>7} {'pred x7':>8} {'peak MB':>8} {'x paper':>8}"
    )
    print(f"\n{device}")
    print(head)
    print("-" * len(head))
    for r in rows:
        gfs = 3 * r["gf572"] / r["step572"]
        p7 = ("~" if r["pred7_est"] else "") + f"{r['pred7']:.2f}"
        print(
            f"{r['name']:<18} {r['params']:>6.2f}M {r['gf572']:>7.1f} {r['gf_tile']:>7.2f} "
            f"{r['step572']:>8.2f}s {gfs:>6.1f} {r['step_tile']:>8.3f}s {r['pred']:>6.2f}s "
            f"{p7:>7}s {r['peak']:>8.0f} {ref / r['step572']:>7.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1, help="timed repetitions (min is shown)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tile", type=int, default=252, help="the CPU configuration's tile")
    parser.add_argument("--full", action="store_true", help="also run the paper net's x7 on CPU")
    parser.add_argument("--cuda-only", action="store_true")
    args = parser.parse_args()

    devices = [] if args.cuda_only else ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    cpu = platform.processor() or platform.machine()
    print(
        f"U-Net cost; torch {torch.__version__}, {cpu}, {args.threads} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA")
    )
    print(
        f"Reference: the paper's network, forward {forward_flops({}, PAPER_TILE) / 1e9:.1f} GFLOP"
        f" per 572 tile, {count_parameters(UNet()):,} parameters (Fig. 1)."
    )
    print(f"{_load()} (timings are only comparable on an otherwise idle machine)")
    t0 = time.perf_counter()
    for device in devices:
        rows = bench_device(device, args)
        print_table(device, rows, args.tile)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; {_load()}")


if __name__ == "__main__":
    main()
