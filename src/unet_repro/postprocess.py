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
fills holes inside an instance and grows the labels back by a few pixels without merging them
(``skimage.segmentation.expand_labels``). :func:`select_postprocessing` picks these settings
by the SEG measure on the annotated frames of the *training* sequence(s): it is given those
frames only, so the held-out sequence never influences the choice.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels

from .metrics.ctc import instances_from_probability, matched_jaccards

__all__ = ["DEFAULT_GRID", "check_grid", "fill_label_holes", "segment", "select_postprocessing"]

#: Candidate settings of :func:`select_postprocessing` (config ``evaluate.ctc_select``).
DEFAULT_GRID: dict[str, list] = {
    "threshold": [round(0.3 + 0.05 * i, 2) for i in range(14)],  # 0.3 .. 0.95
    "min_size": [0, 50, 200],
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
    if any(int(v) < 0 for v in out["min_size"] + out["expand"]):
        raise ValueError("min_size and expand must be >= 0")
    return out


def fill_label_holes(labels: np.ndarray) -> np.ndarray:
    """Fill the holes of every instance (background pixels enclosed by one instance only)."""
    lab = np.asarray(labels)
    out = lab.copy()
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        mask = lab[sl] == i
        filled = ndi.binary_fill_holes(mask) & (lab[sl] == 0)
        out[sl][filled] = i
    return out


def segment(
    p_cell: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 0,
    expand: int = 0,
    fill_holes: bool = False,
) -> np.ndarray:
    """Instances from a P(cell) map.

    ``P > threshold``, 4-connected components, components below ``min_size`` pixels removed,
    holes inside an instance filled (``fill_holes``), then every label grown by ``expand``
    pixels into the background (never into another label; ``skimage.segmentation.
    expand_labels``). Returns uint16 labels, 0 = background.
    """
    lab = instances_from_probability(p_cell, threshold, int(min_size))
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
    """The :func:`segment` settings with the best SEG over annotated frames.

    Parameters
    ----------
    probs : sequence of (H, W) float
        P(cell) of the annotated frames of the training sequence(s).
    truths : sequence of (H, W) int
        Their gold-truth instances (partially annotated frames are fine: SEG only scores the
        annotated cells).
    grid : mapping, optional
        Candidate values per setting, merged into :data:`DEFAULT_GRID`.

    Returns
    -------
    best : dict
        ``threshold``, ``min_size``, ``expand``, ``fill_holes`` and ``seg`` (on these frames).
        Ties go to the first candidate in grid order.
    rows : list of dict
        Every candidate with its SEG.
    """
    grid = check_grid(grid)
    if len(probs) != len(truths) or not probs:
        raise ValueError("need the same, non-zero number of probability maps and truths")
    n_gt = sum(int(np.count_nonzero(np.unique(t))) for t in truths)
    if n_gt == 0:
        raise ValueError("the truths hold no object: nothing to choose the settings on")
    totals: dict[tuple, float] = {}
    for threshold, min_size, fill in itertools.product(
        grid["threshold"], grid["min_size"], grid["fill_holes"]
    ):
        base = [segment(p, threshold, min_size, 0, fill) for p in probs]
        for expand in grid["expand"]:
            total = 0.0
            for lab, truth in zip(base, truths, strict=True):
                res = expand_labels(lab, distance=float(expand)) if expand else lab
                total += float(np.sum(matched_jaccards(truth, res)[0]))
            totals[(threshold, min_size, expand, fill)] = total / n_gt
    rows = [
        {"threshold": t, "min_size": m, "expand": e, "fill_holes": f, "seg": seg}
        for (t, m, e, f), seg in totals.items()
    ]
    order = list(
        itertools.product(grid["threshold"], grid["min_size"], grid["expand"], grid["fill_holes"])
    )
    best_key = max(order, key=lambda k: (totals[k], -order.index(k)))
    best = dict(zip(("threshold", "min_size", "expand", "fill_holes"), best_key, strict=True))
    best["seg"] = totals[best_key]
    return best, rows
