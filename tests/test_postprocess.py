"""Instances for the CTC SEG measure, and the choice of their settings on training frames."""

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_repro.metrics.ctc import seg_measure
from unet_repro.postprocess import (
    check_grid,
    fill_label_holes,
    segment,
    select_postprocessing,
    split_at_necks,
)


def touching_cells(seed, shape=(64, 80), n=10):
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, bool)
    seeds[rng.integers(4, shape[0] - 4, n), rng.integers(4, shape[1] - 4, n)] = True
    dist, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    ids = np.zeros(shape, np.int64)
    ids[seeds] = np.arange(1, seeds.sum() + 1)
    return np.where(dist <= 9, ids[iy, ix], 0).astype(np.uint16)


def shrunk_probability(truth, seed):
    """P(cell) of a net that learnt the separation borders: every cell a pixel too small."""
    rng = np.random.default_rng(seed)
    inner = np.zeros(truth.shape, bool)
    for i in np.unique(truth)[1:]:
        inner |= ndi.binary_erosion(truth == i)
    p = np.where(inner, 0.8, 0.1) + rng.uniform(-0.05, 0.05, truth.shape)
    p[2:5, 2:5] = 0.9  # a small false positive
    return p


def test_segment_steps():
    p = np.zeros((20, 30))
    p[2:10, 2:10] = 0.9
    p[5:7, 5:7] = 0.2  # a hole
    p[2:10, 11:20] = 0.6  # a second cell, one background column apart
    p[15:17, 25:27] = 0.9  # 4 pixels
    lab = segment(p, threshold=0.5)
    assert lab.max() == 3 and lab.dtype == np.uint16
    assert segment(p, threshold=0.7).max() == 2
    assert segment(p, 0.5, min_size=5).max() == 2
    filled = segment(p, 0.5, fill_holes=True)
    assert (filled[5:7, 5:7] == filled[3, 3]).all() and filled[3, 3] > 0
    grown = segment(p, 0.5, expand=1)
    assert grown.max() == 3  # grows into the background, never merges the two cells
    assert (grown[2:10, 10] > 0).all() and len(np.unique(grown[2:10, 9:12])) == 2


def test_fill_label_holes_only_fills_enclosed_background():
    lab = np.zeros((12, 12), np.uint16)
    lab[1:8, 1:8] = 1
    lab[3:5, 3:5] = 0  # hole of 1
    lab[9:11, 1:11] = 2
    out = fill_label_holes(lab)
    assert (out[3:5, 3:5] == 1).all()
    np.testing.assert_array_equal(out[lab > 0], lab[lab > 0])
    assert (out[8] == 0).all() and (out[:, 11] == 0).all()


def fill_label_holes_brute(lab):
    """The definition, region by region: a background region off the edge whose 4-neighbour
    instance pixels carry one label takes it."""
    background, n = ndi.label(lab == 0, structure=ndi.generate_binary_structure(2, 1))
    out = lab.copy()
    h, w = lab.shape
    for r in range(1, n + 1):
        ys, xs = np.nonzero(background == r)
        if ys.min() == 0 or xs.min() == 0 or ys.max() == h - 1 or xs.max() == w - 1:
            continue
        ring = {
            int(lab[y + dy, x + dx])
            for y, x in zip(ys, xs, strict=True)
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if lab[y + dy, x + dx] > 0
        }
        if len(ring) == 1:
            out[background == r] = ring.pop()
    return out


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64])
def test_fill_label_holes_equals_its_definition(dtype):
    rng = np.random.default_rng(3)
    n_filled = n_kept = 0
    for _ in range(40):
        # blocky instances with many small background gaps: holes in one instance, gaps
        # between several, and instance pixels that border two holes at once
        coarse = rng.integers(1, 4, (rng.integers(3, 7), rng.integers(3, 7)))
        lab = np.kron(coarse, np.ones((4, 4), np.int64))
        lab[rng.random(lab.shape) < 0.25] = 0
        lab = lab.astype(dtype)
        out, ref = fill_label_holes(lab), fill_label_holes_brute(lab)
        np.testing.assert_array_equal(out, ref)
        assert out.dtype == lab.dtype
        n_filled += int(((lab == 0) & (out > 0)).sum())
        n_kept += int(((lab == 0) & (ref == 0)).sum())
    assert n_filled > 0 and n_kept > 0  # both outcomes occur


