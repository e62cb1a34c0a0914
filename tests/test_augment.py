"""Tests of the section 3.1 data augmentation (unet_repro.augment)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_repro.augment import (
    NO_AUG,
    check_aug,
    deform_grid,
    dense_displacement,
    grey_value_change,
    mirror_crop,
    random_displacement,
    sample_tile,
    warp,
)

GEOMETRY_ONLY = {"gamma": 0.0, "contrast": 0.0, "brightness": 0.0}


def smooth_image(shape, seed=0, sigma=4.0):
    """A smooth random field with zero mean and unit std."""
    f = ndi.gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma, mode="wrap")
    return ((f - f.mean()) / f.std()).astype(np.float32)


def assert_best_aligned(image, labels):
    """Labels match the image's sign (up to interpolation) better than any 1-pixel shift does."""

    def agreement(dr, dc):
        return ((np.roll(image, (dr, dc), axis=(0, 1)) > 0) == (labels == 1)).mean()

    agree = agreement(0, 0)
    shifted = max(agreement(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc)
    assert agree > 0.97, agree
    assert agree > shifted + 0.01, (agree, shifted)


# --------------------------------------------------------------------------------------------
# the deformation itself
# --------------------------------------------------------------------------------------------


def test_zero_displacement_is_identity():
    img = smooth_image((40, 50))
    lab = (img > 0).astype(np.uint8)
    w = np.abs(img) + 1
    out_img, out_lab, out_w = deform_grid([img, lab, w], np.zeros((2, 3, 3)))
    np.testing.assert_allclose(out_img, img, atol=1e-5)
    np.testing.assert_array_equal(out_lab, lab)
    np.testing.assert_array_equal(out_w, w)


@pytest.mark.parametrize("shift", [(3, -5), (-7, 2), (0, 11)])
def test_constant_displacement_moves_a_dot(shift):
    """A constant field u moves content by -u (backward map out[p] = in[p + u])."""
    img = np.zeros((41, 37), np.float64)
    img[20, 18] = 1.0
    lab = (img > 0).astype(np.uint8)
    coarse = np.empty((2, 3, 3))
    coarse[0], coarse[1] = shift
    out_img, out_lab, out_w = deform_grid([img, lab, img.copy()], coarse)
    expect = (20 - shift[0], 18 - shift[1])
    assert np.argwhere(out_lab).tolist() == [list(expect)]
    assert np.unravel_index(np.argmax(out_img), img.shape) == expect
    assert out_img[expect] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(out_w[expect], 1.0, atol=1e-9)


def test_subpixel_displacement_on_a_ramp():
    """Linear interpolation of a linear ramp under a constant fractional field is exact."""
    rows = np.arange(60, dtype=np.float64)[:, None] * np.ones((1, 60))
    field = np.full((2, 60, 60), 0.0)
    field[0] = 2.25
    out = warp(rows, field, order=1)
    np.testing.assert_allclose(out[5:-5, 5:-5], rows[5:-5, 5:-5] + 2.25, atol=1e-12)
    out3 = warp(rows, field, order=3)  # cubic splines reproduce linear functions too
    np.testing.assert_allclose(out3[15:-15, 15:-15], rows[15:-15, 15:-15] + 2.25, atol=1e-6)


def test_dense_field_interpolates_the_control_points():
    rng = np.random.default_rng(1)
    coarse = random_displacement(rng, sigma=10, points=3)
    field = dense_displacement(coarse, (41, 61))  # control points at rows 0, 20, 40; cols 0, 30, 60
    np.testing.assert_allclose(field[:, ::20, ::30], coarse, atol=1e-9)
    # smooth: neighbouring pixels differ by far less than the control values
    assert np.abs(np.diff(field, axis=1)).max() < 0.2 * np.abs(coarse).max()


def test_random_displacement_statistics():
    coarse = random_displacement(np.random.default_rng(0), sigma=10, points=3)
    assert coarse.shape == (2, 3, 3)
    many = np.concatenate(
        [random_displacement(np.random.default_rng(s)).ravel() for s in range(400)]
    )
    assert many.std() == pytest.approx(10, rel=0.05)


def test_matches_elasticdeform():
    """Same field, same conventions as elasticdeform.deform_grid (when it is importable)."""
    elasticdeform = pytest.importorskip("elasticdeform", exc_type=ImportError)
    rng = np.random.default_rng(2)
    for shape, points in [((60, 60), (3, 3)), ((50, 70), (3, 5))]:
        img = rng.random(shape)
        lab = (rng.random(shape) > 0.5).astype(np.uint8)
        w = rng.random(shape).astype(np.float32)
        coarse = rng.normal(0, 10, (2, *points))
        ref = elasticdeform.deform_grid([img, lab, w], coarse, order=[3, 0, 1], mode="mirror")
        ours = deform_grid([img, lab, w], coarse, (3, 0, 1))
        np.testing.assert_allclose(ours[0], ref[0], atol=1e-8)
        np.testing.assert_array_equal(ours[1], ref[1])
        np.testing.assert_allclose(ours[2], ref[2], atol=1e-6)


def test_labels_stay_binary_and_weights_in_range():
    rng = np.random.default_rng(3)
    img = smooth_image((80, 80), seed=3)
    lab = (img > 0).astype(np.uint8)
    w = (1 + 5 * (img > 1)).astype(np.float32)
    for _ in range(5):
        _, out_lab, out_w = deform_grid([img, lab, w], random_displacement(rng, 10, 3))
        assert out_lab.dtype == np.uint8
        assert set(np.unique(out_lab)) <= {0, 1}
        assert 0 < out_lab.mean() < 1
        assert out_w.min() >= 1 - 1e-6 and out_w.max() <= 6 + 1e-6


def test_image_labels_weights_stay_aligned():
    """Labels = threshold of the image; the thresholded deformed image ~ the deformed labels."""
    rng = np.random.default_rng(4)
    img = smooth_image((96, 96), seed=4)
    lab = (img > 0).astype(np.uint8)
    for _ in range(3):
        coarse = random_displacement(rng, 10, 3)
        out_img, out_lab, out_w = deform_grid([img, lab, img], coarse)
        assert_best_aligned(out_img, out_lab)
        # weights (linear) ~ image (cubic) at the same coordinates, away from the mirror folds
        src = np.indices(img.shape) + dense_displacement(coarse, img.shape)
        inside = np.all((src > 3) & (src < 92), axis=0)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(out_w[inside], out_img[inside], atol=0.05)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def test_mirror_crop_matches_numpy_reflect():
    a = np.arange(5 * 7).reshape(5, 7)
    big = np.pad(a, 30, mode="reflect")
    for top, left, size in [(0, 0, 3), (-4, -6, 12), (2, 3, 20), (-25, -20, 40)]:
        got = mirror_crop(a, top, left, size)
        np.testing.assert_array_equal(got, big[30 + top : 30 + top + size, 30 + left :][:, :size])
    assert mirror_crop(a, -3, -3, 20)[3, 3] == a[0, 0]
    assert mirror_crop(a, -3, -3, 20)[2, 3] == a[1, 0]  # the edge pixel is not repeated


def test_grey_value_change():
    rng = np.random.default_rng(0)
    x = smooth_image((30, 30))
    np.testing.assert_array_equal(grey_value_change(x, rng, 0, 0, 0), x)
    g = grey_value_change(x, rng, gamma=0.5, contrast=0, brightness=0)
    assert g.min() == pytest.approx(x.min(), abs=1e-5)
    assert g.max() == pytest.approx(x.max(), abs=1e-5)
    order = np.argsort(x, axis=None)
    assert np.all(np.diff(g.ravel()[order]) >= -1e-6)  # monotone
    c = grey_value_change(x, np.random.default_rng(1), 0, contrast=0.2, brightness=0.3)
    slope = np.polyfit(x.ravel(), c.ravel(), 1)
    assert 0.8 <= slope[0] <= 1.2 and abs(slope[1]) <= 0.3


def test_check_aug():
    assert check_aug()["elastic_sigma"] == 10.0
    assert check_aug()["elastic_points"] == 3
    with pytest.raises(ValueError, match="elastik"):
        check_aug({"elastik": True})
    with pytest.raises(ValueError, match="brightness"):
        check_aug({"brightness": -1})


# --------------------------------------------------------------------------------------------
# sample_tile
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(100, 120), (30, 25), (60, 60)])
@pytest.mark.parametrize("aug", [None, NO_AUG, {"rotation_deg": 20.0, "gamma": 0.3}])
def test_sample_tile_shapes(shape, aug):
    img = smooth_image(shape)
    x, y, w = sample_tile(
        img, (img > 0).astype(np.uint8), None, np.random.default_rng(0), 92, 52, aug
    )
    assert x.shape == (92, 92) and x.dtype == np.float32
    assert y.shape == (52, 52) and y.dtype == np.int64
    assert w.shape == (52, 52) and w.dtype == np.float32
    assert set(np.unique(y)) <= {0, 1}
    np.testing.assert_allclose(w, 1.0, atol=1e-6)


