"""Small synthetic datasets in both official layouts, for tests and smoke runs.

The images are made so that the segmentation task is learnable: touching, convex cells
(a Voronoi partition restricted to discs) with dark membranes (ISBI-like) or bright
cells on a textured background (CTC-like).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .io import write_text, write_tiff

MAN_TRACK = "man_track.txt"


def touching_cells(shape, n_cells, rng, radius=(8, 14), fill=False) -> np.ndarray:
    """Instance labels of ``n_cells`` touching cells (uint16, 0 = background).

    Seeds are random; each pixel belongs to its nearest seed when it lies within that
    seed's radius (``fill=True``: always, giving a space-filling tessellation). Neighbouring
    cells therefore share borders, as in the paper's figure 3.
    """
    h, w = shape
    seeds = rng.uniform([0, 0], [h, w], size=(n_cells, 2))
    radii = rng.uniform(*radius, size=n_cells)
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(yy[..., None] - seeds[:, 0], xx[..., None] - seeds[:, 1])
    nearest = d.argmin(-1)
    inside = fill | (d.min(-1) <= radii[nearest])
    labels = np.where(inside, nearest + 1, 0).astype(np.uint16)
    # keep one connected component per label (a Voronoi cell clipped by a disc is connected)
    return labels


def render_membranes(cells: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """ISBI-like image (uint8) and binary labels (255 = cell, 0 = membrane) of a tessellation."""
    grad = ndi.morphological_gradient(cells.astype(np.int32), size=3) > 0
    labels = np.where(grad, 0, 255).astype(np.uint8)
    image = np.where(grad, 60.0, 170.0) + rng.normal(0, 12, cells.shape)
    image = ndi.gaussian_filter(image, 1.0)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def render_cells(cells: np.ndarray, rng) -> np.ndarray:
    """CTC-like frame (uint8): bright cells with dark rims on a noisy background."""
    edge = ndi.morphological_gradient(cells.astype(np.int32), size=3) > 0
    image = np.where(cells > 0, 150.0, 70.0)
    image = np.where(edge & (cells > 0), 90.0, image) + rng.normal(0, 10, cells.shape)
    image = ndi.gaussian_filter(image, 1.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_isbi(folder: Path, rng, n_slices=6, shape=(96, 96)) -> list[Path]:
    """Write ``train-volume.tif``, ``train-labels.tif`` and ``test-volume.tif``."""
    folder = Path(folder)
    volume, labels, test = [], [], []
    for _ in range(n_slices):
        img, lab = render_membranes(touching_cells(shape, 20, rng, fill=True), rng)
        volume.append(img)
        labels.append(lab)
        test.append(render_membranes(touching_cells(shape, 20, rng, fill=True), rng)[0])
    paths = []
    for name, stack in [
        ("train-volume.tif", volume),
        ("train-labels.tif", labels),
        ("test-volume.tif", test),
    ]:
        write_tiff(folder / name, np.stack(stack), compression=None)
        paths.append(folder / name)
    return paths


def write_ctc(folder: Path, rng, n_frames=6, shape=(80, 104), annotated=(1, 4)) -> list[Path]:
    """Write a CTC training set (sequences 01 and 02) in the official layout.

    Frames ``tNNN.tif``, gold segmentation ``<seq>_GT/SEG/man_segNNN.tif`` for the
    ``annotated`` frames (the last of them partially: one cell left out), tracking markers
    ``<seq>_GT/TRA/man_trackNNN.tif`` and silver truth ``<seq>_ST/SEG/man_segNNN.tif`` for every
    frame, with ``man_track.txt``; LZW-compressed like the official archives.
    """
    folder = Path(folder)
    paths = []
    for seq in ("01", "02"):
        n_cells = int(rng.integers(4, 7))
        for t in range(n_frames):
            cells = touching_cells(shape, n_cells, rng, radius=(9, 15))
            frame = render_cells(cells, rng)
            paths.append(folder / seq / f"t{t:03d}.tif")
            write_tiff(paths[-1], frame, compression="lzw")
            markers = np.where(ndi.binary_erosion(cells > 0, iterations=2), cells, 0)
            paths.append(folder / f"{seq}_GT" / "TRA" / f"man_track{t:03d}.tif")
            write_tiff(paths[-1], markers.astype(np.uint16), compression="lzw")
            paths.append(folder / f"{seq}_ST" / "SEG" / f"man_seg{t:03d}.tif")
            write_tiff(paths[-1], cells, compression="lzw")  # silver truth: every cell
            if t in annotated:
                gold = cells
                if t == annotated[-1]:  # partially annotated: the last cell left out
                    gold = np.where(cells == cells.max(), 0, cells).astype(cells.dtype)
                paths.append(folder / f"{seq}_GT" / "SEG" / f"man_seg{t:03d}.tif")
                write_tiff(paths[-1], gold, compression="lzw")
        track = "".join(f"{i} 0 {n_frames - 1} 0\n" for i in range(1, n_cells + 1))
        paths.append(folder / f"{seq}_GT" / "TRA" / MAN_TRACK)
        write_text(paths[-1], track)
    return paths


def make_mirror(out: str | Path, seed: int = 0, ctc_names=("PhC-C2DH-U373", "DIC-C2DH-HeLa")):
    """Write a complete synthetic mirror (both layouts) with a ``SHA256SUMS`` file."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    paths = write_isbi(out / "isbi2012", rng)
    for name in ctc_names:
        paths += write_ctc(out / "ctc" / name, rng)
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}\n"
        for p in sorted(paths)
    ]
    write_text(out / "SHA256SUMS", "".join(lines))
    return out
