"""Timing of the ISBI 2012 metrics on the 30 training slices, with un-optimised references.

Ground truth: ``shared/data/isbi2012/train-labels.tif`` (30 x 512 x 512). Proposal: the labels
blurred (Gaussian, sigma = 2 px) plus Gaussian noise (sd 0.1, seed 0), clipped to [0, 1].

References computed in the same run, on a subset:

* Rand: explicit O(n²) pair counting with numpy (boolean pair matrices) on a crop, all 11
  thresholds, against :func:`rand_counts_slice` on the same crop;
* warping: the same sweep and classification kernels run un-jitted (pure Python, ``py_func``)
  on one slice at all 10 thresholds, against the compiled kernels.

Usage: ``python benchmarks/bench_metrics.py [--crop 64]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from unet_repro.metrics import isbi

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012" / "train-labels.tif"


def make_proposal(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = ndi.gaussian_filter((gt > 0).astype(np.float32), sigma=(0, 2, 2))
    return np.clip(p + rng.normal(0, 0.1, gt.shape), 0, 1).astype(np.float32)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def pair_count_reference(cell: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    """Rand TP/FP/FN by explicit comparison of all ordered pairs of GT-foreground pixels."""
    g = ndi.label(cell)[0][cell]
    q = ndi.label(pred)[0][cell]
    n = g.size
    same_g = g[:, None] == g[None, :]
    same_q = (q[:, None] == q[None, :]) & (q[:, None] > 0) | np.eye(n, dtype=bool)
    tp = int(np.count_nonzero(same_g & same_q))
    return tp, int(np.count_nonzero(same_q)) - tp, int(np.count_nonzero(same_g)) - tp


def rand_fast_counts(cell, pred):
    gl, ng = ndi.label(cell)
    pl, npr = ndi.label(pred)
    return isbi.rand_counts_slice(gl, pl, ng, npr)


def warp_python(cell: np.ndarray, p: np.ndarray, th: float, radius: int = 20):
    """``warp_slice`` + ``classify_mismatches`` with the numba kernels run as plain Python."""
    h, w = cell.shape
    p64 = p.astype(np.float64)
    xs, ys = np.nonzero((cell != (p64 > th)).T)
    order = np.argsort(-np.abs(p64[ys, xs] - th).astype(np.float32), kind="stable")
    ys, xs = ys[order], xs[order]
    lab = np.zeros((h + 2, w + 2), np.uint8)
    lab[1:-1, 1:-1] = cell
    left = isbi._sweep_until_stable.py_func(
        lab.reshape(-1), (ys + 1) * (w + 2) + xs + 1, w + 2, isbi.SIMPLE_POINT_LUT
    )
    warped = lab[1:-1, 1:-1].copy()
    comp = ndi.label(warped)[0].astype(np.int64)
    cls = isbi._classify.py_func(warped, comp, left // (w + 2) - 1, left % (w + 2) - 1, radius)
    return warped, cls


def warp_fast(cell, p, th, radius=20):
    warped, ys, xs = isbi.warp_slice(cell, p, th)
    return warped, isbi.classify_mismatches(warped, ys, xs, radius)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=64, help="side of the Rand reference crop")
    args = ap.parse_args()

    gt = tifffile.imread(DATA)
    p = make_proposal(gt)
    cell = gt > 0
    n, h, w = gt.shape
    # compile the numba kernels outside the timings
    isbi.warping_error(gt[:1, :32, :32], p[:1, :32, :32])

    rows = []
    res = {}
    for name, fn in [
        ("pixel_error", isbi.pixel_error),
        ("rand_error", isbi.rand_error),
        ("warping_error", isbi.warping_error),
    ]:
        res[name], t = timed(fn, gt, p)
        nth = len(res[name].per_threshold)
        rows.append((name, f"{n}x{h}x{w}, {nth} thresholds", t, None, "-", "-"))

    # Rand: pair-counting reference on a crop, every threshold
    c = args.crop
    sub_cell, sub_p = cell[0, :c, :c], p[0, :c, :c].astype(np.float64)
    ths = isbi.thresholds(0.0, 1.0, 0.1)
    fast, t_fast = timed(lambda: [rand_fast_counts(sub_cell, sub_p > th) for th in ths])
    ref, t_ref = timed(lambda: [pair_count_reference(sub_cell, sub_p > th) for th in ths])
    rows.append(
        (
            "Rand TP/FP/FN",
            f"{c}x{c} crop, 11 thresholds",
            t_fast,
            t_ref,
            "O(n^2) pairs",
            fast == ref,
        )
    )

    # warping: un-jitted kernels on one slice, every threshold
    wths = isbi.thresholds(0.0, 0.9, 0.1)
    fast, t_fast = timed(lambda: [warp_fast(cell[0], p[0], th) for th in wths])
    ref, t_ref = timed(lambda: [warp_python(cell[0], p[0], th) for th in wths])
    same = all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        for a, b in zip(fast, ref, strict=True)
    )
    rows.append(
        ("warp + classify", f"1x{h}x{w}, 10 thresholds", t_fast, t_ref, "same, un-jitted", same)
    )

    print(f"{'what':<16} {'scope':<28} {'fast s':>8} {'ref s':>9} {'speed-up':>9}  reference")
    for what, scope, tf, tr, how, ok in rows:
        ref_s = f"{tr:9.3f}" if tr is not None else f"{'-':>9}"
        speed = f"{tr / tf:8.0f}x" if tr is not None else f"{'-':>9}"
        print(f"{what:<16} {scope:<28} {tf:8.3f} {ref_s} {speed}  {how} (agree: {ok})")
    print()
    print(f"{'metric':<14} {'best':>10} {'at th':>20}")
    for name, r in res.items():
        print(f"{name:<14} {r.best:10.6f} {r.best_threshold!r:>20}")


if __name__ == "__main__":
    main()