@pytest.mark.parametrize("shape", [(70, 90), (20, 30), (15, 26)])
def test_no_augmentation_gives_aligned_centre_crop(shape):
    """Each pixel carries its own index: target and weights are the input tile's centre."""
    idx = np.arange(shape[0] * shape[1]).reshape(shape)
    big = np.pad(idx, 100, mode="reflect")  # starts >= -19, minus the 20 px margin: >= -39

    def starts(length):  # possible starts of the 20-pixel output window on an axis
        return range(-19, length)  # "uniform" placement: every window touching the image

    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(10):
        xf = idx.astype(np.float32)
        x, y, w = sample_tile(xf, idx, xf, rng, 60, 20, NO_AUG)
        np.testing.assert_array_equal(y, x[20:40, 20:40])
        np.testing.assert_array_equal(w, x[20:40, 20:40])
        # x is the 60-pixel window of the mirror-extended image around the output window
        hits = [
            (r, c)
            for r in starts(shape[0])
            for c in starts(shape[1])
            if np.array_equal(x, big[r + 80 : r + 140, c + 80 : c + 140])
        ]
        # one position, up to the mirror period 2 (L - 1) on an axis shorter than the tile
        assert hits
        assert all((a - hits[0][0]) % (2 * shape[0] - 2) == 0 for a, _ in hits)
        assert all((b - hits[0][1]) % (2 * shape[1] - 2) == 0 for _, b in hits)
        seen.add(hits[0])
    assert len(seen) > 3  # the position is random (the shift)


