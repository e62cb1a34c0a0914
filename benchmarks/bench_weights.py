"""Benchmark: fast U-Net weight maps vs the brute-force reference (one EDT per instance).

Rows: the 30 ISBI 2012 training slices (instances = 4-connected components of the labels) and
all annotated GT frames (``0x_GT/SEG``) of PhC-C2DH-U373 and DIC-C2DH-HeLa. Both methods
compute the full map (training target, w_c, border term) with the paper's w0 = 10,
sigma = 5 px; the fast one with its default truncation eps = 1e-6. The fast timing is the best
of ``--repeats`` runs after a JIT warm-up; the brute force runs once.

Usage: ``python benchmarks/bench_weights.py [--data /work/shared/data] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile

from unet_repro.weights import isbi_instances, weight_map, weight_map_bruteforce

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_sets(data: Path, sequences: list[str]) -> dict[str, list[np.ndarray]]:
    """The instance images of every benchmark row."""
    labels = tifffile.imread(data / "isbi2012" / "train-labels.tif")
    sets = {"ISBI 2012 train (512x512)": [isbi_instances(s) for s in labels]}
    for name in ("PhC-C2DH-U373", "DIC-C2DH-HeLa"):
        files = []
        for seq in sequences:
            files += sorted((data / "ctc" / name / f"{seq}_GT" / "SEG").glob("man_seg*.tif"))
        frames = [tifffile.imread(f) for f in files]
        if frames:
            h, w = frames[0].shape
            sets[f"{name} GT {'+'.join(sequences)} ({h}x{w})"] = frames
    return sets


def timed(fn, images, repeats: int) -> tuple[float, list[np.ndarray]]:
    best, out = np.inf, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [fn(im) for im in images]
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the fast method")
    parser.add_argument("--sequences", default="01,02", help="CTC sequences, comma separated")
    args = parser.parse_args()

    sets = load_sets(args.data, args.sequences.split(","))
    t0 = time.perf_counter()
    weight_map(next(iter(sets.values()))[0])  # JIT compile (or load the numba cache)
    warmup = time.perf_counter() - t0

    header = (
        f"{'data set':<40} {'n img':>5} {'cells/img':>9} {'brute s':>8} {'fast s':>8} "
        f"{'fast ms/img':>11} {'speed-up':>8} {'max |diff|':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, images in sets.items():
        cells = np.mean([np.unique(im).size - 1 for im in images])
        t_fast, fast = timed(weight_map, images, args.repeats)
        t_brute, brute = timed(weight_map_bruteforce, images, 1)
        diff = max(float(np.abs(f - b).max()) for f, b in zip(fast, brute, strict=True))
        print(
            f"{name:<40} {len(images):>5} {cells:>9.1f} {t_brute:>8.2f} {t_fast:>8.3f} "
            f"{1e3 * t_fast / len(images):>11.2f} {t_brute / t_fast:>7.1f}x {diff:>10.2e}"
        )
    print(f"\nfirst call (numba compile or cache load): {warmup:.2f} s; w0 = 10, sigma = 5 px")


if __name__ == "__main__":
    main()
