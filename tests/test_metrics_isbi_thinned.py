"""V_Rand(thinned) and V_Info(thinned): brute-force definitions, a literal watershed, hand cases.

The references here are written from the definitions, not from the module:

* :func:`reference_watershed` floods a grey image level by level exactly as the Vincent-Soille
  algorithm of Fiji's ``WatershedTransform2D`` does (any number of grey levels, a sorted pixel
  list, a FIFO queue), in plain Python on ``[x][y]`` lists;
* :func:`pair_count_vrand` enumerates all ordered pairs of gold-cell pixels;
* :func:`entropy_vinfo` builds the joint distribution of (gold segment, proposal segment) with a
  ``Counter`` and takes entropies of it;
* :func:`reference_scores` chains them over slices and a threshold loop written as in Java.
"""

import math
from collections import Counter, deque

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label as sk_label

from unet_repro.metrics import isbi
from unet_repro.metrics import isbi_thinned as thin

EXPECTED_THRESHOLDS = [0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7]
EXPECTED_THRESHOLDS += [0.7999999999999999, 0.8999999999999999, 0.9999999999999999]


# ---------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------


def reference_watershed(image):
    """Vincent-Soille flooding of a grey image (H, W), 4-connectivity; labels, 0 = dam.

    Pixels are sorted by value, ties in scan order x outer, y inner. For each level: the
    level's pixels are masked and those with a labelled or dam 4-neighbour queued; the queue
    is flooded (neighbours left, up, right, down) giving a pixel its neighbour's basin, a dam
    where two basins meet, and the dam-neighbour rule with ``flag``; masked pixels left over are
    new minima, each grown into a new basin.
    """
    h, w = image.shape
    mask, wshed, init, inqueue = -2, 0, -1, -3
    lab = [[init] * h for _ in range(w)]
    order = sorted((float(image[y, x]), x * h + y, x, y) for x in range(w) for y in range(h))
    levels = []
    for value, _, x, y in order:
        if not levels or levels[-1][0] != value:
            levels.append((value, []))
        levels[-1][1].append((x, y))

    def neighbours(x, y):
        for u, v in ((x - 1, y), (x, y - 1), (x + 1, y), (x, y + 1)):
            if 0 <= u < w and 0 <= v < h:
                yield u, v

    current, flag = 0, False
    for _, pixels in levels:
        fifo = deque()
        for x, y in pixels:
            lab[x][y] = mask
            if any(lab[u][v] >= wshed for u, v in neighbours(x, y)):
                lab[x][y] = inqueue
                fifo.append((x, y))
        while fifo:
            x, y = fifo.popleft()
            for u, v in neighbours(x, y):
                nv = lab[u][v]
                if nv > 0:
                    if lab[x][y] == inqueue or (lab[x][y] == wshed and flag):
                        lab[x][y] = nv
                    elif lab[x][y] > 0 and lab[x][y] != nv:
                        lab[x][y] = wshed
                        flag = False
                elif nv == wshed:
                    if lab[x][y] == inqueue:
                        lab[x][y] = wshed
                        flag = True
                elif nv == mask:
                    lab[u][v] = inqueue
                    fifo.append((u, v))
        for x, y in pixels:
            if lab[x][y] == mask:
                current += 1
                lab[x][y] = current
                fifo = deque([(x, y)])
                while fifo:
                    px, py = fifo.popleft()
                    for u, v in neighbours(px, py):
                        if lab[u][v] == mask:
                            lab[u][v] = current
                            fifo.append((u, v))
    out = np.array(lab, dtype=np.int64).T
    out[out == init] = 0
    return out


def segments_of(gold_cell, prop_labels):
    """Per gold-cell pixel: gold segment id, proposal segment id (each dam pixel its own id)."""
    g = sk_label(gold_cell, connectivity=1)
    ys, xs = np.nonzero(gold_cell)
    gid = g[ys, xs]
    qid = prop_labels[ys, xs].astype(np.int64)
    dams = qid == 0
    qid[dams] = -1 - np.arange(dams.sum())  # singletons
    return gid, qid