def test_zero_deformation_matches_exact_crop():
    """The interpolating path (with a ~0 field) and the integer crop agree, also near borders."""
    for shape in [(70, 90), (25, 33)]:
        img = smooth_image(shape)
        lab = (img > 0).astype(np.uint8)
        w = np.abs(img)
        off = {**NO_AUG, "enabled": True, "elastic": False, "rot90": False, "flip": False}
        off.update(GEOMETRY_ONLY)
        tiny = {**off, "elastic": True, "elastic_sigma": 1e-9}
        a = sample_tile(img, lab, w, np.random.default_rng(7), 76, 36, off)
        b = sample_tile(img, lab, w, np.random.default_rng(7), 76, 36, tiny)
        np.testing.assert_allclose(b[0], a[0], atol=1e-5)
        np.testing.assert_array_equal(b[1], a[1])
        np.testing.assert_allclose(b[2], a[2], atol=1e-6)


def test_augmented_tile_stays_aligned():
    img = smooth_image((120, 120), seed=9)
    lab = (img > 0).astype(np.uint8)
    # inside the image: linear (weights) and cubic (image) interpolation differ more at the
    # mirror seams of a window that leaves the image (a kink), not what is tested here
    aug = {"rotation_deg": 30.0, **GEOMETRY_ONLY, "placement": "inside"}
    rng = np.random.default_rng(9)
    for _ in range(6):
        x, y, w = sample_tile(img, lab, img, rng, 92, 52, aug)
        centre = x[20:72, 20:72]
        assert_best_aligned(centre, y)
        np.testing.assert_allclose(w, np.maximum(centre, 0), atol=0.06)


def test_sample_tile_is_deterministic():
    img = smooth_image((80, 80))
    lab = (img > 0).astype(np.uint8)
    aug = {"rotation_deg": 10.0, "gamma": 0.2}
    a = sample_tile(img, lab, None, np.random.default_rng(11), 92, 52, aug)
    b = sample_tile(img, lab, None, np.random.default_rng(11), 92, 52, aug)
    c = sample_tile(img, lab, None, np.random.default_rng(12), 92, 52, aug)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_sample_tile_rejects_bad_sizes():
    img = np.zeros((30, 30), np.float32)
    with pytest.raises(ValueError, match="even"):
        sample_tile(img, img.astype(np.uint8), None, np.random.default_rng(0), 61, 20)
    with pytest.raises(ValueError, match="shape"):
        sample_tile(img, img[:5].astype(np.uint8), None, np.random.default_rng(0), 60, 20)


