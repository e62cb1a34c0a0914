"""ISBI 2012 EM segmentation metrics, as the challenge computed them in 2015.

The ISBI 2012 leaderboard of the U-Net paper (Ronneberger et al., 2015, Table 1) ranks by three
numbers, each computed by the Fiji "Trainable Weka Segmentation" library (classes
``PixelError``, ``RandError`` and ``WarpingError``) and each taking its own best threshold of the
proposal map:

* **pixel error** = 1 - max_th F, where F is the F-score of the pixel classification
  (positive = cell);
* **Rand error** = 1 - max_th F_rand, the foreground-restricted Rand F-score;
* **warping error**: the minimum over thresholds of the number of pixels classified as *split*
  or *merger* after a topology-preserving warping of the ground truth onto the binarised
  proposal (Jain et al., 2010), divided by the number of pixels.

Conventions shared by the three functions:

* ``gt`` is a stack of labels ``(N, H, W)`` or a single ``(H, W)`` image of any numeric dtype;
  a pixel is *cell* (foreground) when ``gt > 0``. Label ids are never used, only ``gt > 0``.
* ``proposal`` has the same shape, values in [0, 1], 1 = non-membrane (cell). As in Fiji it is
  stored as float32 and compared, as a double, with the threshold: ``p > th`` is foreground.
* Thresholds come from the Java loop ``for (th = min; th <= max; th += step)`` in doubles
  (:func:`thresholds`): 0 .. 1 for pixel and Rand error (11 values), 0 .. 0.9 for the warping
  error (10 values).

References
----------
.. [1] Arganda-Carreras I. et al., "Crowdsourcing the creation of image segmentation algorithms
   for connectomics", Front. Neuroanat. 9:142, 2015.
.. [2] Jain V. et al., "Boundary learning by optimization with topological constraints",
   CVPR 2010.
.. [3] Bertrand G., Malandain G., "A new characterization of three-dimensional simple points",
   Pattern Recognit. Lett. 15(2):169-175, 1994.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "MetricResult",
    "SIMPLE_POINT_LUT",
    "classify_mismatches",
    "isbi_scores",
    "neighbourhood_code",
    "pixel_counts",
    "pixel_error",
    "rand_counts_slice",
    "rand_error",
    "score_rows",
    "thresholds",
    "warp_slice",
    "warping_error",
]

#: 4-connectivity structuring element (foreground connectivity everywhere in this module).
_CROSS = ndi.generate_binary_structure(2, 1)

#: Offsets (dy, dx) of the 8 neighbours; neighbour k is bit k of a neighbourhood code.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))

SPLIT = 1
MERGE = 2


# --------------------------------------------------------------------------------------------
# thresholds and result container
# --------------------------------------------------------------------------------------------
def thresholds(tmin: float = 0.0, tmax: float = 1.0, step: float = 0.1) -> list[float]:
    """Threshold values of the Java loop ``for (th = tmin; th <= tmax; th += step)``.

    The values accumulate rounding exactly as the doubles of the Fiji code do, e.g.
    ``thresholds(0, 1, 0.1)`` gives 11 values ``0, 0.1, 0.2, 0.30000000000000004, ...,
    0.9999999999999999`` and ``thresholds(0, 0.9, 0.1)`` gives 10 values.

    Parameters
    ----------
    tmin, tmax, step : float
        First value, inclusive upper bound and increment.

    Returns
    -------
    list of float
    """
    if not step > 0:
        raise ValueError(f"threshold step must be positive, got {step}")
    if tmin > tmax:
        raise ValueError(f"tmin={tmin} is larger than tmax={tmax}")
    out = []
    th = float(tmin)
    while th <= tmax:
        out.append(th)
        th += float(step)
    return out


@dataclass(frozen=True)
class MetricResult:
    """Per-threshold values of one ISBI metric and its best value.

    Attributes
    ----------
    name : str
        ``"pixel_error"``, ``"rand_error"`` or ``"warping_error"``.
    per_threshold : dict of float to float
        The error at each threshold, in threshold order.
    best : float
        The reported value: the smallest error over the thresholds.
    best_threshold : float
        The first threshold that reaches ``best`` (the Java loops keep the first optimum).
    details : dict of str to dict of float to float
        Extra per-threshold quantities (``precision``, ``recall``, ``f_score`` for pixel and
        Rand error; ``splits``, ``mergers`` (pixel counts) for the warping error).
    """

    name: str
    per_threshold: dict[float, float]
    best: float
    best_threshold: float
    details: dict[str, dict[float, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _as_stacks(gt: np.ndarray, proposal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate inputs; return (cell mask bool (N,H,W), proposal float32 (N,H,W))."""
    gt = np.asarray(gt)
    proposal = np.asarray(proposal)
    if gt.ndim not in (2, 3):
        raise ValueError(f"gt must be (H, W) or (N, H, W), got shape {gt.shape}")
    if gt.shape != proposal.shape:
        raise ValueError(f"gt shape {gt.shape} and proposal shape {proposal.shape} differ")
    if gt.size == 0:
        raise ValueError("gt is empty")
    if not (np.issubdtype(gt.dtype, np.number) or gt.dtype == bool):
        raise ValueError(f"gt must be numeric, got dtype {gt.dtype}")
    if not (np.issubdtype(proposal.dtype, np.number) or proposal.dtype == bool):
        raise ValueError(f"proposal must be numeric, got dtype {proposal.dtype}")
    p = proposal.astype(np.float32)
    if not np.all(np.isfinite(p)):
        raise ValueError("proposal contains NaN or infinite values")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"proposal must lie in [0, 1] (1 = cell), got range [{p.min()}, {p.max()}]"
        )
    if gt.ndim == 2:
        gt, p = gt[None], p[None]
    return gt > 0, p