def pair_count_vrand(gid, qid):
    """Rand F-score of all ordered pairs (self-pairs included) of gold-cell pixels.

    Returns (F, precision, recall); precision = pairs together in both / pairs together in the
    proposal, recall = pairs together in both / pairs together in the gold (1 without a false
    positive / negative pair), F = 2PR / (P + R); 0 when there is no gold cell pixel.
    """
    if gid.size == 0:
        return 0.0, math.nan, math.nan
    same_g = gid[:, None] == gid[None, :]
    same_q = qid[:, None] == qid[None, :]
    both = int(np.count_nonzero(same_g & same_q))
    fp = int(np.count_nonzero(same_q & ~same_g))
    fn = int(np.count_nonzero(same_g & ~same_q))
    prec = 1.0 if fp == 0 else both / (both + fp)
    rec = 1.0 if fn == 0 else both / (both + fn)
    return 2 * prec * rec / (prec + rec), prec, rec


def entropy(counter, n):
    return -sum(c / n * math.log(c / n) for c in counter.values())


def entropy_vinfo(gid, qid):
    """Information theoretic F-score from the explicit joint distribution of (gold, proposal).

    precision = I / H(gold), recall = I / H(proposal), I = H(gold) + H(proposal) - H(joint);
    one gold segment: (0, 1); one proposal segment: (1, 0) (Fiji's conventions); no gold cell
    pixel: 0.
    """
    n = gid.size
    if n == 0:
        return 0.0, 0.0, 1.0
    pa = Counter(gid.tolist())
    pb = Counter(qid.tolist())
    pab = Counter(zip(gid.tolist(), qid.tolist(), strict=True))
    ha, hb, hab = entropy(pa, n), entropy(pb, n), entropy(pab, n)
    mi = ha + hb - hab
    if len(pb) == 1:
        prec, rec = 1.0, 0.0
    elif len(pa) == 1:
        prec, rec = 0.0, 1.0
    else:
        prec, rec = mi / ha, mi / hb
    return 2 * prec * rec / (prec + rec), prec, rec


def java_thresholds():
    out, th = [], 0.0
    while th <= 1.0:
        out.append(th)
        th += 0.1
    return out


def reference_scores(gt, proposal):
    """Per-threshold slice means and maxima of both scores, all from the references above."""
    per = {"vrand_thinned": {}, "vinfo_thinned": {}}
    for th in java_thresholds():
        vr, vi = [], []
        for z in range(gt.shape[0]):
            membrane = np.where(proposal[z].astype(np.float64) > th, 0, 255)
            gid, qid = segments_of(gt[z] > 0, reference_watershed(membrane))
            vr.append(pair_count_vrand(gid, qid)[0])
            vi.append(entropy_vinfo(gid, qid)[0])
        per["vrand_thinned"][th] = sum(vr) / len(vr)
        per["vinfo_thinned"][th] = sum(vi) / len(vi)
    best = {k: max([0.0] + [x for x in v.values() if x == x]) for k, v in per.items()}
    return per, best


# ---------------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------------


