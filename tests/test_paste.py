"""Composites with pasted touching cells (unet_repro.paste), against their definition."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_repro.paste import cell_gaps, cut_cells, paste_touching, roundness
from unet_repro.weights import separation_borders, training_target, weight_map

CROSS = ndi.generate_binary_structure(2, 1)


def disk_frame(centres, radius=8, shape=(96, 128)):
    """Separate disks (labels 1..n) on a textured background, and the image of them."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, dtype=np.int64)
    for k, (y, x) in enumerate(centres, start=1):
        lab[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = k
    image = 100 + 10 * np.sin(xx / 7.0) + 50.0 * (lab > 0) + lab
    return image, lab


def test_cut_cells_keeps_only_free_cells_with_their_halo():
    # 1: free; 2 and 3: 12 px apart (closer than the 4-px margin allows? no: 12 - 2*8 < 0, they
    # touch); 4: at the edge; 5: next to the ignore region
    image, lab = disk_frame([(30, 30), (70, 60), (70, 74), (8, 120), (70, 105)])
    ignore = np.zeros(lab.shape, dtype=bool)
    ignore[60:80, 116:120] = True
    cells = cut_cells(image, lab, ignore, margin=4, min_area=50)
    assert len(cells) == 1
    patch, mask = cells[0]
    assert patch.shape == mask.shape == (17 + 8, 17 + 8)
    assert mask.sum() == (lab == 1).sum()
    assert np.array_equal(patch, image[18:43, 18:43])
    # smaller than min_area: left out
    assert cut_cells(image, lab, ignore, margin=4, min_area=1000) == []


def test_roundness_is_one_for_a_disk_less_for_thinner_shapes_and_filters_cut_cells():
    yy, xx = np.mgrid[:60, :60]
    disk = (yy - 30) ** 2 + (xx - 30) ** 2 <= 20**2
    bar = np.zeros((60, 60), bool)
    bar[28:33, 5:55] = True  # 5 x 50
    assert 0.85 < roundness(disk) <= 1.0
    assert roundness(bar) < 0.4 < roundness(disk[10:50, 10:30] | disk[10:50, 30:50])
    assert roundness(np.zeros((5, 5), bool)) == 0.0
    # a disk and a bar, both free: a minimum roundness keeps the disk only
    lab = np.zeros((80, 120), np.int64)
    lab[10:70, 5:65][disk] = 1
    lab[40:45, 70:115] = 2
    image = 100.0 + 50 * (lab > 0)
    assert len(cut_cells(image, lab, margin=4, min_area=50)) == 2
    ((patch, mask),) = cut_cells(image, lab, margin=4, min_area=50, min_roundness=0.8)
    assert mask.sum() == disk.sum()


@pytest.mark.parametrize("seed", range(6))
def test_each_copy_touches_a_cell_keeps_off_the_others_and_leaves_the_rest(seed):
    image, lab = disk_frame([(30, 30), (60, 90), (75, 30)], radius=9)
    source_img, source_lab = disk_frame([(40, 60)], radius=7)
    cells = cut_cells(source_img, source_lab)
    ignore = np.zeros(lab.shape, dtype=bool)
    ignore[:6, 100:] = True
    img, out, ig, n = paste_touching(
        image, lab, cells, np.random.default_rng(seed), n_cells=2, ignore=ignore
    )
    assert n >= 1
    new = [k for k in np.unique(out) if k > lab.max()]
    assert len(new) == n and min(new) == lab.max() + 1
    for k in new:
        copy = out == k
        assert copy.sum() == cells[0][1].sum()  # pasted on top: the whole copy is kept
        # it touches (4-adjacent to) exactly one cell of the frame, the one it was placed on
        neighbours = set(np.unique(out[ndi.binary_dilation(copy, CROSS) & ~copy])) - {0, k}
        old = {m for m in neighbours if m <= lab.max()}
        assert len(old) == 1
        # and stays 2 px away from every other cell of the frame and the ignore region
        (touched,) = old
        others = np.isin(lab, [m for m in range(1, lab.max() + 1) if m != touched]) | ignore
        assert not np.any(ndi.binary_dilation(copy, CROSS, iterations=2) & others)
    pasted = out > lab.max()
    # the image is the frame's away from the blended edge; the ignore region minus the copies
    far = ~ndi.binary_dilation(pasted, CROSS, iterations=8)
    assert np.array_equal(img[far], image[far])
    assert np.array_equal(ig, ignore & ~pasted)
    # the old labels lose at most the covered pixels and keep at least half of themselves
    for m in range(1, lab.max() + 1):
        kept = (out == m).sum()
        assert 2 * kept >= (lab == m).sum() and np.all((lab == m) & ~pasted == (out == m))
    # the contact makes separation borders and the border term of w(x) there
    assert separation_borders(out).any()
    w = weight_map(out, ignore=ig)
    border = separation_borders(out)
    # background of the target there, with the border term: w0 exp(-(d1+d2)^2 / 2 sigma^2),
    # d1 + d2 < 3.8 px on a 2-px border (diagonal contacts included), is more than 7.5
    assert training_target(out)[border].max() == 0
    assert w[border].min() > np.median(w[out == 0]) + 7.5  # above the background class weight


def test_the_same_generator_state_gives_the_same_composite():
    image, lab = disk_frame([(30, 30), (60, 90)])
    cells = cut_cells(*disk_frame([(40, 60)], radius=6))
    a = paste_touching(image, lab, cells, np.random.default_rng(3))
    b = paste_touching(image, lab, cells, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a[:2], b[:2], strict=True)) and a[3] == b[3]
    c = paste_touching(image, lab, cells, np.random.default_rng(4))
    assert not np.array_equal(a[1], c[1])