@pytest.mark.parametrize("length", [50, 20, 7])
def test_uniform_placement_covers_every_pixel_equally(length):
    """Every start is enumerated: each pixel lies in exactly `window` of them (uniform)."""
    from unet_repro.augment import _random_start

    window = 20
    rng = np.random.default_rng(0)
    draws = [_random_start(rng, length, window) for _ in range(4000)]
    assert min(draws) == -(window - 1) and max(draws) == length - 1  # the whole range is used
    counts = np.zeros(length)
    for s in range(-(window - 1), length):
        counts[max(s, 0) : min(s + window, length)] += 1
    np.testing.assert_array_equal(counts, window)  # exactly uniform over the range
    # and the draws are uniform over the range: empirical coverage is flat (borders included)
    cover = np.zeros(length)
    for s in draws:
        cover[max(s, 0) : min(s + window, length)] += 1
    cover /= len(draws)
    expected = window / (length + window - 1)
    assert np.abs(cover - expected).max() < 0.05
    # the "inside" placement under-covers the borders (the reason for "uniform")
    if length > window:
        inside = np.zeros(length)
        for _ in range(4000):
            s = _random_start(rng, length, window, "inside")
            inside[s : s + window] += 1
        assert inside[0] < 0.5 * inside[length // 2]


def test_sample_tile_coverage_counts():
    """Training tiles of an index image: every image pixel is in the loss window equally often.

    The window position of each tile is recovered from its content (the mirror-extended index
    image); a pixel counts when the window covers it itself, not a mirror copy of it.
    """
    shape, out, n = (24, 37), 12, 3000

    def reflect(start, length):  # indices of a window on the mirror-extended axis
        return np.pad(np.arange(length), 3 * out, mode="reflect")[start + 3 * out :][:out]

    idx = np.arange(shape[0] * shape[1]).reshape(shape)
    counts = np.zeros(shape)
    for i in range(n):
        _, y, _ = sample_tile(
            idx.astype(np.float32), idx, None, np.random.default_rng([1, i]), out + 8, out, NO_AUG
        )
        rows = [
            r
            for r in range(-out, shape[0])
            if np.array_equal(y[:, 0] // shape[1], reflect(r, shape[0]))
        ]
        cols = [
            c
            for c in range(-out, shape[1])
            if np.array_equal(y[0] % shape[1], reflect(c, shape[1]))
        ]
        assert len(rows) == 1 and len(cols) == 1
        r, c = rows[0], cols[0]
        counts[max(r, 0) : r + out, max(c, 0) : c + out] += 1
    p = counts / n
    expected = (out / (shape[0] + out - 1)) * (out / (shape[1] + out - 1))
    assert abs(p.mean() - expected) < 0.01
    # flat: corners and borders as often as the centre (binomial noise ~0.008 per pixel)
    assert np.abs(p - expected).max() < 0.035
    assert abs(p[0, 0] - p[shape[0] // 2, shape[1] // 2]) < 0.035


def test_scale_zooms_about_the_tile_centre():
    """A centred disk of radius r comes out with radius r * exp(U(-s, s)): areas between
    exp(-2s) and exp(2s) of the original, both larger and smaller ones, image and target
    zoomed alike."""
    n, r, s = 201, 30.0, 0.3
    yy, xx = np.indices((n, n)) - n // 2
    disk = (yy**2 + xx**2 <= r**2).astype(np.uint8)
    img = disk.astype(np.float32) * 2 - 1
    aug = {**NO_AUG, "enabled": True, "elastic": False, "rot90": False, "flip": False}
    aug.update(GEOMETRY_ONLY, placement="inside", scale=s)
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(40):
        x, y, _w = sample_tile(img, disk, None, rng, n, n, aug)
        ratios.append(y.sum() / disk.sum())
        # the same zoom: the radii of image and target agree to a fraction of a pixel
        assert abs(np.sqrt((x > 0).sum() / np.pi) - np.sqrt(y.sum() / np.pi)) < 0.75
        assert y[n // 2, n // 2] == 1  # about the centre
    ratios = np.array(ratios)
    assert ratios.min() >= np.exp(-2 * s) * 0.97 and ratios.max() <= np.exp(2 * s) * 1.03
    assert ratios.min() < 0.8 and ratios.max() > 1.25  # both ways, spread over the range


def test_scale_zero_draws_nothing():
    """scale 0 (the default) gives the tiles of before, byte for byte: no draw is spent."""
    img = smooth_image((90, 90), seed=4)
    lab = (img > 0).astype(np.uint8)
    a = sample_tile(img, lab, None, np.random.default_rng(5), 92, 52, {"rotation_deg": 10.0})
    b = sample_tile(
        img, lab, None, np.random.default_rng(5), 92, 52, {"rotation_deg": 10.0, "scale": 0}
    )
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="scale"):
        sample_tile(img, lab, None, np.random.default_rng(5), 92, 52, {"scale": -0.1})
