"""Pixel-wise loss weights of the U-Net paper (Ronneberger et al. 2015, section 3).

The paper pre-computes a weight map for every ground-truth segmentation,

.. math::

    w(x) = w_c(x) + w_0 \\exp\\left(-\\frac{(d_1(x) + d_2(x))^2}{2\\sigma^2}\\right),

with :math:`w_0 = 10` and :math:`\\sigma \\approx 5` pixels, where :math:`w_c` balances the class
frequencies and :math:`d_1`, :math:`d_2` are the distances to the border of the nearest and the
second-nearest cell. Touching cells are separated in the training target by a background border
obtained with morphological operations (paper figure 3c), and the border term gives these thin
separations a large weight (figure 3d).

Conventions chosen here (the paper leaves them open):

* Instances are integer label images, 0 = background. The **separation borders** are the
  instance pixels that have a *different* non-zero label among their 4 neighbours (a symmetric
  rule, so both sides of a contact are removed: the border is 2 pixels wide). After removing
  them no two different instances are 4-adjacent, which matches the 4-connected labelling used
  for the ISBI data (:func:`isbi_instances`); on ISBI instances the separation borders are
  therefore empty and the training target equals ``labels > 0``.
* :math:`d_i(x)` is the Euclidean distance from the centre of pixel :math:`x` to the centre of
  the nearest pixel of instance :math:`i` **in the training target** (instance pixels minus the
  separation borders), i.e. ``scipy.ndimage.distance_transform_edt(target_labels != i)``.
  For a background pixel this is the distance to the cell's border.
* The border term is added on **background pixels of the training target only** (as in the
  successor paper, Falk et al., Nat. Methods 2019); it is 0 when fewer than two instances remain.
* :math:`w_c` is computed per image (see :func:`class_weights`).
* **Partially annotated images** (the paper's CTC frames): cells the gold truth left out get
  an *ignore region* (:func:`unannotated_region`) where :math:`w(x) = 0`, so they contribute
  nothing to the loss. :math:`w_c` is then computed over the annotated (not ignored) pixels
  only, and the border term is computed from the annotated instances alone (an ignored cell's
  outline is not known, so it is neither a nearest nor a second-nearest cell); inside the
  ignore region the border term is dropped with the rest of the weight. Weight 0 in a saved
  weight map therefore means "ignored".

Fast algorithm (:func:`weight_map`): exact :math:`d_1, d_2` for all instances at once, by a
separable scheme that carries the two nearest *distinct* labels instead of one distance
(numba, serial, O(pixels x scan length)):

1. for every column, a linear down/up scan gives at each pixel the two nearest distinct labels
   in that column and their squared vertical distances :math:`g^2`;
2. for every background pixel, the columns of its row are visited outwards
   (``dx = 0, ±1, ±2, ...``) and the candidates :math:`g^2 + dx^2` are merged into a per-label
   top-2. The scan stops as soon as :math:`(|dx|+1)^2` reaches the current second-best squared
   distance (the top-2 is then final and exact), or when a lower bound on :math:`d_1 + d_2`
   exceeds the truncation radius :math:`R = \\sigma\\sqrt{2\\ln(w_0/\\varepsilon)}`
   (:func:`truncation_radius`; 28.4 px for :math:`w_0=10, \\sigma=5, \\varepsilon=10^{-6}`).
   Pixels in 16x16 tiles with fewer than two distinct instances within :math:`R` are skipped.

Keeping two distinct labels per column in step 1 is enough: if two other labels were nearer
in the column that realises :math:`d_2`, both would be nearer to :math:`x` than the
second-nearest instance. The fast map therefore equals
:math:`w_c + w_0 \\exp(-(d_1+d_2)^2/2\\sigma^2)\\,[d_1 + d_2 \\le R]` with exact distances: it
differs from :func:`weight_map_bruteforce` (no truncation) by less than :math:`\\varepsilon`
(the dropped tail), ``eps=0`` removes the truncation.

References
----------
O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, section 3 and figure 3.
T. Falk et al., "U-Net: deep learning for cell counting, detection, and morphometry",
Nature Methods 16, 67-70 (2019).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import ndimage as ndi

__all__ = [
    "isbi_instances",
    "separation_borders",
    "training_target",
    "core_instances",
    "class_weights",
    "weight_map",
    "weight_map_bruteforce",
    "weight_map_stack",
    "truncation_radius",
    "unannotated_region",
]

_CROSS = ndi.generate_binary_structure(2, 1)  # 4-neighbourhood (plus the centre)
_FAR32 = np.int32(np.iinfo(np.int32).max)  # "no candidate" squared distance (column step)
_TILE = 16  # tile size (pixels) of the skip test of the fast kernel
_MAX_SIDE = 46340  # squared column distances must fit in int32


def _check_instances(instances: np.ndarray) -> np.ndarray:
    arr = np.asarray(instances)
    if arr.ndim != 2:
        raise ValueError(f"instances must be a 2-D label image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"instances must have an integer dtype, got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError("instances must be non-negative (0 = background)")
    return arr


def _check_params(w0: float, sigma: float) -> None:
    if not (np.isfinite(w0) and w0 >= 0):
        raise ValueError(f"w0 must be finite and >= 0, got {w0}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma}")


def isbi_instances(labels: np.ndarray) -> np.ndarray:
    """Cell instances of an ISBI 2012 label slice.

    Parameters
    ----------
    labels : (H, W) array
        ISBI ground truth, non-zero (255) = cell interior, 0 = membrane.

    Returns
    -------
    (H, W) int32 array
        The 4-connected components of ``labels > 0``, numbered 1..n; 0 on membranes.
    """
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D image, got shape {arr.shape}")
    out, _ = ndi.label(arr > 0, structure=_CROSS, output=np.int32)
    return out


def separation_borders(instances: np.ndarray) -> np.ndarray:
    """Instance pixels that touch a different instance (4-neighbourhood).

    A pixel of instance :math:`l` is a separation border pixel when one of its 4 neighbours
    belongs to another instance :math:`m \\ne l`, :math:`m > 0`. This is the morphological
    criterion "grey dilation of the label image with the 4-neighbourhood cross exceeds
    :math:`l`, or the grey erosion (background ignored) is below :math:`l`", evaluated with
    four shifted comparisons instead of two rank filters (same result, about 8x faster).
    The rule is symmetric, so both sides of a contact are marked (a 2-pixel-wide border) and
    the result does not depend on the numbering of the instances; the image edge creates no
    borders. Afterwards no two different instances are 4-adjacent.

    Parameters
    ----------
    instances : (H, W) integer array
        Instance labels, 0 = background.

    Returns
    -------
    (H, W) bool array
        True on the separation borders (always a subset of ``instances > 0``).
    """
    lab = _check_instances(instances)
    fg = lab > 0
    border = np.zeros(lab.shape, dtype=bool)
    for axis in (0, 1):
        lo = [slice(None), slice(None)]
        hi = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        touch = (lab[lo] != lab[hi]) & fg[lo] & fg[hi]
        border[lo] |= touch
        border[hi] |= touch
    return border


def training_target(instances: np.ndarray) -> np.ndarray:
    """Binary training target with touching instances split by background (paper fig. 3c).

    Parameters
    ----------
    instances : (H, W) integer array
        Instance labels, 0 = background.

    Returns
    -------
    (H, W) uint8 array
        1 on ``instances > 0`` minus :func:`separation_borders`, 0 elsewhere.
    """
    lab = _check_instances(instances)
    return ((lab > 0) & ~separation_borders(lab)).astype(np.uint8)


def core_instances(instances: np.ndarray, erosion: int) -> tuple[np.ndarray, np.ndarray]:
    """Every instance shrunk to its core: the pixels at least ``erosion`` px inside it.

    Beyond the paper (config ``weights.core_erosion``). A pixel of instance :math:`l` stays
    when every pixel within Euclidean distance ``erosion`` of it (a disk) belongs to
    :math:`l` as well; the image edge does not erode (the disk is clipped by replicating the
    edge). The ring taken off every cell becomes background in the training target, so the
    network learns a cell's rim, not only the 2-px contacts between touching cells
    (:func:`separation_borders`), as what separates instances; touching cores then lie at least
    2 ``erosion`` px apart and the post-processing grows the instances back
    (``expand`` of :func:`unet_repro.postprocess.segment`). ``erosion = 0`` returns the
    instances unchanged (the paper's target).

    Returns
    -------
    core : (H, W) array, the dtype of ``instances``
        The shrunk instances (same labels).
    vanished : (H, W) bool array
        The pixels of instances thinner than 2 ``erosion`` + 1 px, which have no
        core: the caller should ignore them rather than train them as background.
    """
    lab = _check_instances(instances)
    k = int(erosion)
    if k != erosion or k < 0:
        raise ValueError(f"core erosion must be a whole number of pixels >= 0, got {erosion}")
    if k == 0 or not lab.any():
        return lab.copy(), np.zeros(lab.shape, dtype=bool)
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    disk = yy**2 + xx**2 <= k**2
    lo = ndi.grey_erosion(lab, footprint=disk, mode="nearest")
    hi = ndi.grey_dilation(lab, footprint=disk, mode="nearest")
    core = np.where((lo == lab) & (hi == lab), lab, 0).astype(lab.dtype)
    vanished = (lab > 0) & ~np.isin(lab, np.unique(core))
    return core, vanished


def class_weights(target: np.ndarray, mode: str = "inverse_frequency") -> np.ndarray:
    """Class-balancing weight map :math:`w_c(x)`.

    Parameters
    ----------
    target : (H, W) integer array
        Class of every pixel (0 = background, 1 = cell; more classes are allowed).
    mode : {"inverse_frequency", "none"}
        ``"inverse_frequency"``: :math:`w_c(x) = N / (K N_{c(x)})` with :math:`N` the number of
        pixels of the image, :math:`N_c` the number of pixels of class :math:`c` and :math:`K`
        the number of classes *present* in the image. Every present class then has the same
        weighted total :math:`N/K` and the mean weight is 1; an absent class simply has no
        pixel (an image with a single class gets all ones). ``"none"``: all ones.

    Returns
    -------
    (H, W) float32 array
    """
    t = np.asarray(target)
    if not (np.issubdtype(t.dtype, np.integer) or t.dtype == bool):
        raise ValueError(f"target must be an integer class map, got dtype {t.dtype}")
    if t.size and t.min() < 0:
        raise ValueError("target classes must be non-negative")
    t = t.astype(np.int64, copy=False)
    counts = np.bincount(t.ravel()) if t.size else np.zeros(1, dtype=np.int64)
    return _class_weight_table(counts, mode)[t].astype(np.float32)


def truncation_radius(w0: float = 10.0, sigma: float = 5.0, eps: float = 1e-6) -> float:
    """Radius :math:`R` beyond which the border term is below ``eps``.

    :math:`w_0 \\exp(-(d_1+d_2)^2 / 2\\sigma^2) < \\varepsilon` whenever
    :math:`d_1 + d_2 > R = \\sigma \\sqrt{2 \\ln(w_0/\\varepsilon)}`; ``inf`` for ``eps=0`` and
    0 when ``w0 <= eps``.
    """
    _check_params(w0, sigma)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if eps == 0:
        return math.inf
    if w0 <= eps:
        return 0.0
    return sigma * math.sqrt(2.0 * math.log(w0 / eps))


@njit(cache=True)
def _insert(lab, val, a, va, b, vb):
    """Merge candidate (lab, val) into the per-label top-2 (a, va) <= (b, vb), a != b."""
    if lab == a:
        if val < va:
            va = val
    elif lab == b:
        if val < vb:
            vb = val
            if vb < va:
                a, va, b, vb = b, vb, a, va
    elif val < va:
        b, vb = a, va
        a, va = lab, val
    elif val < vb:
        b, vb = lab, val
    return a, va, b, vb


@njit(cache=True)
def _column_top2(lab):
    """Step 1: per pixel, the two nearest distinct labels in its column (label 0 = none).

    Returns ``l1, s1, l2, s2`` (int32): labels and squared vertical distances, ``s1 <= s2``.
    Two linear scans (down, then up) carry per column the last label seen and the last
    *different* label seen; the upward scan merges its pair into the downward one.
    """
    h, w = lab.shape
    l1 = np.zeros((h, w), np.int32)
    s1 = np.zeros((h, w), np.int32)
    l2 = np.zeros((h, w), np.int32)
    s2 = np.zeros((h, w), np.int32)
    a_lab = np.zeros(w, np.int32)
    a_pos = np.zeros(w, np.int32)
    b_lab = np.zeros(w, np.int32)
    b_pos = np.zeros(w, np.int32)
    for y in range(h):  # downward scan: labels at or above y
        for x in range(w):
            v = lab[y, x]
            if v != 0:
                if v != a_lab[x]:
                    b_lab[x] = a_lab[x]
                    b_pos[x] = a_pos[x]
                    a_lab[x] = v
                a_pos[x] = y
            d = y - a_pos[x]
            l1[y, x] = a_lab[x]
            s1[y, x] = d * d
            d = y - b_pos[x]
            l2[y, x] = b_lab[x]
            s2[y, x] = d * d
    a_lab[:] = 0
    b_lab[:] = 0
    for y in range(h - 1, -1, -1):  # upward scan: labels at or below y, merged in
        for x in range(w):
            v = lab[y, x]
            if v != 0:
                if v != a_lab[x]:
                    b_lab[x] = a_lab[x]
                    b_pos[x] = a_pos[x]
                    a_lab[x] = v
                a_pos[x] = y
            if a_lab[x] == 0:
                continue
            a, va, b, vb = l1[y, x], s1[y, x], l2[y, x], s2[y, x]
            if a == 0:
                va = _FAR32
            if b == 0:
                vb = _FAR32
            d = a_pos[x] - y
            a, va, b, vb = _insert(a_lab[x], np.int32(d * d), a, va, b, vb)
            if b_lab[x] != 0:
                d = b_pos[x] - y
                a, va, b, vb = _insert(b_lab[x], np.int32(d * d), a, va, b, vb)
            l1[y, x], s1[y, x], l2[y, x], s2[y, x] = a, va, b, vb
    return l1, s1, l2, s2


@njit(cache=True)
def _active_tiles(lab, tile, reach):
    """Tiles whose pixels may have two distinct labels within ``reach`` tiles (Chebyshev).

    A pixel whose nearest two instances satisfy :math:`d_1 + d_2 \\le R` has both instances
    within :math:`R`, i.e. within ``reach = ceil(R / tile)`` tiles of its own tile; tiles where
    fewer than two distinct labels occur in that neighbourhood can be skipped.
    """
    h, w = lab.shape
    th = (h + tile - 1) // tile
    tw = (w + tile - 1) // tile
    first = np.zeros((th, tw), np.int32)
    multi = np.zeros((th, tw), np.bool_)
    for y in range(h):
        for x in range(w):
            v = lab[y, x]
            if v != 0:
                ty = y // tile
                tx = x // tile
                if first[ty, tx] == 0:
                    first[ty, tx] = v
                elif first[ty, tx] != v:
                    multi[ty, tx] = True
    active = np.zeros((th, tw), np.bool_)
    for ty in range(th):
        for tx in range(tw):
            seen = 0
            for uy in range(max(ty - reach, 0), min(ty + reach + 1, th)):
                for ux in range(max(tx - reach, 0), min(tx + reach + 1, tw)):
                    if multi[uy, ux]:
                        active[ty, tx] = True
                    v = first[uy, ux]
                    if v != 0:
                        if seen == 0:
                            seen = v
                        elif seen != v:
                            active[ty, tx] = True
    return active


@njit(cache=True)
def _weight_kernel(lab, wc_bg, wc_fg, w0, sigma, radius, out):
    """Write w into ``out``: ``wc_fg`` on instance pixels, ``wc_bg`` + border term elsewhere.

    Step 2 of the module docstring: for each background pixel the columns are visited
    outwards; the squared distance of a column's candidate is ``s + dx**2``.
    """
    h, w = lab.shape
    far = np.int64(1) << 62
    l1, s1, l2, s2 = _column_top2(lab)
    if radius < np.inf:
        reach = int(math.ceil(radius / _TILE))
        active = _active_tiles(lab, _TILE, reach)
    else:
        active = np.ones(((h + _TILE - 1) // _TILE, (w + _TILE - 1) // _TILE), np.bool_)
    for y in range(h):
        for x in range(w):
            if lab[y, x] != 0:
                out[y, x] = wc_fg
                continue
            if not active[y // _TILE, x // _TILE]:  # d1 + d2 > radius: term < eps
                out[y, x] = wc_bg
                continue
            a, va, b, vb = 0, far, 0, far
            k = 0
            truncated = False
            while True:
                kk = k * k
                xl = x - k
                if xl >= 0 and l1[y, xl] != 0:
                    a, va, b, vb = _insert(l1[y, xl], s1[y, xl] + kk, a, va, b, vb)
                    if l2[y, xl] != 0:
                        a, va, b, vb = _insert(l2[y, xl], s2[y, xl] + kk, a, va, b, vb)
                xr = x + k
                if k > 0 and xr < w and l1[y, xr] != 0:
                    a, va, b, vb = _insert(l1[y, xr], s1[y, xr] + kk, a, va, b, vb)
                    if l2[y, xr] != 0:
                        a, va, b, vb = _insert(l2[y, xr], s2[y, xr] + kk, a, va, b, vb)
                k += 1
                if k * k >= vb:  # unvisited columns are >= k away: the top-2 is final
                    break
                if x - k < 0 and x + k >= w:  # every column visited
                    break
                # lower bound on d1 + d2, unvisited columns being >= k away
                fk = float(k)
                if min(math.sqrt(va), fk) + min(math.sqrt(vb), fk) > radius:
                    truncated = True
                    break
            term = 0.0
            if b != 0 and not truncated:
                d = math.sqrt(va) + math.sqrt(vb)
                if d <= radius:  # same cut everywhere, however the scan ended
                    term = w0 * math.exp(-(d * d) / (2.0 * sigma * sigma))
            out[y, x] = wc_bg + term


def _class_weight_table(counts: np.ndarray, mode: str) -> np.ndarray:
    """Per-class w_c from the pixel count of every class (see :func:`class_weights`)."""
    if mode == "none":
        return np.ones(counts.shape, dtype=np.float64)
    if mode != "inverse_frequency":
        raise ValueError(f"unknown class balance mode {mode!r} (use 'inverse_frequency' or 'none')")
    present = counts > 0
    table = np.zeros(counts.shape, dtype=np.float64)
    table[present] = counts.sum() / (present.sum() * counts[present])
    return table


def _border_term(target, d_sum, w0, sigma):
    """w0 exp(-(d1+d2)^2 / (2 sigma^2)) on the background of ``target``, 0 elsewhere."""
    term = np.zeros(target.shape, dtype=np.float64)
    bg = (target == 0) & np.isfinite(d_sum)
    term[bg] = w0 * np.exp(-(d_sum[bg] * d_sum[bg]) / (2.0 * sigma * sigma))
    return term


def weight_map(
    instances: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: str = "inverse_frequency",
    *,
    eps: float = 1e-6,
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """U-Net weight map :math:`w(x)` (paper eq. 2), fast.

    Parameters
    ----------
    instances : (H, W) integer array
        Instance labels, 0 = background (touching instances allowed).
    w0, sigma : float
        :math:`w_0` and :math:`\\sigma` (pixels) of the border term; paper: 10 and 5.
    class_balance : {"inverse_frequency", "none"}
        Form of :math:`w_c`, computed on :func:`training_target` (see :func:`class_weights`).
    eps : float, keyword-only
        Tolerance of the truncation: the border term is set to 0 where
        :math:`d_1 + d_2 >` :func:`truncation_radius` (28.4 px for the defaults), where it is
        below ``eps``. ``eps=0`` computes it everywhere.
    ignore : (H, W) bool array, keyword-only, optional
        Pixels of unannotated cells (:func:`unannotated_region`): :math:`w = 0` there and
        :math:`w_c` counts the other pixels only. Must not overlap ``instances > 0``.

    Returns
    -------
    (H, W) float32 array
        :math:`w = w_c + w_0 \\exp(-(d_1+d_2)^2/2\\sigma^2)`, the second term only on background
        pixels of the training target (separation borders included) and only where at least
        two instances remain; :math:`d_1 \\le d_2` are the Euclidean distances to the nearest
        pixels of the two nearest instances of the training target. Agrees with
        :func:`weight_map_bruteforce` within ``eps`` plus rounding (float32 output).
    """
    lab = _check_instances(instances)
    _check_params(w0, sigma)
    radius = truncation_radius(w0, sigma, eps)
    if max(lab.shape) > _MAX_SIDE:
        raise ValueError(f"images larger than {_MAX_SIDE} pixels per side are not supported")
    target = training_target(lab)
    ignore = _check_ignore(ignore, lab)
    n_fg = int(np.count_nonzero(target))
    n_bg = target.size - n_fg - (int(np.count_nonzero(ignore)) if ignore is not None else 0)
    counts = np.array([n_bg, n_fg])
    # w_c rounded to float32 as returned by class_weights (what the brute force adds)
    table = _class_weight_table(counts, class_balance).astype(np.float32).astype(np.float64)
    if lab.size == 0 or w0 == 0 or radius == 0:
        out = table[target].astype(np.float32)
    else:
        if lab.max() > np.iinfo(np.int32).max:  # renumber (consecutive, >= 1) to fit int32
            lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape) + 1
        tlab = np.where(target > 0, lab, 0).astype(np.int32)
        out = np.empty(lab.shape, dtype=np.float32)
        _weight_kernel(tlab, table[0], table[1], float(w0), float(sigma), radius, out)
    if ignore is not None:
        out[ignore] = 0
    return out


def _check_ignore(ignore: np.ndarray | None, lab: np.ndarray) -> np.ndarray | None:
    if ignore is None:
        return None
    ignore = np.asarray(ignore, dtype=bool)
    if ignore.shape != lab.shape:
        raise ValueError(f"ignore mask shape {ignore.shape} differs from {lab.shape}")
    if np.any(ignore & (lab > 0)):
        raise ValueError("the ignore region overlaps annotated instances")
    return ignore


def weight_map_bruteforce(
    instances: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_balance: str = "inverse_frequency",
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """Reference implementation of :func:`weight_map`: one distance transform per instance.

    For every instance :math:`i` of the training target,
    ``scipy.ndimage.distance_transform_edt(target_labels != i)`` gives :math:`d_i` on the whole
    image; the two smallest values per pixel (a running sorted insertion, equivalent to sorting
    the stack of distances) are :math:`d_1 \\le d_2`. No truncation. Slow:
    O(number of instances x pixels).
    """
    lab = _check_instances(instances)
    _check_params(w0, sigma)
    target = training_target(lab)
    ignore = _check_ignore(ignore, lab)
    if ignore is None:
        wc = class_weights(target, class_balance).astype(np.float64)
    else:  # w_c = N' / (K' N'_c) over the annotated pixels only (direct definition)
        wc = np.zeros(lab.shape)
        if class_balance == "none":
            wc[~ignore] = 1.0
        else:
            present = [c for c in (0, 1) if np.any((target == c) & ~ignore)]
            for c in present:
                sel = (target == c) & ~ignore
                wc[sel] = np.float32(np.count_nonzero(~ignore) / (len(present) * sel.sum()))
    tlab = np.where(target > 0, lab, 0)
    ids = np.unique(tlab)
    ids = ids[ids > 0]
    if ids.size < 2 or w0 == 0:
        return wc.astype(np.float32)
    d1 = np.full(lab.shape, np.inf)
    d2 = np.full(lab.shape, np.inf)
    for i in ids:
        d = ndi.distance_transform_edt(tlab != i)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    out = wc + _border_term(target, d1 + d2, w0, sigma)
    if ignore is not None:
        out[ignore] = 0
    return out.astype(np.float32)


def weight_map_stack(instances_stack: np.ndarray, **kwargs) -> np.ndarray:
    """:func:`weight_map` of every image of an (N, H, W) stack (``w_c`` per image).

    Keyword arguments are passed to :func:`weight_map`. Returns an (N, H, W) float32 array.
    """
    stack = np.asarray(instances_stack)
    if stack.ndim != 3:
        raise ValueError(f"instances_stack must have shape (N, H, W), got {stack.shape}")
    out = np.empty(stack.shape, dtype=np.float32)
    for n in range(stack.shape[0]):
        out[n] = weight_map(stack[n], **kwargs)
    return out


def unannotated_region(
    instances: np.ndarray,
    markers: np.ndarray,
    silver: np.ndarray | None = None,
    *,
    margin: float = 2.0,
    fallback_radius: float | None = None,
    min_cover: float = 0.5,
) -> np.ndarray:
    """Ignore region of a partially annotated frame: the cells the gold truth left out.

    The paper trains on "partially annotated" CTC images. The gold segmentation
    (``GT/SEG``, ``instances``) marks only some cells of a frame, the tracking markers
    (``GT/TRA``, ``markers``) mark every cell. A marker counts as annotated when at least
    ``min_cover`` of its pixels lie on gold instances; every other marker is an unannotated
    cell, whose extent is

    * the silver-truth object (``ST/SEG``, ``silver``) with the largest overlap with the
      marker, plus the marker itself, where the silver truth has an object there;
    * else (fallback) the marker grown by ``fallback_radius`` pixels (Euclidean); ``None``
      takes the equivalent radius :math:`\\sqrt{A/\\pi}` of the median gold instance area
      :math:`A` of the frame (the marker alone when the frame has no gold instance).

    The union of these extents is grown by ``margin`` pixels (the silver truth's outline is
    only approximate) and the gold instances are taken out again, so the region never covers
    an annotated cell; it may cover background next to one.

    Parameters
    ----------
    instances : (H, W) integer array
        Gold-truth instances, 0 = background.
    markers : (H, W) integer array
        Tracking markers of the same frame, 0 = none.
    silver : (H, W) integer array, optional
        Silver-truth instances of the frame (None: the fallback for every marker).
    margin, fallback_radius, min_cover : float
        See above.

    Returns
    -------
    (H, W) bool array
        True where the loss weight must be 0 (pass as ``ignore`` to :func:`weight_map`).
    """
    lab = _check_instances(instances)
    mk = _check_instances(markers)
    st = None if silver is None else _check_instances(silver)
    for name, arr in (("markers", mk), ("silver", st)):
        if arr is not None and arr.shape != lab.shape:
            raise ValueError(f"{name} shape {arr.shape} differs from instances {lab.shape}")
    annotated = lab > 0
    region = np.zeros(lab.shape, dtype=bool)
    seeds = np.zeros(lab.shape, dtype=bool)  # markers that need the fallback
    for sl, m in zip(ndi.find_objects(mk), range(1, int(mk.max(initial=0)) + 1), strict=False):
        if sl is None:
            continue
        mask = mk[sl] == m
        if annotated[sl][mask].mean() >= min_cover:
            continue
        if st is not None:
            ids, counts = np.unique(st[sl][mask], return_counts=True)
            counts, ids = counts[ids > 0], ids[ids > 0]
            if ids.size:
                region |= st == ids[np.argmax(counts)]
                region[sl] |= mask
                continue
        seeds[sl] |= mask
    if seeds.any():
        if fallback_radius is None:
            areas = np.bincount(lab.ravel())[1:]
            areas = areas[areas > 0]
            fallback_radius = math.sqrt(np.median(areas) / math.pi) if areas.size else 0.0
        region |= ndi.distance_transform_edt(~seeds) <= fallback_radius
    if margin > 0 and region.any():
        region = ndi.distance_transform_edt(~region) <= margin
    return region & ~annotated


def training_truth(
    instances: np.ndarray,
    frames,
    rows,
    markers: np.ndarray | None = None,
    silver: np.ndarray | None = None,
    *,
    unannotated: str = "ignore",
    margin: float = 2.0,
    fallback_radius: float | None = None,
):
    """Instances and ignore region of every training frame of a CTC sequence.

    ``rows`` are :func:`unet_repro.datasets.frame_roles`' rows; the frames with role
    ``train`` are returned, in frame order, as ``(frame, truth, instances, ignore)``. A gold
    frame takes its gold instances (``instances[k]`` of ``frames[k]``) and, with
    ``unannotated="ignore"``, the ignore region of the cells the gold truth left out
    (:func:`unannotated_region` from the markers and the silver truth); a silver frame takes
    ``silver[t]``, and ignores the cells whose tracking marker the silver truth misses (the
    marker grown by ``fallback_radius``). ``ignore`` is None where nothing is ignored.
    """
    if unannotated not in ("ignore", "background"):
        raise ValueError(f"unannotated must be 'ignore' or 'background', got {unannotated!r}")
    index = {int(t): k for k, t in enumerate(frames)}
    out = []
    for row in rows:
        if row["role"] != "train":
            continue
        t, truth = int(row["frame"]), row["truth"]
        if truth == "gold":
            if t not in index:
                raise ValueError(f"frame {t} is marked gold but has no gold instances")
            lab = instances[index[t]]
            st = None if silver is None else silver[t]
        elif truth == "silver":
            if silver is None:
                raise ValueError(f"frame {t} is marked silver but the data hold no silver truth")
            lab, st = silver[t], None
        else:
            raise ValueError(
                f"frame {t}: a training frame needs gold or silver truth, not {truth!r}"
            )
        ignore = None
        if unannotated == "ignore" and markers is not None:
            ignore = unannotated_region(
                lab, markers[t], st, margin=margin, fallback_radius=fallback_radius
            )
            ignore = ignore if ignore.any() else None
        out.append((t, truth, lab, ignore))
    return out
