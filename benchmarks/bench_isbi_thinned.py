"""Timing of V_Rand(thinned) and V_Info(thinned) on 30 slices of 512 x 512, with references.

Data (synthetic, seed 0): per slice a Voronoi tessellation of ``--cells`` random seeds with
1-pixel membranes as the gold standard; the proposal is the cell mask blurred (Gaussian,
sigma 1.5 px) plus Gaussian noise (sd 0.15), clipped to [0, 1], float32. ``--labels PATH`` uses
a real label stack (e.g. the ISBI 2012 ``train-labels.tif``) instead of the tessellations.

Compared in the same run:

* the Fiji script (``getMaximalVRandAfterThinning`` + ``getMaximalVInfoAfterThinning`` on 30
  slices of 512 x 512): the 137 s of one core quoted in issue 17 (not re-measured here);
* the brute-force references of ``tests/test_metrics_isbi_thinned.py`` (literal pure-Python
  watershed, explicit pair counting over all ordered pixel pairs, entropies of an explicit
  joint distribution) on a crop of one slice at all 11 thresholds, against this module on the
  same crop, then extrapolated to the full stack: watershed and entropies in proportion to the
  number of pixels, pair counting to the square of the number of gold-cell pixels.

Usage: ``python benchmarks/bench_isbi_thinned.py [--crop 64] [--cells 100] [--labels PATH]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from unet_repro.metrics import isbi_thinned

ROOT = Path(__file__).resolve().parents[1]
FIJI_SECONDS = 137.0  # both metrics, 30 x 512 x 512, one core (issue 17)


def load_references():
    """The brute-force reference functions of the test module."""
    path = ROOT / "tests" / "test_metrics_isbi_thinned.py"
    spec = importlib.util.spec_from_file_location("thinned_refs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def voronoi_stack(n: int, size: int, cells: int, seed: int = 0) -> np.ndarray:
    """Gold stack (n, size, size) uint8, 255 = cell, 0 = 1-pixel membrane."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    pts = np.stack([yy.ravel(), xx.ravel()], axis=1)
    out = np.empty((n, size, size), np.uint8)
    for z in range(n):
        seeds = rng.uniform(0, size, size=(cells, 2))
        lab = cKDTree(seeds).query(pts)[1].reshape(size, size)
        boundary = np.zeros((size, size), bool)
        boundary[:-1] |= lab[:-1] != lab[1:]
        boundary[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        out[z] = np.where(boundary, 0, 255)
    return out


def make_proposal(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = ndi.gaussian_filter((gt > 0).astype(np.float32), sigma=(0, 1.5, 1.5))
    return np.clip(p + rng.normal(0, 0.15, gt.shape), 0, 1).astype(np.float32)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def reference_crop(ref, gt: np.ndarray, p: np.ndarray) -> tuple[dict, dict]:
    """Brute-force scores of one slice at every threshold; seconds spent per part."""
    t = {"watershed": 0.0, "pairs": 0.0, "entropy": 0.0}
    per = {"vrand_thinned": {}, "vinfo_thinned": {}}
    for th in ref.java_thresholds():
        membrane = np.where(p.astype(np.float64) > th, 0, 255)
        prop, dt = timed(ref.reference_watershed, membrane)
        t["watershed"] += dt
        gid, qid = ref.segments_of(gt > 0, prop)
        (vr, _, _), dt = timed(ref.pair_count_vrand, gid, qid)
        t["pairs"] += dt
        (vi, _, _), dt = timed(ref.entropy_vinfo, gid, qid)
        t["entropy"] += dt
        per["vrand_thinned"][th], per["vinfo_thinned"][th] = vr, vi
    return per, t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=64, help="side of the brute-force crop")
    ap.add_argument("--cells", type=int, default=100, help="Voronoi cells per slice")
    ap.add_argument("--labels", type=Path, default=None, help="real label stack (tif)")
    args = ap.parse_args()

    if args.labels is not None:
        import tifffile

        gt = tifffile.imread(args.labels)
        source = str(args.labels)
    else:
        gt = voronoi_stack(30, 512, args.cells)
        source = f"Voronoi, {args.cells} cells per slice"
    p = make_proposal(gt)
    n, h, w = gt.shape
    ref = load_references()
    load0 = os.getloadavg()
    # compile the numba kernels outside the timings
    isbi_thinned.thinned_scores(gt[:1, :16, :16], p[:1, :16, :16])

    rows = []
    both, t_both = timed(isbi_thinned.thinned_scores, gt, p)
    scope = f"{n}x{h}x{w}, 11 thresholds"
    rows.append(("both metrics", scope, t_both, FIJI_SECONDS, "Fiji script (issue 17)", "-"))
    _, t_r = timed(isbi_thinned.vrand_thinned, gt, p)
    rows.append(("V_Rand only", scope, t_r, None, "-", "-"))
    _, t_i = timed(isbi_thinned.vinfo_thinned, gt, p)
    rows.append(("V_Info only", scope, t_i, None, "-", "-"))

    # brute force on a crop of slice 0, every threshold
    c = args.crop
    gc, pc = gt[0, :c, :c], p[0, :c, :c]
    fast, t_fast = timed(isbi_thinned.thinned_scores, gc, pc)
    refd, parts = reference_crop(ref, gc, pc)
    t_ref = sum(parts.values())
    diff = max(abs(fast[k].per_threshold[th] - refd[k][th]) for k in refd for th in refd[k])
    rows.append(
        (
            "crop check",
            f"1x{c}x{c} crop, 11 thresholds",
            t_fast,
            t_ref,
            "brute force",
            f"max |diff| {diff:.1e}",
        )
    )
    # extrapolation to the full stack
    n_crop = int(np.count_nonzero(gc))
    n_full = float(np.count_nonzero(gt)) / n
    pix = (h * w) / (c * c) * n
    t_extra = (parts["watershed"] + parts["entropy"]) * pix + parts["pairs"] * (
        (n_full / n_crop) ** 2 * n
    )
    rows.append(
        (
            "brute force",
            f"{scope} (extrapolated)",
            t_both,
            t_extra,
            "brute force, extrapolated",
            "-",
        )
    )

    load1 = os.getloadavg()
    print(f"data: {source}; proposal: blurred cell mask + noise (seed 0)")
    print(
        f"load average (1 min) before / after: {load0[0]:.2f} / {load1[0]:.2f} "
        f"on {os.cpu_count()} CPUs (other processes ran beside this benchmark)"
    )
    print()
    print(f"{'what':<13} {'scope':<40} {'this s':>8} {'ref s':>10} {'speed-up':>9}  reference")
    for what, sc, tf, tr, how, note in rows:
        ref_s = f"{tr:10.3f}" if tr is not None else f"{'-':>10}"
        speed = f"{tr / tf:8.0f}x" if tr is not None else f"{'-':>9}"
        extra = "" if note == "-" else f" ({note})"
        print(f"{what:<13} {sc:<40} {tf:8.3f} {ref_s} {speed}  {how}{extra}")
    print()
    print(
        "brute-force parts on the crop (s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
        + f"; gold-cell pixels: crop {n_crop}, full slice {n_full:.0f}"
    )
    print()
    print(f"{'metric':<14} {'best':>10} {'at th':>20}")
    for name, r in both.items():
        print(f"{name:<14} {r.best:10.6f} {r.best_threshold!r:>20}")


if __name__ == "__main__":
    main()
