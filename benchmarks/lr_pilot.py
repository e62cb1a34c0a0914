"""Does the paper's optimiser learn on the paper's network? A learning-rate range test and a pilot.

Both run the paper network (``model`` of the configuration, 572 tiles, batch one tile) with the
training loop's own pieces: tiles from :class:`unet_repro.train.TileStream` (augmented, placed as
in training), the weighted soft-max cross-entropy of eq. (1) on the precomputed weight maps, and
the configured optimiser (SGD, momentum 0.99).

``range``
    Smith's learning-rate range test: iteration ``i`` of ``n`` uses
    ``lr_i = lr_min * (lr_max / lr_min) ** ((i - 1) / (n - 1))``; the loss is recorded against
    the rate (raw and exponentially smoothed, beta 0.9, bias-corrected). After the first 10
    iterations the run stops early when the smoothed loss exceeds 4 times its best value or is
    not finite (divergence).
``pilot``
    Training at the configured rate and schedule (``learning_rate`` of the training module, so
    a poly schedule over the configured iteration count, not over the pilot's) for ``--iterations``.

Both mark the **plateau**: the loss of the best constant prediction ``p(x) = p*`` over the
training images' weight maps, ``L* = -(W_1 log p* + W_0 log(1 - p*)) / N`` with ``W_k`` the sum of
w(x) over the pixels of class k, ``N`` the pixel count and ``p* = W_1 / (W_0 + W_1)``. A network
whose loss stays at ``L*`` has learned nothing but the class prior.

Inputs are the workflow's prepared images and weight maps (``results/prepared``,
``results/weights``); run the workflow's ``weights`` rule first (any configuration with the
paper's ``weights`` section: w0 = 10, sigma = 5).

Usage::

    python benchmarks/lr_pilot.py range --dataset isbi2012 \
        --out benchmarks/results/lr_range_isbi2012
    python benchmarks/lr_pilot.py pilot --dataset isbi2012 --lr 0.01 --iterations 300 \
        --out benchmarks/results/pilot_isbi2012

Writes ``<out>.csv`` (one row per iteration) and ``<out>.png``; prints a summary.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from unet_repro.datasets import read_frames
from unet_repro.model import UNet, output_size
from unet_repro.train import (
    TileStream,
    check_train_config,
    learning_rate,
    load_samples,
    make_optimizer,
    weighted_cross_entropy,
)

ROOT = Path(__file__).resolve().parents[1]
#: training data of the pilot: the split whose training part is used (ISBI fold4, HeLa train01)
TRAIN_PARTS = {
    "isbi2012": (["train"], "0-23"),
    "DIC-C2DH-HeLa": (["01"], None),
    "PhC-C2DH-U373": (["01"], None),
}


def load_training_set(results: Path, dataset: str) -> list[tuple[np.ndarray, ...]]:
    """(normalised image, target, weights) of the pilot's training images."""
    sequences, indices = TRAIN_PARTS[dataset]
    samples = []
    for seq in sequences:
        prepared = results / "prepared" / dataset / f"{seq}.npz"
        weights = results / "weights" / dataset / f"{seq}.weights.tif"
        targets = results / "weights" / dataset / f"{seq}.target.tif"
        roles = results / "weights" / dataset / f"{seq}.frames.csv"
        for path in (prepared, weights, targets, roles):
            if not path.exists():
                raise SystemExit(f"{path}: missing; run the workflow's weights rule first")
        samples += load_samples(prepared, weights, targets, indices, read_frames(roles))
    return samples


def plateau_loss(samples) -> float:
    """Weighted cross-entropy of the best constant prediction (see the module docstring)."""
    w1 = sum(float(w[t == 1].sum()) for _, t, w in samples)
    w0 = sum(float(w[t == 0].sum()) for _, t, w in samples)
    n = sum(t.size for _, t, _ in samples)
    p = w1 / (w0 + w1)
    return -(w1 * math.log(p) + w0 * math.log(1 - p)) / n


