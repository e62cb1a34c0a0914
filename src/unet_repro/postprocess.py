"""Instances from P(cell) for the CTC SEG measure, with settings chosen on training frames.

The network of section 3 predicts a class per pixel; the SEG measure of the Cell Tracking
Challenge scores instances. Two things make ``P(cell) > 0.5`` a poor cut here:

* the weighted loss moves the probability scale: :math:`w_c` of a cell pixel is several times
  that of a background pixel (about 11x on PhC-C2DH-U373), which favours "cell" at the
  boundary, so the natural threshold is not 0.5;
* the training target removes the separation borders between touching cells (2 pixels per
  contact, :func:`unet_repro.weights.separation_borders`), so a network that learnt them
  draws every touching cell about a pixel too small.

:func:`segment` therefore thresholds, labels 4-connected components, removes small ones,
optionally splits each of these *seeds* at its necks (a watershed on its distance map
from the h-maxima of depth ``split_depth``, the classical split of touching round objects),
optionally grows them into the lower-confidence region ``P > mask_threshold`` by a
watershed on :math:`-P` (a cut at a high threshold separates touching cells, the low one gives
their extent back; each seed keeps its own basin), optionally keeps the components of that
region that hold no seed as instances of their own (``keep_unseeded``: a cell whose P(cell)
never reaches the high threshold is not lost), fills holes inside an instance and grows
the labels by a few pixels without merging them (``skimage.segmentation.expand_labels``).
:func:`select_postprocessing` picks these settings
by the SEG measure on frames of the *training* sequence(s): it is given those frames only,
so the held-out sequence never influences the choice. The workflow gives it the selection
frames (frames without gold truth that no configuration trains on,
:func:`unet_repro.datasets.frame_roles`) with their silver truth as the reference, or the
annotated frames with their gold truth.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from .metrics.ctc import instances_from_probability, matched_jaccards

_CROSS = ndi.generate_binary_structure(2, 1)

__all__ = [
    "DEFAULT_GRID",
    "KEYS",
    "check_grid",
    "fill_label_holes",
    "segment",
    "select_postprocessing",
    "split_at_necks",
]

#: The settings of :func:`segment`, in the order of the selection's rows.
KEYS = (
    "threshold",
    "mask_threshold",
    "keep_unseeded",
    "min_size",
    "split_depth",
    "expand",
    "fill_holes",
)

#: Candidate settings of :func:`select_postprocessing` (config ``evaluate.ctc_select``).
DEFAULT_GRID: dict[str, list] = {
    "threshold": [round(0.3 + 0.05 * i, 2) for i in range(14)],  # 0.3 .. 0.95
    "mask_threshold": [None, 0.25, 0.5],  # None: no seeded growth
    "keep_unseeded": [False, True],  # with seeded growth: unseeded components kept
    "min_size": [0, 100],
    "split_depth": [None],  # None: no split at necks
    "expand": [0, 1, 2],
    "fill_holes": [False, True],
}


def check_grid(grid: Mapping[str, Sequence] | None) -> dict[str, list]:
    """Merge ``grid`` into :data:`DEFAULT_GRID` and validate it (ValueError on problems)."""
    out = {k: list(v) for k, v in DEFAULT_GRID.items()}
    for key, values in (grid or {}).items():
        if key not in DEFAULT_GRID:
            raise ValueError(f"unknown post-processing setting {key!r}; valid: {list(out)}")
        values = list(values) if isinstance(values, list | tuple) else [values]
        if not values:
            raise ValueError(f"post-processing setting {key!r} needs at least one value")
        out[key] = values
    if any(not 0 <= t < 1 for t in out["threshold"]):
        raise ValueError("thresholds must lie in [0, 1)")
    if any(t is not None and not 0 <= t < 1 for t in out["mask_threshold"]):
        raise ValueError("mask thresholds must be None or lie in [0, 1)")
    if any(int(v) < 0 for v in out["min_size"] + out["expand"]):
        raise ValueError("min_size and expand must be >= 0")
    if any(d is not None and not d > 0 for d in out["split_depth"]):
        raise ValueError("split depths must be None or > 0 (pixels)")
    if any(not isinstance(k, bool | np.bool_) for k in out["keep_unseeded"]):
        raise ValueError("keep_unseeded takes true/false")
    return out


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Fill the holes of the instances: background regions enclosed by a single instance.

    A 4-connected background region that does not reach the image edge and whose outer ring
    (the instance pixels 4-adjacent to it) belongs to one label only takes that label; a gap
    enclosed jointly by several touching instances stays background. O(pixels), whatever the
    number of objects: one labelling of the background and the ring's (region, label) pairs
    from the four neighbour shifts, without a dilation or a per-region sort.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"fill_label_holes needs a 2-D label image, got shape {lab.shape}")
    background, n = ndi.label(lab == 0, structure=_CROSS)
    hole = np.ones(n + 1, dtype=bool)  # per background region: does it miss the image edge?
    hole[0] = False
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        hole[edge] = False
    if not hole.any():
        return lab.copy()
    # (region, label) of every 4-adjacent pair of a hole pixel and an instance pixel
    regions, values = [], []
    for a, b in (
        (background[1:], lab[:-1]),
        (background[:-1], lab[1:]),
        (background[:, 1:], lab[:, :-1]),
        (background[:, :-1], lab[:, 1:]),
    ):
        pair = hole[a] & (b > 0)
        regions.append(a[pair])
        values.append(b[pair].astype(np.int64))
    regions, values = np.concatenate(regions), np.concatenate(values)
    lo = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.zeros(n + 1, dtype=np.int64)
    np.minimum.at(lo, regions, values)
    np.maximum.at(hi, regions, values)
    fill = np.zeros(n + 1, dtype=lab.dtype)
    single = hole & (lo == hi)  # a ring of one label (every hole has a non-empty ring)
    fill[single] = hi[single]
    out = lab.copy()
    inside = hole[background]
    out[inside] = fill[background[inside]]
    return out


def split_at_necks(labels: np.ndarray, depth: float) -> np.ndarray:
    """Split every instance at its necks.

    With :math:`d(x)` the Euclidean distance of an instance pixel to the nearest pixel that is
    background or next to another instance, the markers are the regional maxima of the
    h-maxima transform :math:`R^\\delta_d(d - h)` (the reconstruction by dilation of
    :math:`d - h` under :math:`d`) with :math:`h` = ``depth`` pixels, and each instance is
    divided among its markers by a watershed on :math:`-d` (4-connected, never across
    instances). Two round cells joined by a neck become two when the neck's :math:`d` lies
    more than ``depth`` below the smaller cell's maximum; an instance with one or no such maximum
    stays whole. Returns uint16 labels numbered 1..n.
    """
    lab = np.asarray(labels)
    if depth is None or not lab.any():
        return lab.astype(np.uint16)
    if not depth > 0:
        raise ValueError(f"split depth must be > 0 pixels, got {depth}")
    inner = (lab > 0) & (ndi.grey_erosion(lab, footprint=_CROSS) == lab)
    inner &= ndi.grey_dilation(lab, footprint=_CROSS) == lab
    dist = ndi.distance_transform_edt(inner)
    hmax = reconstruction(dist - float(depth), dist, method="dilation")
    peaks = local_maxima(hmax, connectivity=1) & (lab > 0)
    markers, n = ndi.label(peaks, _CROSS)
    # an instance without a marker (its maximum below depth) keeps itself as one
    bare = (lab > 0) & ~np.isin(lab, np.unique(lab[markers > 0]))
    extra, _ = ndi.label(bare, _CROSS)
    markers = np.where(bare, extra + n, markers)
    out = watershed(-dist, markers, mask=lab > 0, connectivity=1)
    return relabel_sequential(out)[0].astype(np.uint16)


def segment(
    p_cell: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 0,
    expand: int = 0,
    fill_holes: bool = False,
    mask_threshold: float | None = None,
    split_depth: float | None = None,
    keep_unseeded: bool = False,
) -> np.ndarray:
    """Instances from a P(cell) map.

    ``P > threshold``, 4-connected components, components below ``min_size`` pixels removed,
    each split at its necks with ``split_depth`` (:func:`split_at_necks`; None: no split);
    with ``mask_threshold`` below ``threshold`` these seeds are grown by a watershed on
    :math:`-P` into ``P > mask_threshold`` (4-connected; the components of the mask without a
    seed stay background, or with ``keep_unseeded`` become instances themselves, those of at
    least ``min_size`` pixels); holes inside an instance filled (``fill_holes``), then every
    label grown by ``expand`` pixels into the background (never into another label;
    ``skimage.segmentation.expand_labels``). Returns uint16 labels, 0 = background.
    """
    lab = _seeds(p_cell, threshold, min_size, mask_threshold, split_depth, keep_unseeded)
    return _finish(lab, expand, fill_holes)


def _seeds(p_cell, threshold, min_size, mask_threshold, split_depth=None, keep_unseeded=False):
    lab = instances_from_probability(p_cell, threshold, int(min_size))
    if split_depth is not None:
        lab = split_at_necks(lab, split_depth)
    if mask_threshold is None or mask_threshold >= threshold:
        return lab
    p = np.asarray(p_cell, dtype=np.float64)
    if lab.any():
        lab = watershed(-p, lab, mask=p > mask_threshold, connectivity=1)
    if keep_unseeded:  # the mask's components that no seed reached
        rest = instances_from_probability(np.where(lab == 0, p, 0.0), mask_threshold, int(min_size))
        lab = np.where(rest > 0, rest.astype(np.int64) + int(lab.max()), lab)
    return lab


def _finish(lab, expand, fill_holes):
    if fill_holes:
        lab = fill_label_holes(lab)
    if expand > 0:
        lab = expand_labels(lab, distance=float(expand))
    return lab.astype(np.uint16)


def select_postprocessing(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    grid: Mapping[str, Sequence] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The :func:`segment` settings with the best SEG over the given frames.

    Parameters
    ----------
    probs : sequence of (H, W) float
        P(cell) of frames of the training sequence(s) (selection or annotated frames).
    truths : sequence of (H, W) int
        Their reference instances, silver or gold (partially annotated frames are fine: SEG
        only scores the annotated cells).
    grid : mapping, optional
        Candidate values per setting, merged into :data:`DEFAULT_GRID`.

    Returns
    -------
    best : dict
        The settings of :data:`KEYS` and ``seg`` (on these frames). Ties go to the first
        candidate in grid order.
    rows : list of dict
        Every candidate with its SEG.
    """
    grid = check_grid(grid)
    if len(probs) != len(truths) or not probs:
        raise ValueError("need the same, non-zero number of probability maps and truths")
    n_gt = sum(int(np.count_nonzero(np.unique(t))) for t in truths)
    if n_gt == 0:
        raise ValueError("the truths hold no object: nothing to choose the settings on")
    # consecutive ground-truth labels keep matched_jaccards' contingency tables small
    truths = [relabel_sequential(np.asarray(t))[0] for t in truths]
    totals: dict[tuple, float] = {}
    for threshold, mask_threshold, keep, min_size, split_depth in itertools.product(
        grid["threshold"],
        grid["mask_threshold"],
        grid["keep_unseeded"],
        grid["min_size"],
        grid["split_depth"],
    ):
        if mask_threshold is not None and mask_threshold >= threshold:
            continue  # no growth: the same as mask_threshold None
        if keep and mask_threshold is None:
            continue  # no mask, no unseeded components: the same as keep_unseeded False
        seeds = [_seeds(p, threshold, min_size, mask_threshold, split_depth, keep) for p in probs]
        for fill in grid["fill_holes"]:
            sums = dict.fromkeys(grid["expand"], 0.0)
            for s, truth in zip(seeds, truths, strict=True):
                lab = _finish(s, 0, fill)
                # expand_labels for every distance from one distance transform
                dist, idx = ndi.distance_transform_edt(lab == 0, return_indices=True)
                nearest = lab[tuple(idx)]
                for expand in grid["expand"]:
                    res = np.where(dist <= expand, nearest, 0) if expand else lab
                    sums[expand] += float(np.sum(matched_jaccards(truth, res)[0]))
            for expand, total in sums.items():
                key = (threshold, mask_threshold, keep, min_size, split_depth, expand, fill)
                totals[key] = total / n_gt
    rows = [dict(zip(KEYS, key, strict=True), seg=seg) for key, seg in totals.items()]
    best_key = max(totals, key=totals.get)  # first maximum in grid order (dicts keep order)
    best = dict(zip(KEYS, best_key, strict=True))
    best["seg"] = totals[best_key]
    return best, rows