def test_fill_label_holes_keeps_a_hole_that_shares_its_ring_pixel_with_another():
    # label 2 is one pixel between two holes of label 1: each hole's ring holds 1 and 2
    lab = np.ones((3, 7), np.uint16)
    lab[1, 1:3] = 0
    lab[1, 3] = 2
    lab[1, 4:6] = 0
    np.testing.assert_array_equal(fill_label_holes(lab), lab)
    lab[1, 3] = 1  # one label around both: both filled
    assert (fill_label_holes(lab) == 1).all()
    with pytest.raises(ValueError, match="2-D"):
        fill_label_holes(np.ones((2, 3, 7), np.uint16))


def test_selection_equals_exhaustive_search_and_prefers_growing_back():
    truths = [touching_cells(s) for s in range(3)]
    probs = [shrunk_probability(t, s) for s, t in enumerate(truths)]
    grid = {
        "threshold": [0.3, 0.5, 0.85],
        "mask_threshold": [None, 0.5],
        "keep_unseeded": [False, True],
        "min_size": [0, 20],
        "expand": [0, 1, 2],
        "fill_holes": [False, True],
    }
    best, rows = select_postprocessing(probs, truths, grid)
    # mask threshold 0.5 is no growth below a seed threshold of 0.3 or 0.5: skipped there;
    # without growth there is nothing unseeded to keep: keep_unseeded True skipped too
    assert len(rows) == (3 + 1 * 2) * 2 * 3 * 2
    # brute force: every candidate scored with the SEG measure itself
    scores = {}
    for t, mt, k, m, e, f in itertools.product(*grid.values()):
        if (mt is None and not k) or (mt is not None and mt < t):
            res = [segment(p, t, m, e, f, mask_threshold=mt, keep_unseeded=k) for p in probs]
            scores[(t, mt, k, m, e, f)] = seg_measure(zip(truths, res, strict=True))
    assert len(scores) == len(rows)
    for r in rows:
        key = tuple(r[k] for k in grid)
        assert r["seg"] == pytest.approx(scores[key], abs=1e-12)
    assert best["seg"] == pytest.approx(max(scores.values()), abs=1e-12)
    assert best["expand"] == 1 or best["mask_threshold"] is not None  # grows the pixel back
    assert best["seg"] > scores[(0.5, None, False, 0, 0, False)] + 0.05  # better than P > 0.5


def test_keep_unseeded_keeps_cells_below_the_seed_threshold():
    p = np.zeros((30, 40))
    p[2:12, 2:12] = 0.6  # a seeded cell: its core reaches the seed threshold
    p[5:9, 5:9] = 0.95
    p[2:12, 20:30] = 0.7  # a cell that never reaches it
    p[20:23, 30:33] = 0.7  # 9 pixels, below min_size
    kw = {"threshold": 0.9, "mask_threshold": 0.5, "min_size": 10}
    dropped = segment(p, **kw)
    kept = segment(p, **kw, keep_unseeded=True)
    assert dropped.max() == 1 and (dropped[2:12, 20:30] == 0).all()
    assert kept.max() == 2 and len(np.unique(kept[2:12, 20:30])) == 1 and kept[5, 25] == 2
    assert (kept[20:23, 30:33] == 0).all()  # min_size applies to unseeded components too
    np.testing.assert_array_equal(kept[:, :15], dropped[:, :15])  # the seeded cell unchanged
    assert (kept[2:12, 2:12] == 1).all()  # grown from its seed into P > 0.5
    # without growth (no mask, or mask >= threshold) there is nothing to keep
    for mask in (None, 0.9):
        np.testing.assert_array_equal(
            segment(p, 0.9, mask_threshold=mask, keep_unseeded=True),
            segment(p, 0.9, mask_threshold=mask),
        )