def _f_score(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F-score with the conventions of Fiji ``ClassificationStatistics``.

    Precision is 1 when there is no false positive, recall is 1 when there is no false
    negative, and F is 0 when precision + recall is 0.
    """
    precision = 1.0 if fp == 0 else tp / (tp + fp)
    recall = 1.0 if fn == 0 else tp / (tp + fn)
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f


def _best_of_f(name: str, ths: list[float], stats: list[tuple[float, float, float]]):
    """Build the MetricResult of a maximal-F metric (error = 1 - F, first maximum wins)."""
    best_f, best_th = 0.0, ths[0]
    for th, (_, _, f) in zip(ths, stats, strict=True):
        if f > best_f:
            best_f, best_th = f, th
    return MetricResult(
        name=name,
        per_threshold={th: 1.0 - s[2] for th, s in zip(ths, stats, strict=True)},
        best=1.0 - best_f,
        best_threshold=best_th,
        details={
            "precision": {th: s[0] for th, s in zip(ths, stats, strict=True)},
            "recall": {th: s[1] for th, s in zip(ths, stats, strict=True)},
            "f_score": {th: s[2] for th, s in zip(ths, stats, strict=True)},
        },
    )


def _default(ths: list[float] | None, tmin: float, tmax: float) -> list[float]:
    if ths is None:
        return thresholds(tmin, tmax, 0.1)
    ths = [float(t) for t in ths]
    if not ths:
        raise ValueError("thresholds is empty")
    return ths


# --------------------------------------------------------------------------------------------
# pixel error
# --------------------------------------------------------------------------------------------
def pixel_counts(cell: np.ndarray, proposal: np.ndarray, th: float) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of ``proposal > th`` vs ``cell``.

    Parameters
    ----------
    cell : ndarray of bool
        Ground-truth foreground.
    proposal : ndarray of float32
        Proposal map, same shape.
    th : float
        Threshold (the comparison is made in float64).

    Returns
    -------
    tp, fp, fn : int
    """
    pred = proposal.astype(np.float64) > th
    tp = int(np.count_nonzero(pred & cell))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(cell)) - tp
    return tp, fp, fn


