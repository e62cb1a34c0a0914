"""ISBI 2012 metrics: brute-force oracles, hand-built warping cases, a literal reference warping."""

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label

from unet_repro.metrics import isbi

# ---------------------------------------------------------------------------------------------
# helpers: small synthetic EM-like data (cells separated by 1-px membranes)
# ---------------------------------------------------------------------------------------------


def voronoi_cells(shape, n_seeds, rng):
    """Cell mask (True = cell) of a random Voronoi tessellation with 1-px membranes."""
    h, w = shape
    seeds = rng.integers(0, [h, w], size=(n_seeds, 2))
    yy, xx = np.mgrid[:h, :w]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    lab = d.argmin(-1)
    boundary = np.zeros(shape, bool)
    boundary[:-1] |= lab[:-1] != lab[1:]
    boundary[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return ~boundary


def noisy_proposal(cell, rng, sigma=1.0, noise=0.25):
    p = ndi.gaussian_filter(cell.astype(np.float64), sigma) + rng.normal(0, noise, cell.shape)
    return np.clip(p, 0, 1).astype(np.float32)


def random_case(seed, shape=(3, 24, 24), n_seeds=6):
    rng = np.random.default_rng(seed)
    cell = np.stack([voronoi_cells(shape[1:], n_seeds, rng) for _ in range(shape[0])])
    return cell, noisy_proposal(cell, rng, sigma=(0, 1, 1))


# ---------------------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------------------


def test_thresholds_reproduce_java_double_loop():
    expected = [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7]
    expected += [0.7999999999999999, 0.8999999999999999, 0.9999999999999999]
    assert isbi.thresholds(0.0, 1.0, 0.1) == expected
    assert isbi.thresholds(0.0, 0.9, 0.1) == expected[:10]
    r = isbi.pixel_error(np.ones((4, 4)), np.ones((4, 4)))
    assert list(r.per_threshold) == expected
    w = isbi.warping_error(np.ones((4, 4)), np.ones((4, 4)))
    assert list(w.per_threshold) == expected[:10]
    with pytest.raises(ValueError, match="step"):
        isbi.thresholds(0, 1, 0)


# ---------------------------------------------------------------------------------------------
# pixel error
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_error_matches_direct_counts(seed):
    cell, p = random_case(seed)
    gt = np.where(cell, 255, 0).astype(np.uint8)
    res = isbi.pixel_error(gt, p)
    fs = []
    for th in isbi.thresholds(0.0, 1.0, 0.1):
        tp = fp = fn = 0
        for z, y, x in itertools.product(*map(range, gt.shape)):
            pos = float(p[z, y, x]) > th
            tp += pos and gt[z, y, x] > 0
            fp += pos and gt[z, y, x] == 0
            fn += (not pos) and gt[z, y, x] > 0
        prec = tp / (tp + fp) if tp + fp else 1.0
        rec = tp / (tp + fn) if tp + fn else 1.0
        f = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        fs.append(f)
        assert res.per_threshold[th] == pytest.approx(1 - f, abs=1e-12)
    assert res.best == pytest.approx(1 - max(fs), abs=1e-12)
    assert res.best_threshold == isbi.thresholds(0, 1, 0.1)[int(np.argmax(fs))]


# ---------------------------------------------------------------------------------------------
# Rand error
# ---------------------------------------------------------------------------------------------


def brute_force_rand_counts(cell, pred):
    """Ordered pairs (self-pairs included) of GT-foreground pixels, by explicit enumeration.

    Segments: 4-connected components; proposal-background pixels are singletons.
    """
    g = sk_label(cell, connectivity=1)
    q = sk_label(pred, connectivity=1)
    pix = list(zip(*np.nonzero(cell), strict=True))
    tp = fp = fn = 0
    for u in pix:
        for v in pix:
            same_g = g[u] == g[v]
            same_q = u == v or (q[u] != 0 and q[u] == q[v])
            tp += same_g and same_q
            fp += same_q and not same_g
            fn += same_g and not same_q
    return tp, fp, fn


@pytest.mark.parametrize("seed", [0, 1])
def test_rand_counts_equal_explicit_pair_counting(seed):
    cell, p = random_case(seed, shape=(2, 14, 14), n_seeds=4)
    for th in (0.2, 0.5, 0.7999999999999999):
        for z in range(cell.shape[0]):
            pred = p[z].astype(np.float64) > th
            gl, ng = ndi.label(cell[z])
            pl, npr = ndi.label(pred)
            assert isbi.rand_counts_slice(gl, pl, ng, npr) == brute_force_rand_counts(cell[z], pred)


def test_rand_error_pools_counts_over_slices():
    cell, p = random_case(3, shape=(2, 14, 14), n_seeds=4)
    res = isbi.rand_error(cell, p, thresholds=[0.5])
    tp = fp = fn = 0
    for z in range(2):
        a, b, c = brute_force_rand_counts(cell[z], p[z].astype(np.float64) > 0.5)
        tp, fp, fn = tp + a, fp + b, fn + c
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    assert res.best == pytest.approx(1 - 2 * prec * rec / (prec + rec), abs=1e-12)
    assert res.details["precision"][0.5] == pytest.approx(prec, abs=1e-12)


def test_rand_error_penalises_a_split_and_a_merge():
    cell = np.zeros((1, 12, 12), bool)
    cell[0, 1:11, 1:5] = cell[0, 1:11, 6:11] = True  # two cells, membrane at x = 5
    merged = cell.copy()
    merged[0, 1:11, 5] = True
    split = cell.copy()
    split[0, 6, 6:11] = False
    assert isbi.rand_error(cell, cell.astype(np.float32)).best == 0.0
    assert isbi.rand_error(cell, merged.astype(np.float32)).best > 0.1
    assert isbi.rand_error(cell, split.astype(np.float32)).best > 0.05


# ---------------------------------------------------------------------------------------------
# invariances and perfect prediction
# ---------------------------------------------------------------------------------------------


def test_perfect_prediction_scores_zero_and_gt_ids_do_not_matter():
    cell, _ = random_case(4)
    perfect = cell.astype(np.float32)
    for r in isbi.isbi_scores(cell, perfect).values():
        assert r.best == 0.0
    # relabelled ground truth (instance ids, another dtype) gives identical results
    _, p = random_case(5)
    ids = np.stack([ndi.label(c)[0] for c in cell]).astype(np.int32) * 7 + 3 * cell
    a = isbi.isbi_scores(np.where(cell, 255, 0).astype(np.uint8), p, radius=5)
    b = isbi.isbi_scores(ids, p, radius=5)
    for k in a:
        assert a[k].per_threshold == b[k].per_threshold


def test_input_validation():
    with pytest.raises(ValueError, match="shape"):
        isbi.pixel_error(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        isbi.rand_error(np.zeros((4, 4)), np.full((4, 4), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        isbi.warping_error(np.zeros((4, 4)), np.full((4, 4), np.nan))


# ---------------------------------------------------------------------------------------------
# simple points
# ---------------------------------------------------------------------------------------------


def patch_of(code, centre):
    p = np.zeros((3, 3), bool)
    p[1, 1] = centre
    for k, (dy, dx) in enumerate(isbi.NEIGHBOUR_OFFSETS):
        p[1 + dy, 1 + dx] = bool(code >> k & 1)
    return p


def n_components(p):
    """(# foreground 4-components, # background 8-components)."""
    return ndi.label(p)[1], ndi.label(~p, structure=np.ones((3, 3)))[1]


def test_simple_point_table_equals_component_counting():
    # brute force: flipping the centre leaves the numbers of foreground (4-) and background
    # (8-) components of the 3x3 patch unchanged
    for code in range(256):
        brute = n_components(patch_of(code, False)) == n_components(patch_of(code, True))
        assert isbi.SIMPLE_POINT_LUT[code] == brute, code
    assert isbi.SIMPLE_POINT_LUT.sum() == 116


def test_flipping_simple_points_preserves_topology_of_random_images():
    rng = np.random.default_rng(0)
    for _ in range(20):
        img = np.zeros((14, 14), bool)
        img[1:-1, 1:-1] = rng.random((12, 12)) < 0.55
        before = n_components(img)
        for _ in range(30):
            y, x = rng.integers(1, 13, size=2)
            if isbi.SIMPLE_POINT_LUT[isbi.neighbourhood_code(img, y, x)]:
                img[y, x] = ~img[y, x]
                assert n_components(img) == before


# ---------------------------------------------------------------------------------------------
# warping error: hand-built cases
# ---------------------------------------------------------------------------------------------


def two_cells(h=16, w=17, wall=8):
    """One slice: frame of membrane, two cells separated by a vertical 1-px membrane."""
    cell = np.zeros((h, w), bool)
    cell[1:-1, 1:-1] = True
    cell[:, wall] = False
    return cell


def errors(gt, prop, **kw):
    r = isbi.warping_error(gt, prop.astype(np.float32), **kw)
    return r, {th: (r.details["splits"][th], r.details["mergers"][th]) for th in r.per_threshold}


def test_split_of_one_cell_by_a_thin_line_counts():
    gt = np.zeros((16, 16), bool)
    gt[1:-1, 1:-1] = True
    prop = gt.copy()
    prop[:, 8] = False  # the proposal cuts the cell in two
    r, counts = errors(gt, prop)
    assert all(c == (1, 0) for c in counts.values())  # the last pixel of the cut stays
    assert r.best == 1 / gt.size


def test_merge_of_two_cells_through_a_bridge_counts():
    gt = two_cells()
    prop = gt.copy()
    prop[1:-1, 8] = True  # the proposal misses the whole membrane between the cells
    r, counts = errors(gt, prop)
    assert all(c == (0, 14) for c in counts.values())  # no pixel of the bridge is simple
    assert r.best == 14 / gt.size
    bridge = gt.copy()
    bridge[7, 8] = True  # a single-pixel bridge
    assert errors(gt, bridge)[0].best == 1 / gt.size


def test_boundary_shifted_by_one_pixel_is_not_an_error():
    gt = two_cells()
    prop = two_cells(wall=9)
    assert (gt != prop).sum() == 28
    r, _ = errors(gt, prop)
    assert r.best == 0.0 and max(r.per_threshold.values()) == 0.0
    assert isbi.pixel_error(gt, prop.astype(np.float32)).best > 0  # the pixel error sees it


def test_hole_and_object_additions_and_deletions_are_not_counted():
    gt = np.zeros((20, 20), bool)
    gt[1:9, 1:19] = True  # a cell above a thick membrane band (rows 9..12) ...
    gt[13:19, 1:19] = True  # ... and a cell below
    gt[15:17, 4:6] = False  # a small hole (2x2) in the lower cell
    prop = gt.copy()
    prop[3:5, 8:10] = False  # hole addition
    prop[10:12, 8:10] = True  # object addition inside the membrane band
    prop[15:17, 4:6] = True  # hole deletion
    r, counts = errors(gt, prop)
    assert r.best == 0.0 and all(c == (0, 0) for c in counts.values())
    # the mismatches are really left after warping: the added hole and object are not simple
    # points (4 + 4 pixels); the filled 2x2 hole shrinks to its last pixel
    _, ys, xs = isbi.warp_slice(gt, prop.astype(np.float32), 0.5)
    assert ys.size == 9 and (ys[0], xs[0]) == (16, 5)


def test_ambiguous_pixels_are_decided_inside_the_window():
    # a square ring whose left bar is cut except for a 1-px neck at (14, 4); the proposal also
    # cuts the neck. Locally that is a split, but the two sides stay connected around the ring.
    gt = np.zeros((30, 30), bool)
    gt[2:28, 2:28] = True
    gt[8:22, 8:22] = False
    gt[14, 2:8] = False
    gt[14, 4] = True
    prop = gt.copy()
    prop[14, 4] = False
    for radius, expected in [(2, (1, 0)), (5, (1, 0)), (20, (0, 0)), (None, (0, 0))]:
        _, counts = errors(gt, prop, radius=radius)
        assert set(counts.values()) == {expected}, radius
        assert ref_classify(*ref_warp(gt, prop.astype(np.float32), 0.5), radius) == expected


def test_warping_uses_the_best_threshold():
    gt = two_cells()
    p = gt.astype(np.float32) * 0.9
    p[1:-1, 8] = 0.45  # the membrane is found only at thresholds >= 0.45
    r = isbi.warping_error(gt, p)
    assert r.best == 0.0 and r.best_threshold == 0.5
    assert r.per_threshold[0.4] == 14 / gt.size


# ---------------------------------------------------------------------------------------------
# warping error: literal reference implementation of the Fiji procedure
# ---------------------------------------------------------------------------------------------


def ref_is_simple(img, y, x):
    h, w = img.shape
    pad = np.zeros((h + 2, w + 2), bool)
    pad[1:-1, 1:-1] = img
    p = pad[y : y + 3, x : x + 3].copy()
    a = p.copy()
    a[1, 1] = False
    b = p.copy()
    b[1, 1] = True
    return n_components(a) == n_components(b)


def ref_warp(cell, p, th):
    """Literal: rebuild and re-sort the mismatch list every iteration, 3x3 component counts."""
    h, w = cell.shape
    lab = cell.copy()
    target = p.astype(np.float64) > th
    diff_before = None
    while True:
        mism = [(x, y) for x in range(w) for y in range(h) if lab[y, x] != target[y, x]]
        if not mism or len(mism) == diff_before:
            return lab, mism
        diff_before = len(mism)
        keys = [float(np.float32(abs(float(p[y, x]) - th))) for x, y in mism]
        for k in sorted(range(len(mism)), key=lambda k: -keys[k]):  # stable
            x, y = mism[k]
            if ref_is_simple(lab, y, x):
                lab[y, x] = ~lab[y, x]


def ref_classify(lab, mism, radius):
    h, w = lab.shape
    comp = sk_label(lab, connectivity=1)
    use_window = radius is not None and 1 <= radius <= min(h, w)
    splits = mergers = 0
    for x, y in mism:
        nb = {
            comp[y + dy, x + dx]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w
        }
        fg = comp[y, x] != 0
        if len(nb) == 1 or (len(nb) == 2 and not fg):
            continue
        if len(nb) == 2:
            if use_window:
                win = np.zeros((2 * radius + 1,) * 2, bool)
                for i, j in itertools.product(range(2 * radius + 1), repeat=2):
                    yy, xx = y - radius + i, x - radius + j
                    win[i, j] = 0 <= yy < h and 0 <= xx < w and lab[yy, xx]
                cy, cx = radius, radius
            else:
                win, cy, cx = lab.copy(), y, x
            win[cy, cx] = False
            c2 = sk_label(win, connectivity=1)
            hh, ww = win.shape
            nb2 = {
                c2[cy + dy, cx + dx]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
                if (dy or dx) and 0 <= cy + dy < hh and 0 <= cx + dx < ww
            }
            splits += len(nb2) > 2
        elif fg:
            splits += 1
        else:
            mergers += 1
    return splits, mergers


@pytest.mark.parametrize(("seed", "radius"), [(0, 4), (1, 4), (2, None), (3, 20), (4, 2)])
def test_warping_equals_literal_reference(seed, radius):
    cell, p = random_case(seed, shape=(2, 24, 24), n_seeds=7)
    r = isbi.warping_error(cell, p, radius=radius)
    n_checked = 0
    for th in r.per_threshold:
        s = m = 0
        for z in range(cell.shape[0]):
            lab, mism = ref_warp(cell[z], p[z], th)
            warped, ys, xs = isbi.warp_slice(cell[z], p[z], th)
            np.testing.assert_array_equal(warped.astype(bool), lab)
            assert sorted(zip(xs.tolist(), ys.tolist(), strict=True)) == sorted(mism)
            a, b = ref_classify(lab, mism, radius)
            s, m = s + a, m + b
        assert (r.details["splits"][th], r.details["mergers"][th]) == (s, m)
        n_checked += s + m
    assert n_checked > 0  # the random cases do contain splits/mergers
