"""ISBI 2012 leaderboard metrics: V_Rand(thinned) and V_Info(thinned).

Since 2016 the ISBI 2012 challenge ranks submissions by the foreground-restricted Rand scoring
after border thinning, **V_Rand(thinned)**, and shows the foreground-restricted information
theoretic scoring after border thinning, **V_Info(thinned)**, beside it (Arganda-Carreras et al.
2015 [1]_; the warping, Rand and pixel errors of :mod:`unet_repro.metrics.isbi` are the
"dismissed" metrics of the 2012 leaderboard). The challenge computes them with a Fiji
BeanShell script [2]_ that calls, on the whole 30-slice stack,

* ``RandError.getMaximalVRandAfterThinning(0.0, 1.0, 0.1, true)`` and
* ``VariationOfInformation.getMaximalVInfoAfterThinning(0.0, 1.0, 0.1)``

of the Trainable Weka Segmentation library [3]_. This module computes the same numbers, with
its own code, following those classes step by step. Line numbers below refer to
``fiji/Trainable_Segmentation`` at commit 41c7083 (2024; these methods have only had cosmetic
changes since October 2015).

Per slice and threshold ``th``:

1. **Binarisation** (``RandError.java`` 1027-1042, ``VariationOfInformation.java`` 1293-1305):
   a pixel of the proposal is *cell* when ``p > th`` (``p`` stored as float32, compared as a
   double), otherwise *membrane*. The gold standard is binarised too (Fiji: ``label > th``;
   here ``gt > 0``, the same for gold stored as 0/255 or 0/1 at every threshold of the sweep).
2. **Gold segments**: the 4-connected components of the gold cell pixels (``RandError.java``
   1045-1048 calling ``Utils.connectedComponents(·, 4)``, ``Utils.java`` 85-113, i.e. Mark
   Longair's ``FindConnectedRegions``, ``fiji/VIB-lib`` at 04a351d,
   ``src/main/java/util/FindConnectedRegions.java`` 204-215, 398-411, 543-573, 611: pixels with
   value > 0, no diagonals, every region kept). The gold labels' own ids are never used and the
   gold is *not* thinned.
3. **Thinning of the proposal** (:func:`thin_proposal`; ``RandError.java`` 1049-1051,
   ``WatershedTransform2D.java`` 148-381): the classic Vincent-Soille watershed by flooding,
   4-connectivity, on the binary image "membrane = 255, cell = 0". Level 0 first: every
   4-connected component of cell pixels becomes a basin. Level 255: the membrane pixels that
   touch a basin are queued (scan order: x outer, y inner - the tie order of the sorted pixel
   list, ``PixelRecord.java`` 99-107, ``WatershedTransform2D.java`` 406-411), then the queue is
   flooded breadth-first: a queued pixel takes the label of its labelled 4-neighbours
   (neighbour order left, up, right, down, ``Neighborhood2DC4.java`` 38-41) and becomes a dam
   (label 0) where two different labels meet, with the algorithm's ``flag`` rule for pixels
   next to a dam (``WatershedTransform2D.java`` 266-311). Each membrane pixel thus joins the
   cell that its flood reaches first - the nearest one - and the 1-pixel dams between
   different cells stay. Membrane left unreached becomes a basin of its own (lines 313-357);
   that happens only in a slice without any cell pixel, which becomes one basin.
4. **Foreground restriction and contingency table** (``RandError.java`` 1831-1886,
   ``VariationOfInformation.java`` 1329-1385): only the n pixels inside gold cells count. With
   c_ij the number of them in gold segment i and thinned-proposal basin j >= 1, C0 the number
   of them on dams (j = 0), a_i = sum_j c_ij + c_i0 and b_j = sum_i c_ij: **each dam pixel is a
   segment of its own** (the ``+ sum(p_i0)/n`` terms of lines 1895-1907 and the
   ``- aux * log(n)`` terms of lines 1398 and 1408).
5. **V_Rand** (``RandError.java`` 1888-1926 and ``ClassificationStatistics.java`` 99-112),
   with p = c/n::

       sumAB2 = sum_ij p_ij^2 + C0/n^2,  sumA2 = sum_i a_i^2/n^2,  sumB2 = sum_j b_j^2/n^2 + C0/n^2
       precision = sumAB2 / sumB2 (1 when there is no false positive pair),
       recall = sumAB2 / sumA2 (1 when there is no false negative pair),
       V_Rand = 2 * precision * recall / (precision + recall) = 2 sumAB2 / (sumA2 + sumB2),

   i.e. the Rand F-score of ordered pixel pairs (self-pairs included, the "N^2 normalisation").
   Merges lower the precision, splits the recall.
6. **V_Info** (``VariationOfInformation.java`` 1387-1441), with natural logarithms,
   H(A) and H(B) the entropies of the gold and proposal segment sizes, H(A, B) the joint
   entropy (dam pixels singletons in B and in the joint) and I = H(A) + H(B) - H(A, B)::

       precision = (H(A) - H(A|B)) / H(A) = I / H(A),   recall = (H(B) - H(B|A)) / H(B) = I / H(B),
       V_Info = 2 * precision * recall / (precision + recall) = 2 I / (H(A) + H(B)),

   except: H(A) = 0 (one gold segment) gives precision 0, recall 1; H(B) = 0 (one proposal
   segment, no dam pixel) gives precision 1, recall 0 - both V_Info = 0 (lines 1429-1438);
   precision + recall = 0 gives NaN (0/0 in Java).
7. A slice without gold cell pixels scores 0 for both (Fiji's NaN arithmetic: the Rand F-score
   stays at its initial 0, ``ClassificationStatistics.java`` 111-112; V_Info takes the H(A) = 0
   branch).

Slices and thresholds:

* **Slices**: the score at a threshold is the **mean of the per-slice scores** (macro average;
  ``RandError.java`` 364-421 with ``perSliceAverage = true`` as the script passes it,
  ``VariationOfInformation.java`` 959-999), not a score of pooled counts.
* **Thresholds**: the Java loop ``for (th = 0.0; th <= 1.0; th += 0.1)`` (``RandError.java``
  628, ``VariationOfInformation.java`` 830) - 11 values ``0, 0.1, 0.2, 0.30000000000000004,
  ..., 0.9999999999999999`` built by repeated addition (:func:`unet_repro.metrics.isbi.
  thresholds`).
* **Result**: the maximum over the thresholds, starting from 0 with a strict ``>`` (NaN values
  never win; ``RandError.java`` 2135-2154, ``VariationOfInformation.java`` 713-729). The
  threshold reported is the first that reaches it.

Differences from the Java evaluation, by design: counts are exact integers and the entropies
are evaluated as ``log n - sum(c log c) / n`` rather than from the rescaled doubles, so values
agree to rounding (about 1e-15); Fiji stores basin ids in 16 bits (``convertToShortProcessor``),
which would only matter for slices with more than 65535 basins.

References
----------
.. [1] Arganda-Carreras I. et al., "Crowdsourcing the creation of image segmentation algorithms
   for connectomics", Front. Neuroanat. 9:142, 2015.
.. [2] "Segmentation evaluation after border thinning - Script", ImageJ wiki
   (``imagej/imagej.github.io``, ``Segmentation_evaluation_after_border_thinning_-_Script.mw``).
.. [3] Arganda-Carreras I. et al., "Trainable Weka Segmentation: a machine learning tool for
   microscopy pixel classification", Bioinformatics 33(15):2424-2426, 2017.
.. [4] Vincent L., Soille P., "Watersheds in digital spaces: an efficient algorithm based on
   immersion simulations", IEEE TPAMI 13(6):583-598, 1991.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np
from scipy import ndimage as ndi

from unet_repro.metrics.isbi import _as_stacks, _default

__all__ = [
    "METRICS",
    "ScoreResult",
    "SliceScores",
    "gold_segments",
    "slice_scores",
    "thin_proposal",
    "thinned_scores",
    "vinfo_thinned",
    "vrand_thinned",
]

#: Names of the two leaderboard metrics, in the leaderboard's order.
METRICS = ("vrand_thinned", "vinfo_thinned")

_CROSS = ndi.generate_binary_structure(2, 1)

# states of the watershed labels (WatershedTransform2D.java 71-78)
_MASK = -2
_WSHED = 0
_INIT = -1
_INQUEUE = -3


# --------------------------------------------------------------------------------------------
# result containers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreResult:
    """Per-threshold values of one thinned ISBI score and its best (maximal) value.

    Unlike :class:`unet_repro.metrics.isbi.MetricResult` (errors, lower is better) these are
    scores in [0, 1], higher is better; the field names are the same, so
    :func:`unet_repro.metrics.isbi.score_rows` accepts them.

    Attributes
    ----------
    name : str
        ``"vrand_thinned"`` or ``"vinfo_thinned"``.
    per_threshold : dict of float to float
        Mean over slices of the per-slice score, at each threshold, in threshold order.
    best : float
        The reported value: ``max(0, max_th per_threshold[th])`` (NaN never wins).
    best_threshold : float
        The first threshold that reaches ``best`` (the first threshold when none exceeds 0).
    details : dict of str to dict of float to float
        ``precision`` and ``recall``: slice means of the per-slice values (the score is *not*
        their F-score); for V_Rand also ``pooled_f``, the F-score of TP, FP, FN summed over the
        slices (Fiji's ``perSliceAverage = false`` variant, not used by the challenge).
    per_slice : dict of float to tuple of float
        The per-slice scores at each threshold.
    """

    name: str
    per_threshold: dict[float, float]
    best: float
    best_threshold: float
    details: dict[str, dict[float, float]] = field(default_factory=dict)
    per_slice: dict[float, tuple[float, ...]] = field(default_factory=dict)


class SliceScores(NamedTuple):
    """Scores of one slice at one threshold (see the module docstring for the formulas)."""

    n: int  #: number of gold cell pixels
    v_rand: float
    rand_precision: float
    rand_recall: float
    rand_tp: int  #: n^2 * sumAB2 (ordered pairs, exact)
    rand_fp: int  #: n^2 * sumB2 - TP
    rand_fn: int  #: n^2 * sumA2 - TP
    v_info: float
    info_precision: float
    info_recall: float


# --------------------------------------------------------------------------------------------
# thinning: binary Vincent-Soille watershed
# --------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _neighbour(k, t, x, y, w, h):  # pragma: no cover - compiled
    """Flat index of neighbour t (0 left, 1 up, 2 right, 3 down) of pixel k, or -1 outside."""
    if t == 0:
        return k - 1 if x > 0 else -1
    if t == 1:
        return k - w if y > 0 else -1
    if t == 2:
        return k + 1 if x < w - 1 else -1
    return k + w if y < h - 1 else -1


@numba.njit(cache=True)
def _flood_fill(lab, k0, value, match, queue, w, h):  # pragma: no cover - compiled
    """Give ``value`` to the 4-connected pixels with ``lab == match`` reachable from ``k0``."""
    lab[k0] = value
    head = 0
    tail = 1
    queue[0] = k0
    while head < tail:
        k = queue[head]
        head += 1
        x = k % w
        y = k // w
        for t in range(4):
            nb = _neighbour(k, t, x, y, w, h)
            if nb >= 0 and lab[nb] == match:
                lab[nb] = value
                queue[tail] = nb
                tail += 1


@numba.njit(cache=True)
def _watershed_binary(cell):  # pragma: no cover - compiled
    """Watershed labels of a binary image (cell = level 0, membrane = level 255).

    ``cell`` is a C-ordered (H, W) uint8 array. Returns flat int32 labels (0 = dam) and the
    number of basins. Basins are numbered as in Fiji: cell components in scan order (x outer,
    y inner), then membrane-only components in the same order.
    """
    h, w = cell.shape
    n = h * w
    flat = cell.ravel()
    lab = np.full(n, _INIT, np.int32)
    queue = np.empty(n, np.int64)
    current = 0
    # level 0: every cell component is a new minimum
    for k in range(n):
        if flat[k]:
            lab[k] = _MASK
    for x in range(w):
        for y in range(h):
            k = y * w + x
            if lab[k] == _MASK:
                current += 1
                _flood_fill(lab, k, current, _MASK, queue, w, h)
    # level 255: queue the membrane pixels next to a basin, in scan order
    tail = 0
    for x in range(w):
        for y in range(h):
            k = y * w + x
            if flat[k]:
                continue
            lab[k] = _MASK
            for t in range(4):
                nb = _neighbour(k, t, x, y, w, h)
                if nb >= 0 and lab[nb] >= _WSHED:
                    lab[k] = _INQUEUE
                    queue[tail] = k
                    tail += 1
                    break
    # breadth-first flooding with dams
    head = 0
    flag = False
    while head < tail:
        k = queue[head]
        head += 1
        x = k % w
        y = k // w
        for t in range(4):
            nb = _neighbour(k, t, x, y, w, h)
            if nb < 0:
                continue
            v = lab[nb]
            if v > 0:
                cur = lab[k]
                if cur == _INQUEUE or (cur == _WSHED and flag):
                    lab[k] = v
                elif cur > 0 and cur != v:
                    lab[k] = _WSHED
                    flag = False
            elif v == _WSHED:
                if lab[k] == _INQUEUE:
                    lab[k] = _WSHED
                    flag = True
            elif v == _MASK:
                lab[nb] = _INQUEUE
                queue[tail] = nb
                tail += 1
    # membrane components that no basin reached are new minima at level 255
    for x in range(w):
        for y in range(h):
            k = y * w + x
            if lab[k] == _MASK:
                current += 1
                _flood_fill(lab, k, current, _MASK, queue, w, h)
    return lab, current


def thin_proposal(proposal: np.ndarray, th: float) -> tuple[np.ndarray, int]:
    """Binarise one proposal slice at ``th`` and thin its membranes by watershed flooding.

    Cell pixels are ``p > th`` (``p`` as float32, compared in double precision). Each
    4-connected component of cell pixels is a basin; the membrane pixels are flooded
    breadth-first from the basins (4-connectivity) and those where two basins meet become
    1-pixel dams. See the module docstring, step 3, for the exact rule and the Fiji lines.

    Parameters
    ----------
    proposal : ndarray, (H, W)
        Cell probability in [0, 1].
    th : float
        Threshold.

    Returns
    -------
    labels : ndarray of int32, (H, W)
        Basin ids 1..n_basins, 0 on the dams.
    n_basins : int
    """
    p = np.asarray(proposal, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"proposal must be one (H, W) slice, got shape {p.shape}")
    cell = np.ascontiguousarray(p.astype(np.float64) > th, dtype=np.uint8)
    lab, n = _watershed_binary(cell)
    return lab.reshape(p.shape), int(n)


def gold_segments(cell: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of the gold cell pixels of one slice (0 = membrane).

    Parameters
    ----------
    cell : ndarray of bool, (H, W)

    Returns
    -------
    labels : ndarray of int32, (H, W)
    n_segments : int
    """
    lab, n = ndi.label(np.asarray(cell, dtype=bool), structure=_CROSS)
    return lab.astype(np.int32, copy=False), int(n)


# --------------------------------------------------------------------------------------------
# per-slice scores
# --------------------------------------------------------------------------------------------
def _xlogx_sum(c: np.ndarray) -> float:
    c = c[c > 1].astype(np.float64)
    return float(np.dot(c, np.log(c)))


def _f(p: float, r: float) -> float:
    return 2.0 * p * r / (p + r)


def _scores_from_table(
    c_in: np.ndarray,
    c0: int,
    a: np.ndarray,
    b: np.ndarray,
    n: int,
    sum_a2: int | None = None,
    s_a: float | None = None,
) -> SliceScores:
    """Scores of one slice from its contingency table restricted to the gold cells.

    ``c_in``: the non-zero c_ij with j >= 1; ``c0``: number of dam pixels (j = 0); ``a``: gold
    segment sizes a_i; ``b``: basin sizes b_j (j >= 1); ``n``: number of gold cell pixels.
    ``sum_a2`` and ``s_a`` (sum a_i^2 and sum a_i log a_i) may be passed when already known.
    """
    if n == 0:
        return SliceScores(0, 0.0, np.nan, np.nan, 0, 0, 0, 0.0, 0.0, 1.0)
    # V_Rand from exact ordered-pair counts
    c_in = c_in.astype(np.int64, copy=False)
    tp = int(np.dot(c_in, c_in)) + c0
    if sum_a2 is None:
        sum_a2 = int(np.dot(a, a))
    sum_b2 = int(np.dot(b, b)) + c0
    fp, fn = sum_b2 - tp, sum_a2 - tp
    r_prec = 1.0 if fp == 0 else tp / sum_b2
    r_rec = 1.0 if fn == 0 else tp / sum_a2
    v_rand = _f(r_prec, r_rec) if r_prec + r_rec > 0 else 0.0
    # V_Info: H = log n - sum(c log c) / n; dam pixels are singletons (1 log 1 = 0)
    if s_a is None:
        s_a = _xlogx_sum(a)
    s_b = _xlogx_sum(b)
    log_n = float(np.log(n))
    h_a = log_n - s_a / n
    h_b = log_n - s_b / n
    mi = log_n + (_xlogx_sum(c_in) - s_a - s_b) / n
    if int(np.count_nonzero(b)) + c0 == 1:  # H(B) = 0; Fiji tests it last, so it wins
        i_prec, i_rec = 1.0, 0.0
    elif int(np.count_nonzero(a)) == 1:  # H(A) = 0
        i_prec, i_rec = 0.0, 1.0
    else:
        i_prec, i_rec = mi / h_a, mi / h_b
    v_info = _f(i_prec, i_rec) if i_prec + i_rec != 0 else float("nan")
    return SliceScores(n, v_rand, r_prec, r_rec, tp, fp, fn, v_info, i_prec, i_rec)


def _table(g: np.ndarray, n_g: int, q: np.ndarray, n_q: int) -> tuple[np.ndarray, int]:
    """Non-zero counts c_ij with j >= 1 and the dam count C0 of label vectors g (>= 1), q."""
    size = (n_g + 1) * (n_q + 1)
    key = g.astype(np.int64) * (n_q + 1) + q
    if size <= 8 * g.size + (1 << 16):
        c = np.bincount(key, minlength=size).reshape(n_g + 1, n_q + 1)
        c0 = int(c[:, 0].sum())
        c_in = c[:, 1:]
        return c_in[c_in > 0], c0
    keys, c = np.unique(key, return_counts=True)
    dam = keys % (n_q + 1) == 0
    return c[~dam], int(c[dam].sum())


def slice_scores(gold_labels: np.ndarray, prop_labels: np.ndarray) -> SliceScores:
    """V_Rand and V_Info of one slice from gold segments and thinned-proposal basins.

    Parameters
    ----------
    gold_labels : ndarray of int, (H, W)
        Gold segment ids, 0 = outside the gold cells (e.g. :func:`gold_segments`).
    prop_labels : ndarray of int, (H, W)
        Thinned proposal basin ids, 0 = dam (e.g. :func:`thin_proposal`).

    Returns
    -------
    SliceScores
    """
    gold_labels = np.asarray(gold_labels)
    prop_labels = np.asarray(prop_labels)
    if gold_labels.shape != prop_labels.shape:
        raise ValueError(f"shapes {gold_labels.shape} and {prop_labels.shape} differ")
    fg = gold_labels > 0
    g = np.unique(gold_labels[fg], return_inverse=True)[1].reshape(-1) + 1
    uq, q = np.unique(prop_labels[fg], return_inverse=True)
    q = q.reshape(-1)
    if uq.size and uq[0] < 0:
        raise ValueError("prop_labels must be >= 0 (0 = dam)")
    if not (uq.size and uq[0] == 0):
        q = q + 1  # no dam pixel inside the gold cells: ids 1..
    n_g = int(g.max()) if g.size else 0
    n_q = int(q.max()) if q.size else 0
    c_in, c0 = _table(g, n_g, q, n_q)
    a = np.bincount(g, minlength=n_g + 1)[1:]
    b = np.bincount(q, minlength=n_q + 1)[1:]
    return _scores_from_table(c_in, c0, a, b, int(g.size))


# --------------------------------------------------------------------------------------------
# the threshold sweep
# --------------------------------------------------------------------------------------------
def _best(values: list[float], ths: list[float]) -> tuple[float, float]:
    """Fiji's maximum: start at 0, keep a value only when strictly larger (NaN never is)."""
    best, best_th = 0.0, ths[0]
    for th, v in zip(ths, values, strict=True):
        if v > best:
            best, best_th = float(v), th
    return best, best_th


def thinned_scores(
    gt: np.ndarray,
    proposal: np.ndarray,
    thresholds: list[float] | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, ScoreResult]:
    """V_Rand(thinned) and V_Info(thinned) of a stack, as the ISBI 2012 leaderboard computes them.

    For each threshold and slice the proposal is thinned (:func:`thin_proposal`), compared with
    the gold segments inside the gold cells (:func:`slice_scores`), and the per-slice scores
    are averaged over the slices; the result is the maximum over the thresholds. The thinning
    is shared by the two metrics.

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Gold labels, cell = ``gt > 0`` (ids are not used: segments are 4-connected components).
    proposal : ndarray, same shape
        Cell (non-membrane) probability in [0, 1].
    thresholds : list of float, optional
        Defaults to the challenge's ``thresholds(0.0, 1.0, 0.1)`` (11 values).
    metrics : tuple of str
        Which of :data:`METRICS` to return.

    Returns
    -------
    dict of str to ScoreResult
        Keyed by ``"vrand_thinned"`` and/or ``"vinfo_thinned"``.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got {metrics}")
    cell, p = _as_stacks(gt, proposal)
    ths = _default(thresholds, 0.0, 1.0)  # the challenge's 11 values unless given

    # per slice, independent of the threshold: gold ids inside the gold cells and a_i terms
    gold = []
    for c in cell:
        lab, n_g = gold_segments(c)
        flat = lab.reshape(-1)
        idx = np.flatnonzero(flat)
        g = flat[idx].astype(np.int64)
        a = np.bincount(g, minlength=n_g + 1)[1:]
        gold.append((idx, g, n_g, a, int(np.dot(a, a)), _xlogx_sum(a)))

    per_slice: dict[float, list[SliceScores]] = {}
    for th in ths:
        rows = []
        for z in range(p.shape[0]):
            idx, g, n_g, a, sum_a2, s_a = gold[z]
            if idx.size == 0:
                rows.append(_scores_from_table(np.zeros(0, np.int64), 0, a, a, 0))
                continue
            lab, n_q = thin_proposal(p[z], th)
            q = lab.reshape(-1)[idx]
            c_in, c0 = _table(g, n_g, q, n_q)
            b = np.bincount(q, minlength=n_q + 1)[1:]
            rows.append(_scores_from_table(c_in, c0, a, b, int(idx.size), sum_a2, s_a))
        per_slice[th] = rows

    out = {}
    for name in metrics:
        key = "v_rand" if name == "vrand_thinned" else "v_info"
        pre = "rand" if name == "vrand_thinned" else "info"
        vals = {th: tuple(getattr(s, key) for s in rows) for th, rows in per_slice.items()}
        per = {th: float(np.mean(v)) for th, v in vals.items()}
        details = {
            "precision": {
                th: float(np.mean([getattr(s, pre + "_precision") for s in rows]))
                for th, rows in per_slice.items()
            },
            "recall": {
                th: float(np.mean([getattr(s, pre + "_recall") for s in rows]))
                for th, rows in per_slice.items()
            },
        }
        if name == "vrand_thinned":
            details["pooled_f"] = {th: _pooled_rand_f(rows) for th, rows in per_slice.items()}
        best, best_th = _best([per[th] for th in ths], ths)
        out[name] = ScoreResult(
            name=name,
            per_threshold=per,
            best=best,
            best_threshold=best_th,
            details=details,
            per_slice=vals,
        )
    return out


def _pooled_rand_f(rows: list[SliceScores]) -> float:
    tp = sum(s.rand_tp for s in rows)
    fp = sum(s.rand_fp for s in rows)
    fn = sum(s.rand_fn for s in rows)
    if tp + fp + fn == 0:
        return 0.0
    prec = 1.0 if fp == 0 else tp / (tp + fp)
    rec = 1.0 if fn == 0 else tp / (tp + fn)
    return _f(prec, rec) if prec + rec > 0 else 0.0


def vrand_thinned(
    gt: np.ndarray, proposal: np.ndarray, thresholds: list[float] | None = None
) -> ScoreResult:
    """Foreground-restricted Rand scoring after border thinning, V_Rand(thinned).

    Fiji ``RandError.getMaximalVRandAfterThinning(0.0, 1.0, 0.1, true)``; see
    :func:`thinned_scores` and the module docstring.

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Gold labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    thresholds : list of float, optional
        Defaults to ``thresholds(0.0, 1.0, 0.1)`` (11 values).

    Returns
    -------
    ScoreResult
    """
    return thinned_scores(gt, proposal, thresholds, metrics=("vrand_thinned",))["vrand_thinned"]


def vinfo_thinned(
    gt: np.ndarray, proposal: np.ndarray, thresholds: list[float] | None = None
) -> ScoreResult:
    """Foreground-restricted information theoretic scoring after border thinning, V_Info(thinned).

    Fiji ``VariationOfInformation.getMaximalVInfoAfterThinning(0.0, 1.0, 0.1)``; see
    :func:`thinned_scores` and the module docstring.

    Parameters
    ----------
    gt : ndarray, (H, W) or (N, H, W)
        Gold labels, cell = ``gt > 0``.
    proposal : ndarray, same shape
        Cell probability in [0, 1].
    thresholds : list of float, optional
        Defaults to ``thresholds(0.0, 1.0, 0.1)`` (11 values).

    Returns
    -------
    ScoreResult
    """
    return thinned_scores(gt, proposal, thresholds, metrics=("vinfo_thinned",))["vinfo_thinned"]
