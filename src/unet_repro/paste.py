"""Touching cells made by copy and paste: training frames that show what a sequence lacks.

Beyond the paper. The separation-border term of w(x) (paper eq. 2) teaches the network to
split touching cells only where the training frames hold touching cells. PhC-C2DH-U373's
sequence 01 holds none: no two cells of its gold or silver truth come within 5 px of each
other, while in sequence 02 16 of the 110 gold cells touch another one (``python
benchmarks/touching_cells.py``). A *composite* is a training frame into which cells of the
training frames are pasted so that each touches (or slightly covers) a cell of the frame, as
a rounded cell sitting on a flat one does; its training target and w(x) are computed from its
labels exactly like those of a real frame (:func:`unet_repro.weights.training_target`,
:func:`unet_repro.weights.weight_map`), so the border term applies between the pasted cell
and the one it touches.

Conventions:

* A *cell* (:func:`cut_cells`) is an instance of a training frame that lies inside the image
  (``margin`` px from every edge) and outside its ignore region, cut out with the pixels within
  ``margin`` px of it (its phase-contrast halo), as ``(patch, mask)``.
* :func:`paste_touching` places each copy (rotated by a random multiple of 90 degrees and
  possibly flipped) on a line from the centroid of a random cell of the frame, at the first
  distance (1-px steps outwards) where the copy covers at most a random fraction
  ``U(*overlap)`` of its own area of that cell (``(0, 0.2)``: it meets the cell's rim;
  ``(0.3, 0.7)``: it sits on the cell), keeping at least 2 px from every other
  cell and ignore region, and leaving the touched cell at least half of its pixels. The copy
  covers what lies under it (its label overwrites); the image is blended as
  ``alpha * copy + (1 - alpha) * frame`` with ``alpha`` 1 on the copy and the pixels next to
  it, falling linearly to 0 over ``blend`` px of its halo, so the halo carries over without a
  seam.
* Everything is drawn from the ``numpy.random.Generator`` passed in: the same generator state
  gives the same composite.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import perimeter

__all__ = ["cell_gaps", "check_overlap", "cut_cells", "paste_touching", "roundness"]

_DISK1 = ndi.generate_binary_structure(2, 1)


def cell_gaps(instances: np.ndarray) -> dict[int, float]:
    """Distance from every instance to the nearest other one: how close cells come.

    The gap of instance :math:`l` is the smallest Euclidean distance between the centres of a
    pixel of :math:`l` and a pixel of another instance (1 for 4-adjacent instances,
    :math:`\\sqrt 2` for diagonal contact); ``inf`` when it is alone.

    Returns
    -------
    dict
        label -> gap in px.
    """
    lab = np.asarray(instances)
    labels = [int(v) for v in np.unique(lab) if v]
    out = {}
    for label in labels:
        others = (lab != 0) & (lab != label)
        if not others.any():
            out[label] = float("inf")
            continue
        out[label] = float(ndi.distance_transform_edt(~others)[lab == label].min())
    return out


def cut_cells(
    image: np.ndarray,
    instances: np.ndarray,
    ignore: np.ndarray | None = None,
    *,
    margin: int = 4,
    min_area: int = 100,
    min_roundness: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cells of one frame that can be pasted elsewhere, as ``(patch, mask)`` pairs.

    Parameters
    ----------
    image : (H, W) array
        The frame.
    instances : (H, W) integer array
        Its instance labels, 0 = background.
    ignore : (H, W) bool array, optional
        Its ignore region (unannotated cells): cells within ``margin`` px of it are left out.
    margin : int
        Pixels kept around each cell (its halo); cells closer than this to the image edge, to
        another cell or to the ignore region are left out (their patch would show them).
    min_area : int
        Smaller instances are left out.
    min_roundness : float
        Instances whose :func:`roundness` is below this are left out (0: none). A U373 cell
        rounded up for division, a bright body with little flat region around it, scores
        0.8 or more.

    Returns
    -------
    list of (patch float64 (h, w), mask bool (h, w))
        In label order.
    """
    lab = np.asarray(instances)
    if lab.shape != np.shape(image) or lab.ndim != 2:
        raise ValueError(f"image {np.shape(image)} and instances {lab.shape} must be equal 2-D")
    out = []
    for label, box in enumerate(ndi.find_objects(lab), start=1):
        if box is None:
            continue
        y0, y1 = box[0].start - margin, box[0].stop + margin
        x0, x1 = box[1].start - margin, box[1].stop + margin
        if y0 < 0 or x0 < 0 or y1 > lab.shape[0] or x1 > lab.shape[1]:
            continue
        win = lab[y0:y1, x0:x1]
        mask = win == label
        if mask.sum() < min_area or (min_roundness and roundness(mask) < min_roundness):
            continue
        near = ndi.binary_dilation(mask, _DISK1, iterations=margin)
        others = (win != 0) & ~mask
        if ignore is not None:
            others |= np.asarray(ignore, dtype=bool)[y0:y1, x0:x1]
        if np.any(near & others):
            continue
        out.append((np.asarray(image, dtype=np.float64)[y0:y1, x0:x1].copy(), mask))
    return out