def pixel_error(
    gt: np.ndarray, proposal: np.ndarray, thresholds: list[float] | None = None
) -> MetricResult:
    """Pixel error = 1 - maximal F-score of the pixel classification.

    For each threshold, TP, FP and FN (positive = cell) are summed over all slices, then
    ``P = TP / (TP + FP)`` (1 if FP = 0), ``R = TP / (TP + FN)`` (1 if FN = 0) and
    ``F = 2PR / (P + R)``; the error is ``1 - max_th F`` (Fiji ``PixelError``).

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Ground-truth labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    thresholds : list of float, optional
        Defaults to ``thresholds(0.0, 1.0, 0.1)`` (11 values).

    Returns
    -------
    MetricResult
    """
    cell, p = _as_stacks(gt, proposal)
    ths = _default(thresholds, 0.0, 1.0)
    stats = [_f_score(*pixel_counts(cell, p, th)) for th in ths]
    return _best_of_f("pixel_error", ths, stats)


# --------------------------------------------------------------------------------------------
# foreground-restricted Rand error
# --------------------------------------------------------------------------------------------
def _label4(mask: np.ndarray) -> tuple[np.ndarray, int]:
    lab, n = ndi.label(mask, structure=_CROSS)
    return lab, int(n)


def _pair_counts(gt_ids: np.ndarray, n_gt: int, prop_ids: np.ndarray, n_prop: int) -> np.ndarray:
    """Non-zero entries c_ij of the contingency table of two label vectors."""
    if (n_gt + 1) * (n_prop + 1) <= 4 * gt_ids.size + 1024:
        key = gt_ids.astype(np.int64) * (n_prop + 1) + prop_ids
        c = np.bincount(key, minlength=(n_gt + 1) * (n_prop + 1))
        idx = np.flatnonzero(c)
        return np.stack([idx // (n_prop + 1), idx % (n_prop + 1), c[idx]], axis=1)
    key = gt_ids.astype(np.int64) * (n_prop + 1) + prop_ids
    idx, c = np.unique(key, return_counts=True)
    return np.stack([idx // (n_prop + 1), idx % (n_prop + 1), c], axis=1)


def rand_counts_slice(
    gt_labels: np.ndarray, prop_labels: np.ndarray, n_gt: int, n_prop: int
) -> tuple[int, int, int]:
    """Foreground-restricted Rand TP, FP, FN of one slice (exact integers).

    Only pixels with ``gt_labels > 0`` count (n of them). Proposal label 0 (background) pixels
    are each a singleton segment. With counts c_ij = |GT_i ∩ P_j| (i >= 1, j >= 0),
    C0 = Σ_i c_i0, a_i = Σ_{j>=0} c_ij and b_j = Σ_{i>=1} c_ij (j >= 1)::

        TP = Σ_{i,j>=1} c_ij² + C0,   FP = Σ_{j>=1} b_j² + C0 - TP,   FN = Σ_i a_i² - TP.

    These equal ``n²·sumAB``, ``n²·sumB - TP`` and ``n²·sumA - TP`` of Fiji's
    ``RandError.foregroundRestrictedStatsN2`` (which evaluates them in doubles); they count
    ordered pixel pairs (self-pairs included) that share segments in both, only in the
    proposal, or only in the ground truth.

    Parameters
    ----------
    gt_labels, prop_labels : ndarray of int
        Segment ids (0 = background) of the ground truth and of the binarised proposal.
    n_gt, n_prop : int
        Largest ids.

    Returns
    -------
    tp, fp, fn : int
    """
    fg = gt_labels > 0
    g = gt_labels[fg]
    q = prop_labels[fg]
    if g.size == 0:
        return 0, 0, 0
    table = _pair_counts(g, n_gt, q, n_prop)
    j, c = table[:, 1], table[:, 2]
    in_prop = j > 0
    c0 = int(c[~in_prop].sum())
    tp = int(np.dot(c[in_prop], c[in_prop])) + c0
    a = np.bincount(g, minlength=n_gt + 1)
    b = np.bincount(q[q > 0], minlength=n_prop + 1)
    sum_a2 = int(np.dot(a, a))
    sum_b2 = int(np.dot(b, b))
    return tp, sum_b2 + c0 - tp, sum_a2 - tp


def rand_error(
    gt: np.ndarray, proposal: np.ndarray, thresholds: list[float] | None = None
) -> MetricResult:
    """Foreground-restricted Rand error = 1 - maximal Rand F-score.

    Per slice, segments are the 4-connected components of the cell pixels of the ground truth
    and of ``proposal > th``; see :func:`rand_counts_slice` for TP/FP/FN. TP, FP and FN are summed
    over slices, then precision, recall and F are formed as in :func:`pixel_error`. A slice
    without ground-truth cell pixels contributes nothing (Fiji would return NaN).

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Ground-truth labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    thresholds : list of float, optional
        Defaults to ``thresholds(0.0, 1.0, 0.1)`` (11 values).

    Returns
    -------
    MetricResult
    """
    cell, p = _as_stacks(gt, proposal)
    ths = _default(thresholds, 0.0, 1.0)
    p64 = p.astype(np.float64)
    gt_lab = [_label4(c) for c in cell]
    stats = []
    for th in ths:
        tp = fp = fn = 0
        for (gl, ng), ps in zip(gt_lab, p64, strict=True):
            pl, npr = _label4(ps > th)
            a, b, c = rand_counts_slice(gl, pl, ng, npr)
            tp, fp, fn = tp + a, fp + b, fn + c
        stats.append(_f_score(float(tp), float(fp), float(fn)))
    return _best_of_f("rand_error", ths, stats)


# --------------------------------------------------------------------------------------------
# simple points
# --------------------------------------------------------------------------------------------
def _components(cells: list[tuple[int, int]], adjacency: int) -> list[set[tuple[int, int]]]:
    """Connected components of a set of (dy, dx) cells, 4- or 8-adjacency."""
    rest, comps = set(cells), []
    while rest:
        stack = [rest.pop()]
        comp = set(stack)
        while stack:
            y, x = stack.pop()
            for v in list(rest):
                d = abs(v[0] - y) + abs(v[1] - x)
                if d == 1 or (adjacency == 8 and abs(v[0] - y) == 1 and abs(v[1] - x) == 1):
                    rest.remove(v)
                    comp.add(v)
                    stack.append(v)
        comps.append(comp)
    return comps


def _is_simple(code: int) -> bool:
    """2-D simple point test (foreground 4-connected, background 8-connected).

    The centre is simple iff the topological numbers T4(foreground) and T8(background) of its
    3x3 neighbourhood both equal 1 (Bertrand & Malandain 1994): exactly one 4-component of the
    foreground neighbours contains a 4-neighbour of the centre, and the background neighbours
    form exactly one 8-component. The centre's own value does not matter.
    """
    fg = [NEIGHBOUR_OFFSETS[k] for k in range(8) if code >> k & 1]
    bg = [NEIGHBOUR_OFFSETS[k] for k in range(8) if not code >> k & 1]
    t4 = sum(1 for comp in _components(fg, 4) if any(abs(y) + abs(x) == 1 for y, x in comp))
    t8 = len(_components(bg, 8))
    return t4 == 1 and t8 == 1


#: ``SIMPLE_POINT_LUT[code]`` is True when a pixel whose 8 neighbours have foreground bits
#: ``code`` (bit k = neighbour ``NEIGHBOUR_OFFSETS[k]``) is simple. Fiji tests the same
#: configurations with Bertrand's 3-D characterisation on the 3x3 patch embedded between two
#: background planes (``simple3d(·, 6)``); the two agree on all 256 configurations.
SIMPLE_POINT_LUT = np.array([_is_simple(c) for c in range(256)], dtype=np.bool_)


def neighbourhood_code(image: np.ndarray, y: int, x: int) -> int:
    """Bit code of the 8 neighbours of (y, x) of a binary image; outside pixels are 0."""
    h, w = image.shape
    code = 0
    for k, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        yy, xx = y + dy, x + dx
        if 0 <= yy < h and 0 <= xx < w and image[yy, xx]:
            code |= 1 << k
    return code


# --------------------------------------------------------------------------------------------
# warping (numba kernels)
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _sweep_until_stable(lab, order, stride, lut):  # pragma: no cover - compiled
    """Simple-point relaxation of a padded binary image.

    ``lab`` is the flattened (H+2, W+2) zero-padded image L, modified in place; ``order`` holds
    the flat indices of the mismatches L != T in processing order. Each sweep visits the current
    mismatches in that order and flips L where it is a simple point of the current L; sweeps
    repeat until one flips nothing or no mismatch is left. Flipping only ever removes mismatches,
    so the list of a sweep is the previous list without the flipped pixels, in the same order.
    Returns the remaining mismatches.
    """
    cur = order.copy()
    n = cur.size
    while n > 0:
        kept = 0
        for t in range(n):
            i = cur[t]
            code = (
                lab[i - stride - 1]
                | (lab[i - stride] << 1)
                | (lab[i - stride + 1] << 2)
                | (lab[i - 1] << 3)
                | (lab[i + 1] << 4)
                | (lab[i + stride - 1] << 5)
                | (lab[i + stride] << 6)
                | (lab[i + stride + 1] << 7)
            )
            if lut[code]:
                lab[i] = 1 - lab[i]
            else:
                cur[kept] = i
                kept += 1
        if kept == n:
            break
        n = kept
    return cur[:n].copy()


@numba.njit(cache=True)
def _count_window_components(lab, y, x, radius, marks, queue, stamp):  # pragma: no cover
    """Distinct ids among the 8 neighbours of (y, x) after setting (y, x) to background.

    Components are 4-connected foreground components of ``lab`` (H, W) restricted to the
    window |dy|, |dx| <= radius (``radius < 0``: whole image). Background counts as one id.
    In the window version, pixels outside the image lie in the window as background and so
    count; in the whole-image version they are not neighbours. ``marks`` (H*W int64) records
    the BFS stamp of visited pixels; returns (number of distinct ids, next stamp).
    """
    h, w = lab.shape
    if radius < 0:
        y0, y1, x0, x1 = 0, h - 1, 0, w - 1
    else:
        y0, y1, x0, x1 = y - radius, y + radius, x - radius, x + radius
    base = stamp
    n_fg = 0
    has_bg = False
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            if dy == 0 and dx == 0:
                continue
            yy, xx = y + dy, x + dx
            inside = 0 <= yy < h and 0 <= xx < w
            if not inside:
                if radius >= 0:
                    has_bg = True
                continue
            if lab[yy, xx] == 0:
                has_bg = True
                continue
            if marks[yy * w + xx] >= base:
                continue
            # new component: breadth-first search inside the window, centre removed
            n_fg += 1
            s = stamp
            stamp += 1
            head = 0
            tail = 0
            queue[tail] = yy * w + xx
            tail += 1
            marks[yy * w + xx] = s
            while head < tail:
                q = queue[head]
                head += 1
                qy = q // w
                qx = q - qy * w
                for k in range(4):
                    if k == 0:
                        ny, nx = qy - 1, qx
                    elif k == 1:
                        ny, nx = qy + 1, qx
                    elif k == 2:
                        ny, nx = qy, qx - 1
                    else:
                        ny, nx = qy, qx + 1
                    if ny < 0 or ny >= h or nx < 0 or nx >= w:
                        continue
                    if ny < y0 or ny > y1 or nx < x0 or nx > x1:
                        continue
                    if ny == y and nx == x:
                        continue
                    j = ny * w + nx
                    if lab[ny, nx] == 0 or marks[j] >= base:
                        continue
                    marks[j] = s
                    queue[tail] = j
                    tail += 1
    return n_fg + (1 if has_bg else 0), stamp


@numba.njit(cache=True)
def _classify(lab, comp, ys, xs, radius):  # pragma: no cover - compiled
    """Split (1) / merge (2) / other (0) class of each mismatch of the warped labels.

    ``lab`` is the warped binary image (H, W), ``comp`` its 4-connected component ids. For a
    mismatch pixel, S is the set of component ids (0 = background) of its in-image 8-neighbours:
    |S| = 1 -> object/hole addition/deletion; |S| = 2 -> a background pixel is a hole addition,
    a foreground pixel is a split when removing it leaves more than 2 ids among its neighbours
    (components recomputed inside the (2*radius+1)² window), else a hole deletion; any other |S|
    -> merge for a background pixel, split for a foreground pixel (Fiji
    ``WarpingError.classifyMismatches2d``).
    """
    h, w = lab.shape
    out = np.zeros(ys.size, dtype=np.int8)
    marks = np.zeros(h * w, dtype=np.int64)
    queue = np.empty(h * w, dtype=np.int64)
    stamp = 1
    ids = np.empty(8, dtype=np.int64)
    for t in range(ys.size):
        y = ys[t]
        x = xs[t]
        n_ids = 0
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                if dy == 0 and dx == 0:
                    continue
                yy, xx = y + dy, x + dx
                if yy < 0 or yy >= h or xx < 0 or xx >= w:
                    continue
                v = comp[yy, xx]
                seen = False
                for k in range(n_ids):
                    if ids[k] == v:
                        seen = True
                        break
                if not seen:
                    ids[n_ids] = v
                    n_ids += 1
        centre_fg = comp[y, x] != 0
        if n_ids == 1:
            out[t] = 0
        elif n_ids == 2:
            if centre_fg:
                n2, stamp = _count_window_components(lab, y, x, radius, marks, queue, stamp)
                out[t] = SPLIT if n2 > 2 else 0
            else:
                out[t] = 0
        else:
            out[t] = SPLIT if centre_fg else MERGE
    return out


def warp_slice(
    cell: np.ndarray, proposal: np.ndarray, th: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp a binary ground truth onto a thresholded proposal by flipping simple points.

    L = ``cell``, T = ``proposal > th``. Mismatches (L != T) are listed scanning x in the
    outer loop and y in the inner loop and stably sorted by ``|p - th|`` (computed in double,
    stored as float32 like Fiji's ``Point3f.z``) in descending order; a sweep flips L at each
    listed pixel that is a simple point of the current L (foreground 4-, background
    8-connectivity, pixels outside the image are background); sweeps repeat until no mismatch
    is left or a sweep flips nothing (Fiji ``WarpingError.simplePointWarp2d``).

    Parameters
    ----------
    cell : ndarray of bool, (H, W)
        Binary ground truth L.
    proposal : ndarray of float32, (H, W)
        Proposal map p.
    th : float
        Threshold.

    Returns
    -------
    warped : ndarray of uint8, (H, W)
        The warped L.
    ys, xs : ndarray of int64
        Coordinates of the remaining mismatches, in processing order.
    """
    h, w = cell.shape
    p64 = proposal.astype(np.float64)
    target = p64 > th
    mism = cell != target
    # scan order: x outer, y inner (= row-major order of the transposed image)
    xs, ys = np.nonzero(mism.T)
    key = np.abs(p64[ys, xs] - th).astype(np.float32)
    order = np.argsort(-key, kind="stable")
    ys, xs = ys[order], xs[order]
    stride = w + 2
    lab = np.zeros((h + 2, w + 2), dtype=np.uint8)
    lab[1:-1, 1:-1] = cell
    flat = lab.reshape(-1)
    left = _sweep_until_stable(flat, (ys + 1) * stride + (xs + 1), stride, SIMPLE_POINT_LUT)
    ry = left // stride - 1
    rx = left % stride - 1
    return lab[1:-1, 1:-1].copy(), ry.astype(np.int64), rx.astype(np.int64)


def classify_mismatches(
    warped: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: int | None = 20
) -> np.ndarray:
    """Classify the mismatches left after warping: 1 = split, 2 = merger, 0 = other.

    Parameters
    ----------
    warped : ndarray, (H, W)
        Warped binary labels.
    ys, xs : ndarray of int
        Mismatch coordinates.
    radius : int or None
        Half-size of the window used to decide ambiguous foreground pixels. ``None``, values
        below 1 and values larger than the image width or height use the whole image, as Fiji
        does.

    Returns
    -------
    ndarray of int8
    """
    h, w = warped.shape
    r = -1 if radius is None or radius < 1 or radius > w or radius > h else int(radius)
    lab = (np.asarray(warped) > 0).astype(np.uint8)
    comp, _ = _label4(lab)
    return _classify(lab, comp.astype(np.int64), ys.astype(np.int64), xs.astype(np.int64), r)


def warping_error(
    gt: np.ndarray,
    proposal: np.ndarray,
    thresholds: list[float] | None = None,
    radius: int | None = 20,
) -> MetricResult:
    """Minimum splits-and-mergers warping error (Jain et al. 2010, Fiji ``WarpingError``).

    For each threshold and slice the ground truth is warped onto ``proposal > th``
    (:func:`warp_slice`); the remaining mismatches are classified (:func:`classify_mismatches`)
    and only splits and mergers are counted (object/hole additions and deletions are not). The
    error at a threshold is the count summed over slices divided by ``W * H * N``; the result
    is its minimum over the thresholds (``getMinimumSplitsAndMergersErrorValue`` with
    ``clusterByError = false``).

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Ground-truth labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    thresholds : list of float, optional
        Defaults to ``thresholds(0.0, 0.9, 0.1)`` (10 values).
    radius : int or None
        Window radius of the mismatch classification (20 in the ISBI evaluation).

    Returns
    -------
    MetricResult
        ``details`` holds the split and merger pixel counts per threshold.
    """
    cell, p = _as_stacks(gt, proposal)
    ths = _default(thresholds, 0.0, 0.9)
    n, h, w = cell.shape
    per, splits, mergers = {}, {}, {}
    best, best_th = np.inf, ths[0]
    for th in ths:
        s = m = 0
        for z in range(n):
            warped, ys, xs = warp_slice(cell[z], p[z], th)
            cls = classify_mismatches(warped, ys, xs, radius)
            s += int(np.count_nonzero(cls == SPLIT))
            m += int(np.count_nonzero(cls == MERGE))
        err = (s + m) / float(w * h * n)
        per[th], splits[th], mergers[th] = err, float(s), float(m)
        if err < best:
            best, best_th = err, th
    return MetricResult(
        name="warping_error",
        per_threshold=per,
        best=float(best),
        best_threshold=best_th,
        details={"splits": splits, "mergers": mergers},
    )


def isbi_scores(
    gt: np.ndarray, proposal: np.ndarray, radius: int | None = 20
) -> dict[str, MetricResult]:
    """The three ISBI 2012 metrics of the U-Net paper's Table 1 with the challenge's thresholds.

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Ground-truth labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    radius : int or None
        Warping-error classification radius.

    Returns
    -------
    dict
        ``{"warping_error": ..., "rand_error": ..., "pixel_error": ...}`` (MetricResult each).
    """
    return {
        "warping_error": warping_error(gt, proposal, radius=radius),
        "rand_error": rand_error(gt, proposal),
        "pixel_error": pixel_error(gt, proposal),
    }


def score_rows(scores: dict[str, MetricResult]) -> list[dict[str, float | str]]:
    """Long-format rows (one per metric and threshold) for a CSV of per-threshold values.

    Parameters
    ----------
    scores : dict of str to MetricResult
        E.g. the output of :func:`isbi_scores`.

    Returns
    -------
    list of dict
        Keys ``metric``, ``threshold``, ``value``, ``is_best`` and the metric's ``details``.
    """
    rows = []
    for name, r in scores.items():
        for th, v in r.per_threshold.items():
            row = {"metric": name, "threshold": th, "value": v, "is_best": th == r.best_threshold}
            row.update({k: d[th] for k, d in r.details.items()})
            rows.append(row)
    return rows