def test_no_room_or_nothing_to_paste_leaves_the_frame_as_it_is():
    image, lab = disk_frame([(30, 30)])
    img, out, ig, n = paste_touching(image, lab, [], np.random.default_rng(0))
    assert n == 0 and np.array_equal(out, lab) and np.array_equal(img, image) and ig is None
    big = cut_cells(*disk_frame([(60, 64)], radius=40, shape=(128, 128)))
    img, out, _, n = paste_touching(image, lab, big, np.random.default_rng(0), tries=5)
    assert n == 0 and np.array_equal(out, lab)
    for bad in [(0.0, 1.0), (0.5, 0.3), (-0.1, 0.2)]:
        with pytest.raises(ValueError, match="overlap"):
            paste_touching(image, lab, big, np.random.default_rng(0), overlap=bad)


@pytest.mark.parametrize(("low", "high"), [(0.0, 0.2), (0.3, 0.6)])
def test_a_copy_covers_the_drawn_share_of_the_cell_it_sits_on(low, high):
    # one large flat cell; small round copies placed on it cover U(low, high) of their area
    image, lab = disk_frame([(64, 64)], radius=30, shape=(128, 128))
    cells = cut_cells(*disk_frame([(40, 60)], radius=8))
    shares = []
    for seed in range(8):
        _, out, _, n = paste_touching(
            image, lab, cells, np.random.default_rng(seed), n_cells=1, overlap=(low, high)
        )
        assert n == 1
        copy = out == 2
        shares.append(np.count_nonzero(copy & (lab == 1)) / copy.sum())
    # the first 1-px step outwards where the share falls to the draw: at most the draw, and
    # at least the draw less what one step uncovers (a 17-px wide copy: under 0.1)
    assert max(shares) <= high and min(shares) >= low - 0.1
    assert max(shares) - min(shares) > 0.05  # drawn, not fixed


@pytest.mark.parametrize("seed", range(4))
def test_cell_gaps_against_all_pixel_pairs(seed):
    rng = np.random.default_rng(seed)
    lab = np.zeros((20, 24), dtype=np.int64)
    for k in range(1, 5):
        y, x = rng.integers(0, 17), rng.integers(0, 21)
        lab[y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = k
    gaps = cell_gaps(lab)
    pts = {k: np.argwhere(lab == k) for k in np.unique(lab) if k}
    for k, p in pts.items():
        others = np.concatenate([q for m, q in pts.items() if m != k] or [np.empty((0, 2))])
        expect = (
            np.sqrt(((p[:, None] - others[None]) ** 2).sum(-1)).min() if len(others) else np.inf
        )
        assert gaps[k] == pytest.approx(expect)
    assert cell_gaps(disk_frame([(30, 30)])[1]) == {1: np.inf}