def roundness(mask: np.ndarray) -> float:
    """:math:`4 \\pi A / P^2` of a mask: 1 for a disk, smaller the less compact the shape.

    :math:`A` is the pixel count, :math:`P` the perimeter as ``skimage.measure.perimeter``
    measures it (4-connected boundary pixels, weighted by their neighbourhood; a digital disk
    of radius 20 px scores 0.91). 0 for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    p = float(perimeter(m))
    return 4 * np.pi * float(m.sum()) / p**2 if p > 0 else 0.0


def check_overlap(overlap: Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` of the share a copy may cover, checked: 0 <= low <= high < 1."""
    low, high = (float(v) for v in overlap)
    if not 0 <= low <= high < 1:
        raise ValueError(f"overlap must be (low, high) with 0 <= low <= high < 1, got {overlap}")
    return low, high


def paste_touching(
    image: np.ndarray,
    instances: np.ndarray,
    cells: Sequence[tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    *,
    n_cells: int = 2,
    ignore: np.ndarray | None = None,
    overlap: tuple[float, float] = (0.0, 0.2),
    blend: float = 3.0,
    tries: int = 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """A composite of one frame: up to ``n_cells`` copies of ``cells``, each touching a cell.

    Parameters
    ----------
    image, instances : (H, W) arrays
        The frame and its instance labels (0 = background).
    cells : sequence of (patch, mask)
        What can be pasted (:func:`cut_cells`, from any training frame).
    rng : numpy.random.Generator
        The source of every random choice.
    n_cells : int
        Copies to paste; a copy that finds no place in ``tries`` draws is left out.
    ignore : (H, W) bool array, optional
        The frame's ignore region; the composite's is this minus the pasted pixels.
    overlap : (float, float)
        The fraction of a copy's area that may cover the cell it touches is drawn from
        ``U(*overlap)``, 0 <= low <= high < 1.
    blend : float
        Width (px) of the blending edge outside the copy's first pixel ring; at most the
        ``margin`` of :func:`cut_cells` less 1, so that it ends inside the patch.

    Returns
    -------
    image float64 (H, W), instances (H, W), ignore (H, W) bool or None, pasted count
        The pasted copies carry new labels above the frame's largest.
    """
    img = np.asarray(image, dtype=np.float64).copy()
    lab = np.asarray(instances).astype(np.int64, copy=True)
    ig = None if ignore is None else np.asarray(ignore, dtype=bool).copy()
    if img.shape != lab.shape or img.ndim != 2:
        raise ValueError(f"image {img.shape} and instances {lab.shape} must be equal 2-D")
    overlap = check_overlap(overlap)
    pasted = 0
    labels = np.unique(lab[lab > 0])  # the frame's cells: copies touch these, not each other
    for _ in range(n_cells if len(cells) and len(labels) else 0):
        for _ in range(tries):
            placed = _try_paste(img, lab, ig, cells, labels, rng, overlap, blend)
            if placed:
                pasted += 1
                break
    return img, lab, ig, pasted


def _try_paste(img, lab, ig, cells, labels, rng, overlap, blend) -> bool:
    """One draw of a copy, a touched cell and a direction; pastes and returns True if it fits."""
    patch, mask = cells[int(rng.integers(len(cells)))]
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    patch, mask = np.rot90(patch, k), np.rot90(mask, k)
    if flip:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    touched = int(labels[int(rng.integers(len(labels)))])
    theta, share = rng.uniform(0, 2 * np.pi), rng.uniform(*overlap)
    cell = lab == touched
    cy, cx = ndi.center_of_mass(cell)
    h, w = mask.shape
    area = int(mask.sum())
    # what the copy must keep 2 px away from: the other cells and the ignore region
    keep_off = (lab > 0) & ~cell
    if ig is not None:
        keep_off |= ig
    keep_off = ndi.binary_dilation(keep_off, _DISK1, iterations=2)
    for r in range(0, int(np.hypot(*lab.shape))):
        top = int(round(cy + r * np.sin(theta) - h / 2))
        left = int(round(cx + r * np.cos(theta) - w / 2))
        if top < 0 or left < 0 or top + h > lab.shape[0] or left + w > lab.shape[1]:
            return False
        win = (slice(top, top + h), slice(left, left + w))
        covered = int(np.count_nonzero(mask & cell[win]))
        if covered > share * area:
            continue
        touching = covered or np.any(ndi.binary_dilation(mask, _DISK1) & cell[win])
        if not touching or np.any(mask & keep_off[win]):
            return False
        if 2 * (int(cell.sum()) - covered) < int(cell.sum()):
            return False
        # 1 on the copy and the pixel next to it, falling linearly to 0 at `blend` + 1 px
        alpha = np.clip((blend + 1 - ndi.distance_transform_edt(~mask)) / blend, 0, 1)
        img[win] = alpha * patch + (1 - alpha) * img[win]
        lab[win][mask] = lab.max() + 1
        if ig is not None:
            ig[win][mask] = False
        return True
    return False
