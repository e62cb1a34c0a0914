"""Tests of the U-Net weight maps (paper section 3) against brute-force oracles."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_repro.weights import (
    class_weights,
    core_instances,
    isbi_instances,
    separation_borders,
    training_target,
    truncation_radius,
    unannotated_region,
    weight_map,
    weight_map_bruteforce,
    weight_map_stack,
)

CROSS = ndi.generate_binary_structure(2, 1)


def voronoi_instances(seed, shape=(48, 64), n_cells=12, bg_radius=9.0, n_holes=3):
    """Touching Voronoi cells of random seeds, background beyond ``bg_radius`` and in holes."""
    rng = np.random.default_rng(seed)
    h, w = shape
    seeds = np.zeros(shape, dtype=bool)
    seeds[rng.integers(0, h, n_cells), rng.integers(0, w, n_cells)] = True
    dist, (iy, ix) = ndi.distance_transform_edt(~seeds, return_indices=True)
    ids = np.zeros(shape, dtype=np.int64)
    ids[seeds] = np.arange(1, seeds.sum() + 1)
    lab = ids[iy, ix]
    lab[dist > bg_radius] = 0
    for _ in range(n_holes):
        y, x = rng.integers(0, h), rng.integers(0, w)
        lab[max(y - 3, 0) : y + 3, max(x - 4, 0) : x + 4] = 0
    return lab


def four_adjacent_different(lab):
    """True where two different non-zero labels are 4-adjacent anywhere."""
    v = (lab[1:] != lab[:-1]) & (lab[1:] > 0) & (lab[:-1] > 0)
    h = (lab[:, 1:] != lab[:, :-1]) & (lab[:, 1:] > 0) & (lab[:, :-1] > 0)
    return v.any() or h.any()


CASES = [
    dict(seed=0),
    dict(seed=1, n_cells=25, bg_radius=6.0),
    dict(seed=2, shape=(40, 90), n_cells=6, bg_radius=20.0),
    dict(seed=3, shape=(64, 33), n_cells=40, bg_radius=50.0, n_holes=8),  # almost all fg
    dict(seed=4, n_cells=3, bg_radius=4.0),  # sparse: long scans, many skipped tiles
]


# --- the oracle itself -----------------------------------------------------------------------


def test_bruteforce_matches_sorted_distance_stack():
    lab = voronoi_instances(5, shape=(24, 30), n_cells=7, bg_radius=5.0)
    target = training_target(lab)
    tlab = np.where(target > 0, lab, 0)
    ids = [i for i in np.unique(tlab) if i > 0]
    stack = np.sort(np.stack([ndi.distance_transform_edt(tlab != i) for i in ids]), axis=0)
    d1, d2 = stack[0], stack[1]
    expected = 1.0 + np.where(target == 0, 10.0 * np.exp(-((d1 + d2) ** 2) / 50.0), 0.0)
    got = weight_map_bruteforce(lab, 10.0, 5.0, "none")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_formula_by_hand_between_two_stripes():
    lab = np.zeros((10, 13), dtype=np.int32)
    lab[:, :5] = 1  # columns 0..4
    lab[:, 8:] = 2  # columns 8..12; background columns 5, 6, 7
    for fn in (weight_map, weight_map_bruteforce):
        w = fn(lab, 10.0, 5.0, "none")
        assert np.all(w[:, :5] == 1) and np.all(w[:, 8:] == 1)
        # column 6: d1 = d2 = 2; columns 5 and 7: d1 = 1, d2 = 3
        np.testing.assert_allclose(w[:, 6], 1 + 10 * math.exp(-16 / 50), rtol=1e-6)
        np.testing.assert_allclose(w[:, 5], 1 + 10 * math.exp(-16 / 50), rtol=1e-6)
        np.testing.assert_allclose(w[:, 7], 1 + 10 * math.exp(-16 / 50), rtol=1e-6)


# --- fast map vs brute force -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("balance", ["inverse_frequency", "none"])
def test_fast_matches_bruteforce(case, balance):
    lab = voronoi_instances(**case)
    fast = weight_map(lab, 10.0, 5.0, balance)
    ref = weight_map_bruteforce(lab, 10.0, 5.0, balance)
    assert fast.dtype == np.float32 and fast.shape == lab.shape
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5)
    # without truncation the two compute the same float64 expression
    np.testing.assert_allclose(weight_map(lab, 10.0, 5.0, balance, eps=0), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("w0,sigma", [(50.0, 6.0), (10.0, 20.0), (3.0, 1.5)])
def test_fast_matches_bruteforce_other_parameters(w0, sigma):
    lab = voronoi_instances(7, shape=(56, 72), n_cells=15, bg_radius=7.0)
    fast = weight_map(lab, w0, sigma)
    ref = weight_map_bruteforce(lab, w0, sigma)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5)


def test_truncation_error_is_bounded_by_eps():
    lab = voronoi_instances(8, shape=(60, 80), n_cells=5, bg_radius=6.0)
    ref = weight_map_bruteforce(lab, 10.0, 8.0, "none").astype(np.float64)
    for eps in (1e-1, 1e-3):
        diff = np.abs(weight_map(lab, 10.0, 8.0, "none", eps=eps) - ref)
        assert diff.max() <= eps * (1 + 1e-5)
    assert np.abs(weight_map(lab, 10.0, 8.0, "none", eps=1e-1) - ref).max() > 1e-3  # it bites


def test_truncation_radius():
    r = truncation_radius(10.0, 5.0, 1e-6)
    assert 10.0 * math.exp(-(r**2) / 50.0) == pytest.approx(1e-6)
    assert truncation_radius(10.0, 5.0, 0.0) == math.inf
    assert truncation_radius(1e-7, 5.0, 1e-6) == 0.0
    with pytest.raises(ValueError, match="eps"):
        truncation_radius(10.0, 5.0, -1.0)


def test_stack_matches_per_image():
    stack = np.stack([voronoi_instances(s, shape=(32, 40), n_cells=8) for s in range(3)])
    out = weight_map_stack(stack, w0=10.0, sigma=5.0)
    assert out.shape == stack.shape and out.dtype == np.float32
    for n in range(3):
        np.testing.assert_array_equal(out[n], weight_map(stack[n]))
    with pytest.raises(ValueError, match="N, H, W"):
        weight_map_stack(stack[0])


# --- invariances -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES[:3])
def test_relabelling_gives_identical_map(case):
    lab = voronoi_instances(**case)
    rng = np.random.default_rng(11)
    ids = np.unique(lab)[1:]
    new_ids = rng.permutation(ids) * 7919 + (1 << 40)  # also exercises int32 renumbering
    lut = np.zeros(lab.max() + 1, dtype=np.int64)
    lut[ids] = new_ids
    relabelled = lut[lab]
    np.testing.assert_array_equal(weight_map(relabelled), weight_map(lab))
    np.testing.assert_array_equal(separation_borders(relabelled), separation_borders(lab))


@pytest.mark.parametrize("case", CASES)
def test_transposing_transposes_the_map(case):
    lab = voronoi_instances(**case)
    np.testing.assert_array_equal(weight_map(lab.T), weight_map(lab).T)
    np.testing.assert_array_equal(weight_map(lab[::-1, ::-1]), weight_map(lab)[::-1, ::-1])


# --- separation borders and training target --------------------------------------------------


def test_separation_borders_equal_grey_morphology():
    for seed in range(4):
        lab = voronoi_instances(seed)
        dil = ndi.grey_dilation(lab, footprint=CROSS, mode="nearest")
        big = np.where(lab > 0, lab, lab.max() + 1)
        ero = ndi.grey_erosion(big, footprint=CROSS, mode="nearest")
        expected = (lab > 0) & ((dil != lab) | (ero != lab))
        np.testing.assert_array_equal(separation_borders(lab), expected)


def test_training_target_disconnects_touching_and_keeps_isolated():
    lab = voronoi_instances(1, shape=(60, 60), n_cells=20, bg_radius=8.0)
    lab[lab > 0] += 2
    lab[:, 40:] = 0
    lab[5:12, 45:52] = 1  # isolated square
    lab[30:33, 55:58] = 2  # isolated small square
    assert four_adjacent_different(lab)
    target = training_target(lab)
    assert target.dtype == np.uint8 and set(np.unique(target)) <= {0, 1}
    tlab = np.where(target > 0, lab, 0)
    assert not four_adjacent_different(tlab)
    assert np.all(target[lab == 1] == 1) and np.all(target[lab == 2] == 1)
    assert np.all(target[lab == 0] == 0)
    # only pixels that touch another instance are removed
    border = separation_borders(lab)
    np.testing.assert_array_equal(target == 1, (lab > 0) & ~border)
    # every connected component of the target lies inside a single instance
    comp, n = ndi.label(target, structure=CROSS)
    for c in range(1, n + 1):
        assert np.unique(lab[comp == c]).size == 1


def test_isbi_instances_are_four_connected():
    labels = np.array(
        [
            [255, 0, 0, 255],
            [0, 255, 0, 255],
            [0, 255, 255, 0],
            [0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    inst = isbi_instances(labels)
    assert inst.dtype == np.int32
    assert inst.max() == 3  # the diagonal contacts do not connect
    assert inst[0, 0] != inst[1, 1] and inst[1, 3] != inst[2, 2]
    assert inst[1, 1] == inst[2, 1] == inst[2, 2]
    # 4-connected components never touch 4-adjacently: no separation borders
    assert not separation_borders(inst).any()
    np.testing.assert_array_equal(training_target(inst), labels > 0)


# --- class weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_class_weights_balance_totals(n_classes):
    rng = np.random.default_rng(n_classes)
    target = (rng.random((37, 41)) ** 2 * n_classes).astype(np.uint8)
    wc = class_weights(target)
    assert wc.dtype == np.float32
    totals = [wc[target == c].sum(dtype=np.float64) for c in range(n_classes)]
    np.testing.assert_allclose(totals, target.size / n_classes, rtol=1e-5)
    assert wc.mean(dtype=np.float64) == pytest.approx(1.0, rel=1e-6)
    for c in range(n_classes):  # one value per class
        assert np.unique(wc[target == c]).size == 1


def test_class_weights_absent_class_and_modes():
    assert np.all(class_weights(np.zeros((5, 6), np.uint8)) == 1)
    assert np.all(class_weights(np.ones((5, 6), np.uint8)) == 1)
    target = np.zeros((4, 4), np.uint8)
    target[0, 0] = 2  # class 1 absent
    wc = class_weights(target)
    assert wc[0, 0] == pytest.approx(8.0) and wc[1, 1] == pytest.approx(16 / 30)
    assert np.all(class_weights(target, mode="none") == 1)
    with pytest.raises(ValueError, match="class balance"):
        class_weights(target, mode="median")
    with pytest.raises(ValueError, match="integer"):
        class_weights(target.astype(float))


# --- edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [weight_map, weight_map_bruteforce])
def test_edge_cases(fn):
    empty = np.zeros((20, 30), np.uint16)
    np.testing.assert_array_equal(fn(empty), np.ones(empty.shape, np.float32))

    one = empty.copy()
    one[5:9, 10:20] = 4  # a single instance: no border term, only w_c
    w = fn(one)
    np.testing.assert_array_equal(w, class_weights(training_target(one)))

    full = np.full((20, 30), 3, np.int32)  # all foreground, one instance
    np.testing.assert_array_equal(fn(full), np.ones(full.shape, np.float32))

    halves = full.copy()
    halves[:, 15:] = 5  # all foreground, two touching instances
    w = fn(halves, class_balance="none")
    assert np.isfinite(w).all()
    border = separation_borders(halves)
    assert border[:, 14:16].all() and border.sum() == 40
    np.testing.assert_allclose(w[:, 14], 1 + 10 * math.exp(-9 / 50), rtol=1e-6)  # d1=1, d2=2
    assert np.all(w[~border] == 1)

    tiny = np.array([[1, 0, 2]], dtype=np.uint8)
    np.testing.assert_allclose(fn(tiny, class_balance="none")[0, 1], 1 + 10 * math.exp(-4 / 50))


def test_input_validation():
    lab = np.zeros((8, 8), np.int32)
    with pytest.raises(ValueError, match="integer"):
        weight_map(lab.astype(float))
    with pytest.raises(ValueError, match="2-D"):
        weight_map(lab[None])
    with pytest.raises(ValueError, match="non-negative"):
        weight_map(lab - 1)
    with pytest.raises(ValueError, match="sigma"):
        weight_map(lab, sigma=0.0)
    with pytest.raises(ValueError, match="w0"):
        weight_map_bruteforce(lab, w0=-1.0)
    with pytest.raises(ValueError, match="class balance"):
        weight_map(lab, class_balance="median")
    with pytest.raises(ValueError, match="2-D"):
        isbi_instances(np.zeros((2, 3, 4)))


# --- real data -------------------------------------------------------------------------------


def test_isbi_slices_match_bruteforce(shared_data):
    tifffile = pytest.importorskip("tifffile")
    labels = tifffile.imread(shared_data / "isbi2012" / "train-labels.tif")
    for k in (0, 17):
        inst = isbi_instances(labels[k])
        assert inst.max() > 50  # many cells per slice
        np.testing.assert_array_equal(training_target(inst), labels[k] > 0)
        fast = weight_map(inst)
        np.testing.assert_allclose(fast, weight_map_bruteforce(inst), rtol=0, atol=1e-5)
        assert fast[labels[k] == 0].max() > 5  # thin membranes get the large border weight


def test_ctc_hela_frame_matches_bruteforce(shared_data):
    tifffile = pytest.importorskip("tifffile")
    seg = sorted((shared_data / "ctc" / "DIC-C2DH-HeLa" / "01_GT" / "SEG").glob("*.tif"))
    inst = tifffile.imread(seg[0])
    assert separation_borders(inst).any()  # HeLa GT has touching cells
    np.testing.assert_allclose(weight_map(inst), weight_map_bruteforce(inst), rtol=0, atol=1e-5)


# --- partially annotated frames (ignore regions) ---------------------------------------------


def partial_frame(seed=0):
    """Touching cells, complete silver truth and markers; the gold truth lacks two cells."""
    silver = voronoi_instances(seed, shape=(60, 80), n_cells=14, bg_radius=10.0, n_holes=0)
    markers = np.where(ndi.binary_erosion(silver > 0, iterations=2), silver, 0)
    ids = [i for i in np.unique(silver) if i > 0 and np.any(markers == i)]
    left_out = ids[:2]
    gold = np.where(np.isin(silver, left_out), 0, silver)
    return gold, markers, silver, left_out


def test_unannotated_region_covers_left_out_cells_only():
    gold, markers, silver, left_out = partial_frame()
    region = unannotated_region(gold, markers, silver, margin=0)
    # exactly the silver objects of the left-out cells (the markers lie inside them)
    np.testing.assert_array_equal(region, np.isin(silver, left_out))
    grown = unannotated_region(gold, markers, silver, margin=2)
    assert grown.sum() > region.sum() and not (grown & (gold > 0)).any()
    # complete gold truth: nothing is ignored
    assert not unannotated_region(silver, markers, silver).any()


def test_unannotated_region_fallback_without_silver_truth():
    gold, markers, _, left_out = partial_frame(1)
    region = unannotated_region(gold, markers, None, margin=0, fallback_radius=3)
    for i in left_out:  # the marker grown by 3 px, minus the gold cells
        m = markers == i
        want = (ndi.distance_transform_edt(~m) <= 3) & (gold == 0)
        assert (region[want]).all()
    assert not (region & (gold > 0)).any()
    # default radius: the median gold cell's equivalent radius (larger than 3 px here)
    assert unannotated_region(gold, markers, None, margin=0).sum() > region.sum()


@pytest.mark.parametrize("balance", ["inverse_frequency", "none"])
def test_ignored_pixels_weigh_zero_and_wc_counts_annotated_pixels(balance):
    gold, markers, silver, _ = partial_frame(2)
    ignore = unannotated_region(gold, markers, silver)
    fast = weight_map(gold, class_balance=balance, ignore=ignore)
    np.testing.assert_allclose(
        fast, weight_map_bruteforce(gold, class_balance=balance, ignore=ignore), atol=1e-5
    )
    assert (fast[ignore] == 0).all() and (fast[~ignore] > 0).all()
    if balance == "inverse_frequency":  # w_c: each class has the total N' / 2 over annotated px
        target = training_target(gold)
        wc = weight_map(gold, w0=0, ignore=ignore)
        n_annotated = (~ignore).sum()
        for c in (0, 1):
            sel = (target == c) & ~ignore
            assert wc[sel].sum() == pytest.approx(n_annotated / 2, rel=1e-5)
    with pytest.raises(ValueError, match="overlaps annotated"):
        weight_map(gold, ignore=gold > 0)


def test_hela_01_t067_ignores_every_unannotated_cell(shared_data):
    """HeLa 01 frame 067: 3 gold objects for 18 tracked cells."""
    from unet_repro.datasets import read_ctc_sequence

    seq = read_ctc_sequence(shared_data / "ctc" / "DIC-C2DH-HeLa", "01", partial=True)
    k = int(np.flatnonzero(seq.frames == 67)[0])
    gold, markers, silver = seq.instances[k], seq.markers[67], seq.silver[67]
    assert len(np.unique(gold)) - 1 == 3 and len(np.unique(markers)) - 1 == 18
    w = weight_map(gold, ignore=unannotated_region(gold, markers, silver))
    unannotated = [m for m in np.unique(markers)[1:] if not (gold[markers == m] > 0).any()]
    assert len(unannotated) == 15
    for m in unannotated:  # zero weight under every marker without a gold object
        assert (w[markers == m] == 0).all(), m
    assert (w[gold > 0] > 0).all()  # and nowhere on annotated cells
    assert 0.4 < (w == 0).mean() < 0.7  # the silver truth covers about 61 % of the frame


# --- cores (weights.core_erosion, beyond the paper) ------------------------------------------


def core_bruteforce(lab, k):
    """A pixel stays when every pixel within distance k of it (inside the image) has its label."""
    h, w = lab.shape
    out = np.zeros_like(lab)
    for y, x in zip(*np.nonzero(lab), strict=True):
        ys, xs = np.mgrid[max(y - k, 0) : min(y + k + 1, h), max(x - k, 0) : min(x + k + 1, w)]
        near = (ys - y) ** 2 + (xs - x) ** 2 <= k * k
        if np.all(lab[ys[near], xs[near]] == lab[y, x]):
            out[y, x] = lab[y, x]
    return out


@pytest.mark.parametrize("case", CASES[:3])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_cores_match_their_definition(case, k):
    lab = voronoi_instances(**case)
    core, vanished = core_instances(lab, k)
    np.testing.assert_array_equal(core, core_bruteforce(lab, k))
    assert core.dtype == lab.dtype
    # the vanished pixels are exactly those of the labels without a core
    lost = set(np.unique(lab)) - set(np.unique(core))
    np.testing.assert_array_equal(vanished, np.isin(lab, list(lost)) & (lab > 0))


def test_cores_of_touching_cells_lie_apart_and_the_edge_does_not_erode():
    lab = np.zeros((30, 40), dtype=np.int32)
    lab[:, :20], lab[:, 20:] = 1, 2  # two cells touching along x = 19.5, both on the edges
    core, vanished = core_instances(lab, 2)
    assert not vanished.any()
    np.testing.assert_array_equal(np.unique(core[:, :18]), [1])  # edges top, bottom, left kept
    np.testing.assert_array_equal(np.unique(core[:, 22:]), [2])
    assert not core[:, 18:22].any()  # 2 px off each side of the contact: a 4-px gap
    assert not four_adjacent_different(training_target(core))
    np.testing.assert_array_equal(core_instances(lab, 0)[0], lab)


def test_a_cell_too_thin_for_a_core_vanishes():
    lab = np.zeros((20, 20), dtype=np.uint16)
    lab[2:18, 2:18] = 1
    lab[5:8, 10:15] = 0
    lab[10:13, 5:16] = 2  # 3 px thick: no core at erosion 2
    core, vanished = core_instances(lab, 2)
    assert 2 not in core and 1 in core
    np.testing.assert_array_equal(vanished, lab == 2)
    with pytest.raises(ValueError, match="whole number"):
        core_instances(lab, 1.5)
    with pytest.raises(ValueError, match=">= 0"):
        core_instances(lab, -1)