def test_grid_validation():
    assert check_grid(None)["threshold"][0] == 0.3
    with pytest.raises(ValueError, match="unknown post-processing"):
        check_grid({"thresh": [0.5]})
    with pytest.raises(ValueError, match="thresholds"):
        check_grid({"threshold": [1.5]})
    with pytest.raises(ValueError, match="keep_unseeded"):
        check_grid({"keep_unseeded": ["yes"]})
    with pytest.raises(ValueError, match="same, non-zero"):
        select_postprocessing([], [])
    with pytest.raises(ValueError, match="no object"):
        select_postprocessing([np.zeros((4, 4))], [np.zeros((4, 4), np.uint16)])


def test_seeded_growth_separates_touching_cells_and_recovers_their_extent():
    """Two touching cells joined by a confident-enough bridge: a high cut splits them, the
    watershed into the low-confidence region gives each its whole extent back."""
    truth = np.zeros((20, 40), np.uint16)
    truth[2:18, 2:20], truth[2:18, 20:38] = 1, 2
    p = np.full(truth.shape, 0.05)
    p[truth > 0] = 0.4  # the cells' periphery: low confidence
    p[5:15, 5:17], p[5:15, 23:35] = 0.95, 0.95  # their cores
    p[8:12, 17:23] = 0.6  # a bridge between the cores
    assert segment(p, 0.3).max() == 1  # a low cut merges them
    high = segment(p, 0.9)
    assert high.max() == 2 and seg_measure([(truth, high)]) < 0.5  # split, but too small
    grown = segment(p, 0.9, mask_threshold=0.3)
    assert grown.max() == 2 and seg_measure([(truth, grown)]) > 0.95
    assert np.array_equal(segment(p, 0.9, mask_threshold=0.95), high)  # no growth above


def two_discs(gap, r=20, shape=(60, 110)):
    """One instance made of two discs of radius r whose centres lie 2r - gap apart."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    a = (yy - 30) ** 2 + (xx - 30) ** 2 < r * r
    b = (yy - 30) ** 2 + (xx - 30 - 2 * r + gap) ** 2 < r * r
    return a, b


def test_split_at_necks_splits_by_the_depth_of_the_neck():
    a, b = two_discs(gap=8)  # centres 32 apart: neck half-width sqrt(400 - 256) = 12
    lab = np.zeros(a.shape, np.uint16)
    lab[a | b] = 3
    lab[50:53, 100:103] = 7  # a small instance, smaller than the depth
    # the distance map peaks ~19 in each disc and its saddle at the neck is ~11
    two = split_at_necks(lab, 4)
    assert two.max() == 3 and two.dtype == np.uint16
    left, right = two[30, 20], two[30, 80]
    assert left != right and left > 0 and right > 0
    assert (two[a & ~b] == left).mean() > 0.95 and (two[b & ~a] == right).mean() > 0.95
    np.testing.assert_array_equal(two > 0, lab > 0)  # the foreground is kept exactly
    assert len(np.unique(two[lab == 7])) == 1  # the small one stays whole
    for depth in (9, 30):  # the neck is less than depth below the peaks: no split
        whole = split_at_necks(lab, depth)
        assert whole.max() == 2 and len(np.unique(whole[lab == 3])) == 1
    # every output instance lies inside one input instance
    for k in np.unique(two[two > 0]):
        assert len(np.unique(lab[two == k])) == 1
    with pytest.raises(ValueError, match="> 0"):
        split_at_necks(lab, 0)
    assert split_at_necks(lab, None).max() == 7


def test_split_depth_in_segment_and_selection():
    a, b = two_discs(gap=8)
    truth = np.zeros(a.shape, np.uint16)
    truth[a] = 1
    truth[b & ~a] = 2
    p = np.where(a | b, 0.95, 0.05)  # P(cell) does not dip at the contact
    assert segment(p, 0.5).max() == 1
    assert segment(p, 0.5, split_depth=4).max() == 2
    grid = {
        "threshold": [0.5],
        "mask_threshold": [None],
        "min_size": [0],
        "split_depth": [None, 4],
        "expand": [0],
        "fill_holes": [False],
    }
    best, rows = select_postprocessing([p], [truth], grid)
    assert len(rows) == 2 and best["split_depth"] == 4
    assert best["seg"] > 0.9 > max(r["seg"] for r in rows if r["split_depth"] is None) + 0.3
    with pytest.raises(ValueError, match="split depths"):
        check_grid({"split_depth": [0]})