def voronoi_cells(shape, n_seeds, rng):
    """Cell mask of a random Voronoi tessellation with 1-px membranes."""
    h, w = shape
    seeds = rng.integers(0, [h, w], size=(n_seeds, 2))
    yy, xx = np.mgrid[:h, :w]
    lab = ((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2).argmin(-1)
    boundary = np.zeros(shape, bool)
    boundary[:-1] |= lab[:-1] != lab[1:]
    boundary[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    return ~boundary


def random_case(seed, shape=(3, 20, 20), n_seeds=6, noise=0.3):
    rng = np.random.default_rng(seed)
    cell = np.stack([voronoi_cells(shape[1:], n_seeds, rng) for _ in range(shape[0])])
    p = ndi.gaussian_filter(cell.astype(np.float64), (0, 1, 1)) + rng.normal(0, noise, shape)
    return np.where(cell, 255, 0).astype(np.uint8), np.clip(p, 0, 1).astype(np.float32)


def sizes_entropy(sizes):
    n = sum(sizes)
    return -sum(s / n * math.log(s / n) for s in sizes)


# ---------------------------------------------------------------------------------------------
# thinning
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_thinning_equals_literal_watershed_on_random_binary_images(seed):
    rng = np.random.default_rng(seed)
    shapes = [(17, 23), (9, 9), (1, 12), (12, 1)]
    for frac in (0.2, 0.5, 0.8):
        h, w = shapes[seed]
        p = (rng.random((h, w)) < frac).astype(np.float32)  # salt-and-pepper cells
        lab, n = thin.thin_proposal(p, 0.5)
        ref = reference_watershed(np.where(p > 0.5, 0, 255))
        np.testing.assert_array_equal(lab, ref)  # same dams and the same basin numbering
        assert n == ref.max()


@pytest.mark.parametrize("seed", range(3))
def test_thinning_equals_literal_watershed_on_membrane_like_images(seed):
    gt, p = random_case(seed, shape=(1, 24, 24))
    for th in (0.1, 0.5, 0.8999999999999999):
        lab, _ = thin.thin_proposal(p[0], th)
        ref = reference_watershed(np.where(p[0].astype(np.float64) > th, 0, 255))
        np.testing.assert_array_equal(lab, ref)


def test_thinning_keeps_cells_floods_membranes_and_leaves_one_pixel_dams():
    cell = np.ones((9, 11), bool)
    cell[:, 5] = False  # one vertical membrane column
    lab, n = thin.thin_proposal(cell.astype(np.float32), 0.5)
    assert n == 2
    assert (lab[:, :5] == 1).all() and (lab[:, 6:] == 2).all()
    assert (lab[:, 5] == 0).all()  # a 1-pixel membrane between two cells stays a dam
    # a 3-pixel band: its outer columns join their cells, the middle column is the dam
    cell[:, 4:7] = False
    lab, _ = thin.thin_proposal(cell.astype(np.float32), 0.5)
    assert (lab[:, 4] == 1).all() and (lab[:, 6] == 2).all() and (lab[:, 5] == 0).all()
    # no cell at all: the whole slice is one basin, no dam; no membrane: one basin per cell
    lab, n = thin.thin_proposal(np.zeros((4, 5), np.float32), 0.5)
    assert n == 1 and (lab == 1).all()
    lab, n = thin.thin_proposal(np.ones((4, 5), np.float32), 0.5)
    assert n == 1 and (lab == 1).all()
    # an enclosed membrane-free hole of membrane joins the surrounding cell, no dam
    cell = np.ones((7, 7), bool)
    cell[2:5, 2:5] = False
    lab, n = thin.thin_proposal(cell.astype(np.float32), 0.5)
    assert n == 1 and (lab == 1).all()


# ---------------------------------------------------------------------------------------------
# per-slice scores against the brute-force definitions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_slice_scores_equal_pair_counting_and_explicit_entropies(seed):
    gt, p = random_case(seed, shape=(2, 22, 22), n_seeds=7)
    for th in (0.2, 0.5, 0.7):
        for z in range(2):
            prop, _ = thin.thin_proposal(p[z], th)
            s = thin.slice_scores(sk_label(gt[z] > 0, connectivity=1), prop)
            gid, qid = segments_of(gt[z] > 0, prop)
            f, prec, rec = pair_count_vrand(gid, qid)
            assert (s.v_rand, s.rand_precision, s.rand_recall) == pytest.approx(
                (f, prec, rec), abs=1e-12
            )
            f, prec, rec = entropy_vinfo(gid, qid)
            assert (s.v_info, s.info_precision, s.info_recall) == pytest.approx(
                (f, prec, rec), abs=1e-12
            )


@pytest.mark.parametrize("seed", range(3))
def test_full_sweep_equals_brute_force_pipeline(seed):
    gt, p = random_case(10 + seed, shape=(3, 20, 20), n_seeds=6)
    per, best = reference_scores(gt, p)
    res = thin.thinned_scores(gt, p)
    for name in thin.METRICS:
        assert list(res[name].per_threshold) == EXPECTED_THRESHOLDS
        got = [res[name].per_threshold[th] for th in EXPECTED_THRESHOLDS]
        want = [per[name][th] for th in EXPECTED_THRESHOLDS]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        assert res[name].best == pytest.approx(best[name], abs=1e-12)
        assert res[name].per_threshold[res[name].best_threshold] == res[name].best
    # the single-metric entry points give the same numbers
    assert thin.vrand_thinned(gt, p).per_threshold == res["vrand_thinned"].per_threshold
    assert thin.vinfo_thinned(gt, p).per_threshold == res["vinfo_thinned"].per_threshold


# ---------------------------------------------------------------------------------------------
# hand-made cases with known answers
# ---------------------------------------------------------------------------------------------


def test_identical_segmentations_score_one_at_every_threshold():
    gt = np.full((2, 20, 20), 255, np.uint8)
    gt[:, 10, :] = 0
    gt[:, :, 10] = 0
    gt[1, :, 4] = 0
    res = thin.thinned_scores(gt, (gt / 255).astype(np.float32))
    for r in res.values():
        assert all(v == pytest.approx(1.0, abs=1e-14) for v in r.per_threshold.values())
        assert r.best == pytest.approx(1.0, abs=1e-14) and r.best_threshold == 0.0


def test_pure_split():
    # gold: cells L (x < 10, 200 px) and R (x > 10, 180 px). The proposal cuts L along row 5:
    # L1 = 50 px, L2 = 140 px, and the 10 cut pixels stay dams (singletons) after thinning.
    gt = np.ones((20, 20), np.uint8)
    gt[:, 10] = 0
    prop = gt.astype(np.float32)
    prop[5, :10] = 0
    res = thin.thinned_scores(gt, prop)
    tp = 50**2 + 140**2 + 180**2 + 10  # pairs together in both (dams pair only with themselves)
    recall = tp / (200**2 + 180**2)  # no false positive pair: precision 1
    ha, hb = sizes_entropy([200, 180]), sizes_entropy([50, 140, 180] + [1] * 10)
    vr, vi = res["vrand_thinned"], res["vinfo_thinned"]
    assert vr.best == pytest.approx(2 * recall / (1 + recall), abs=1e-12)
    assert vi.best == pytest.approx(2 * ha / (ha + hb), abs=1e-12)  # I = H(gold)
    for r in (vr, vi):  # a split costs recall only
        assert r.details["precision"][0.5] == 1.0
        assert r.details["recall"][0.5] < 1.0


def test_pure_merge():
    # gold: L1 (50 px), L2 (140 px) separated by a membrane row, and R (180 px); the proposal
    # has no membrane between L1 and L2, so its segments are L1 + L2 (190 px) and R.
    gt = np.ones((20, 20), np.uint8)
    gt[:, 10] = 0
    gt[5, :10] = 0
    prop = np.ones((20, 20), np.float32)
    prop[:, 10] = 0
    res = thin.thinned_scores(gt, prop)
    tp = 50**2 + 140**2 + 180**2
    precision = tp / (190**2 + 180**2)  # no false negative pair: recall 1
    ha, hb = sizes_entropy([50, 140, 180]), sizes_entropy([190, 180])
    vr, vi = res["vrand_thinned"], res["vinfo_thinned"]
    assert vr.best == pytest.approx(2 * precision / (1 + precision), abs=1e-12)
    assert vi.best == pytest.approx(2 * hb / (ha + hb), abs=1e-12)  # I = H(proposal)
    for r in (vr, vi):  # a merge costs precision only
        assert r.details["recall"][0.5] == 1.0
        assert r.details["precision"][0.5] < 1.0
    # a single proposal segment (H = 0) scores 0 in V_Info whatever the gold (Fiji convention)
    r = thin.thinned_scores(gt, np.ones((20, 20), np.float32))
    assert r["vinfo_thinned"].best == 0.0
    assert r["vrand_thinned"].best == pytest.approx(
        2 * (tp / 370**2) / (1 + tp / 370**2), abs=1e-12
    )


def test_border_that_only_thickens_scores_one_after_thinning():
    gt = np.full((32, 32), 255, np.uint8)
    gt[[10, 21], :] = 0
    gt[:, [10, 21]] = 0
    for width in (1, 2):  # membranes 3 and 5 pixels wide, centred on the gold membranes
        thick = ndi.binary_dilation(gt == 0, iterations=width)
        prop = np.where(thick, 0.1, 0.9).astype(np.float32)
        res = thin.thinned_scores(gt, prop)
        assert res["vrand_thinned"].best == pytest.approx(1.0, abs=1e-14)
        assert res["vinfo_thinned"].best == pytest.approx(1.0, abs=1e-14)
        # without the thinning, the widened membranes are singletons inside the gold cells
        assert 1 - isbi.rand_error(gt, prop).best < 0.9
    # an even-width band puts its dam on a gold cell pixel: no longer a perfect score
    shifted = (gt == 0) | np.roll(gt == 0, 1, axis=1)
    res = thin.thinned_scores(gt, np.where(shifted, 0.1, 0.9).astype(np.float32))
    assert res["vrand_thinned"].best < 1.0


def test_threshold_sweep_and_strict_comparison():
    gt = np.ones((12, 12), np.uint8)
    gt[:, 6] = 0  # cells of 6 x 12 and 5 x 12 px
    res = thin.thinned_scores(gt, gt.astype(np.float32))
    assert list(res["vinfo_thinned"].per_threshold) == EXPECTED_THRESHOLDS
    assert EXPECTED_THRESHOLDS == isbi.thresholds(0.0, 1.0, 0.1)
    assert res["vrand_thinned"].per_threshold[EXPECTED_THRESHOLDS[-1]] == 1.0
    # p = 1 is still a cell at 0.9999999999999999; p = 0.95 is not: everything is membrane,
    # one basin, a total merge (V_Info 0 by the H(B) = 0 rule)
    prop = np.where(gt > 0, 0.95, 0.0).astype(np.float32)
    res = thin.thinned_scores(gt, prop)
    last = EXPECTED_THRESHOLDS[-1]
    assert res["vrand_thinned"].per_threshold[EXPECTED_THRESHOLDS[-2]] == 1.0
    assert res["vinfo_thinned"].per_threshold[last] == 0.0
    prec = (72**2 + 60**2) / 132**2  # cells of 72 and 60 px merged
    assert res["vrand_thinned"].per_threshold[last] == pytest.approx(2 * prec / (1 + prec))
    # p > th is strict: p = 0.5 exactly is membrane at th = 0.5
    prop = np.where(gt > 0, 0.5, 0.0).astype(np.float32)
    res = thin.thinned_scores(gt, prop, thresholds=[0.4, 0.5])
    assert res["vrand_thinned"].per_threshold[0.4] == 1.0
    assert res["vrand_thinned"].per_threshold[0.5] < 1.0
    assert res["vrand_thinned"].best_threshold == 0.4


def test_stack_score_is_the_mean_of_slice_scores_not_pooled_counts():
    # slice 0: two big gold cells merged by the proposal; slice 1: 16 small cells, perfect
    gt = np.zeros((2, 24, 24), np.uint8)
    gt[0, :, :11] = gt[0, :, 13:] = 1  # 264 px each
    gt[1] = 1
    gt[1, 5::6, :] = 0
    gt[1, :, 5::6] = 0
    prop = gt.astype(np.float32)
    prop[0] = 1.0
    res = thin.thinned_scores(gt, prop, thresholds=[0.5])
    one = [thin.thinned_scores(gt[z], prop[z], thresholds=[0.5]) for z in range(2)]
    for name in thin.METRICS:
        slices = [o[name].per_threshold[0.5] for o in one]
        assert res[name].per_slice[0.5] == pytest.approx(tuple(slices), abs=1e-15)
        assert res[name].per_threshold[0.5] == pytest.approx(np.mean(slices), abs=1e-15)
    prec0 = 2 * 264**2 / 528**2
    assert one[0]["vrand_thinned"].best == pytest.approx(2 * prec0 / (1 + prec0))
    assert one[1]["vrand_thinned"].best == 1.0
    # pooled counts (Fiji's perSliceAverage = false) would weigh the big slice more
    cells1 = np.bincount(sk_label(gt[1] > 0, connectivity=1).ravel())[1:]
    tp = 2 * 264**2 + int((cells1**2).sum())
    pooled_prec = tp / (528**2 + int((cells1**2).sum()))
    pooled = 2 * pooled_prec / (1 + pooled_prec)
    vr = res["vrand_thinned"]
    assert vr.details["pooled_f"][0.5] == pytest.approx(pooled, abs=1e-12)
    assert abs(vr.per_threshold[0.5] - pooled) > 0.05
    # V_Info: the mean differs from the score of the pooled joint distribution too
    ids = [segments_of(gt[z] > 0, thin.thin_proposal(prop[z], 0.5)[0]) for z in range(2)]
    gid = np.concatenate([g + 1000 * z for z, (g, _) in enumerate(ids)])
    qid = np.concatenate([q + 1000 * z for z, (_, q) in enumerate(ids)])
    assert abs(res["vinfo_thinned"].per_threshold[0.5] - entropy_vinfo(gid, qid)[0]) > 0.05


def test_empty_gold_slice_and_single_gold_segment():
    # a slice without gold cells scores 0 (Fiji's NaN arithmetic) and still counts in the mean
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[0, :, :4] = gt[0, :, 5:] = 1
    prop = gt.astype(np.float32)
    res = thin.thinned_scores(gt, prop, thresholds=[0.5])
    for name in thin.METRICS:
        assert res[name].per_slice[0.5] == pytest.approx((1.0, 0.0))
        assert res[name].best == pytest.approx(0.5)
    # one gold segment: H(gold) = 0, V_Info = 0 even for a perfect proposal; V_Rand = 1
    gt = np.ones((8, 8), np.uint8)
    res = thin.thinned_scores(gt, np.ones((8, 8), np.float32), thresholds=[0.5])
    assert res["vrand_thinned"].best == 1.0
    assert res["vinfo_thinned"].best == 0.0


def test_best_is_fiji_maximum():
    ths = [0.0, 0.1, 0.2, 0.3]
    assert thin._best([math.nan, 0.5, 0.5, math.nan], ths) == (0.5, 0.1)
    assert thin._best([0.0, 0.0, -1e-17, math.nan], ths) == (0.0, 0.0)


def test_gold_ids_and_dtypes_do_not_matter_and_inputs_are_checked():
    gt, p = random_case(7, shape=(2, 16, 16), n_seeds=5)
    ids = np.stack([ndi.label(g > 0)[0] for g in gt]).astype(np.int32) * 3
    a = thin.thinned_scores(gt, p)
    b = thin.thinned_scores(ids, p.astype(np.float64))
    for name in thin.METRICS:
        assert a[name].per_threshold == b[name].per_threshold
    rows = isbi.score_rows(a)
    assert len(rows) == 22 and sum(r["is_best"] for r in rows) == 2
    with pytest.raises(ValueError, match="metrics"):
        thin.thinned_scores(gt, p, metrics=("rand_error",))
    with pytest.raises(ValueError, match="empty"):
        thin.thinned_scores(gt, p, thresholds=[])
    with pytest.raises(ValueError, match="shape"):
        thin.thinned_scores(gt, p[:, :5])
    with pytest.raises(ValueError, match="one"):
        thin.thin_proposal(p, 0.5)