def run(model, samples, cfg, lr_of, n_iter, out_csv: Path, *, stop_diverged: bool) -> list[dict]:
    """Train ``n_iter`` iterations with rate ``lr_of(i)``; one CSV row per iteration."""
    in_size = int(cfg["input_size"])
    tiles = TileStream(
        samples, in_size, output_size(in_size, model.depth), cfg["augment"], cfg["seed"], n_iter
    )
    opt = make_optimizer(model, cfg)
    model.train()
    rows, smooth, best, t0 = [], 0.0, math.inf, time.perf_counter()
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "lr", "loss", "smoothed", "seconds"])
        for i in range(1, n_iter + 1):
            lr = lr_of(i)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y, w = tiles[i]
            loss = weighted_cross_entropy(model(x[None]), y[None], w[None])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()
            smooth = 0.9 * smooth + 0.1 * value
            smoothed = smooth / (1 - 0.9**i)
            row = dict(
                iteration=i, lr=lr, loss=value, smoothed=smoothed, seconds=time.perf_counter() - t0
            )
            rows.append(row)
            writer.writerow([i, repr(lr), repr(value), repr(smoothed), f"{row['seconds']:.1f}"])
            f.flush()
            print(f"{i:4d} lr {lr:.3g} loss {value:.4f} smoothed {smoothed:.4f}", flush=True)
            best = min(best, smoothed)
            if stop_diverged and i > 10 and (not math.isfinite(smoothed) or smoothed > 4 * best):
                print(f"stopped: smoothed loss {smoothed:.4g} > 4 x best {best:.4g}", flush=True)
                break
    return rows


def plot(rows, plateau: float, mode: str, title: str, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([r["lr" if mode == "range" else "iteration"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    smoothed = np.array([r["smoothed"] for r in rows])
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    ax.plot(x, loss, lw=0.6, alpha=0.5, label="loss per iteration")
    ax.plot(x, smoothed, lw=1.6, label="smoothed (EMA 0.9)")
    ax.axhline(plateau, color="k", ls="--", lw=1, label=f"constant prediction {plateau:.3f}")
    ax.set(
        xlabel="learning rate" if mode == "range" else "iteration",
        ylabel="weighted cross-entropy",
        xscale="log" if mode == "range" else "linear",
        ylim=(0, max(3 * plateau, float(np.nanpercentile(loss, 95)) * 1.1)),
        title=title,
    )
    ax.legend(frameon=False, fontsize=8)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["range", "pilot"])
    parser.add_argument("--dataset", choices=sorted(TRAIN_PARTS), required=True)
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--iterations", type=int, default=None, help="range 150, pilot 300")
    parser.add_argument("--lr-min", type=float, default=1e-5)
    parser.add_argument("--lr-max", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=None, help="pilot: rate (default: config)")
    parser.add_argument("--optimizer", default=None, help="override train.optimizer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, required=True, help="output prefix (.csv, .png)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = yaml.safe_load(args.configfile.read_text())
    cfg = check_train_config(config["train"])
    if args.optimizer:
        cfg["optimizer"] = args.optimizer
    if args.lr is not None:
        cfg["lr"] = args.lr
    n_iter = args.iterations or (150 if args.mode == "range" else 300)
    samples = load_training_set(args.results, args.dataset)
    plateau = plateau_loss(samples)
    torch.manual_seed(cfg["seed"])
    model = UNet(in_channels=1, n_classes=2, **config["model"])
    print(
        f"{args.mode} {args.dataset}: {len(samples)} images, model {config['model']}, "
        f"{cfg['optimizer']} momentum {cfg['momentum']}, tile {cfg['input_size']}, "
        f"plateau {plateau:.4f}, {torch.get_num_threads()} threads",
        flush=True,
    )
    if args.mode == "range":
        ratio = args.lr_max / args.lr_min

        def lr_of(i):
            return args.lr_min * ratio ** ((i - 1) / max(n_iter - 1, 1))

        title = f"LR range test, {args.dataset}, {cfg['optimizer']} m={cfg['momentum']}"
    else:

        def lr_of(i):
            return learning_rate(cfg, i)

        title = f"pilot, {args.dataset}, {cfg['optimizer']} lr {cfg['lr']:g} ({cfg['schedule']})"
    out_csv, out_png = args.out.with_suffix(".csv"), args.out.with_suffix(".png")
    rows = run(model, samples, cfg, lr_of, n_iter, out_csv, stop_diverged=args.mode == "range")
    plot(rows, plateau, args.mode, title, out_png)
    last = rows[-min(len(rows), 50) :]
    print(
        f"done: {len(rows)} iterations in {rows[-1]['seconds']:.0f} s; plateau {plateau:.4f}; "
        f"mean loss of the last {len(last)}: {np.mean([r['loss'] for r in last]):.4f}; "
        f"lowest smoothed {min(r['smoothed'] for r in rows):.4f} at lr "
        f"{min(rows, key=lambda r: r['smoothed'])['lr']:.3g}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
