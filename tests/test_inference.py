"""Tests of overlap-tile prediction, mirror padding and test-time averaging."""

import numpy as np
import pytest
import torch

import unet_repro.inference as inference
from unet_repro.inference import (
    TRANSFORM_SETS,
    TRANSFORMS,
    mirror_pad,
    predict_averaged,
    predict_tiled,
    predict_volume,
    resolve_transforms,
    tile_stride,
)
from unet_repro.model import UNet, margin, output_size, valid_input_size

ATOL = 1e-5


@pytest.fixture(autouse=True)
def one_thread():
    """Many small tiles: one thread is faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_net(depth=2, base=4, seed=0, n_classes=2):
    torch.manual_seed(seed)
    return UNet(base_channels=base, depth=depth, n_classes=n_classes).eval()


def random_image(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def whole_image_prediction(net, image):
    """One forward pass over the whole image, mirror-padded to the next valid size."""
    depth, m = net.depth, margin(net.depth)
    h, w = image.shape
    sizes = [valid_input_size(d, depth) for d in range(8, 200)]
    ph = next(s for s in sizes if s - 2 * m >= h)
    pw = next(s for s in sizes if s - 2 * m >= w)
    padded = mirror_pad(image, ((m, ph - h - m), (m, pw - w - m)))
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(padded))[None, None])
    return torch.softmax(logits, 1)[0, :, :h, :w].numpy()


# ------------------------------------------------------------------------------------------
# mirror padding
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (2, 3), (3, 9, 4)])
def test_mirror_pad_matches_numpy_reflect(shape):
    x = random_image(shape)
    h, w = shape[-2:]
    rng = np.random.default_rng(1)
    for _ in range(10):
        t, b = rng.integers(0, h, size=2)
        left, r = rng.integers(0, w, size=2)
        lead = [(0, 0)] * (len(shape) - 2)
        expected = np.pad(x, [*lead, (t, b), (left, r)], mode="reflect")
        np.testing.assert_array_equal(mirror_pad(x, ((t, b), (left, r))), expected)
    np.testing.assert_array_equal(
        mirror_pad(x, 1), np.pad(x, [(0, 0)] * (len(shape) - 2) + [(1, 1)] * 2, mode="reflect")
    )


def _periodic_reflection_oracle(x, before, after):
    """1-D: the sequence x0..x_{n-1}, x_{n-2}..x_1 repeated, read from -before to n+after."""
    period = np.concatenate([x, x[-2:0:-1]])
    reps = (before + after) // len(period) + 3
    tiled = np.tile(period, 2 * reps)
    start = reps * len(period) - before
    return tiled[start : start + before + len(x) + after]


def test_mirror_pad_larger_than_image():
    x = random_image((3, 4))
    padded = mirror_pad(x, ((11, 7), (9, 20)))
    assert padded.shape == (3 + 18, 4 + 29)
    # separable: every column / row of the result is the periodic reflection of the image's
    for j in range(4):
        np.testing.assert_array_equal(padded[:, 9 + j], _periodic_reflection_oracle(x[:, j], 11, 7))
    for i in range(padded.shape[0]):
        np.testing.assert_array_equal(
            padded[i], _periodic_reflection_oracle(padded[i, 9:13], 9, 20)
        )
    # the edge pixel is never repeated
    assert not np.any(padded[:, 1:] == padded[:, :-1])
    assert not np.any(padded[1:] == padded[:-1])


def test_mirror_pad_single_pixel_axis_and_errors():
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(mirror_pad(x, ((2, 1), (0, 0))), np.repeat(x, 4, axis=0))
    with pytest.raises(ValueError):
        mirror_pad(x, -1)
    with pytest.raises(ValueError):
        mirror_pad(np.zeros(4), 1)


# ------------------------------------------------------------------------------------------
# overlap-tile prediction
# ------------------------------------------------------------------------------------------


def test_tile_stride():
    assert tile_stride(572) == 384  # 388 rounded down to a multiple of 16
    assert tile_stride(252, 4) == 64
    assert tile_stride(60, 2) == output_size(60, 2) == 20
    with pytest.raises(ValueError, match="at least 204"):
        tile_stride(188)
    with pytest.raises(ValueError, match="570"):
        tile_stride(570)


@pytest.mark.parametrize(("depth", "shape"), [(2, (100, 130)), (2, (64, 64)), (3, (100, 130))])
def test_tiled_prediction_is_seamless(depth, shape):
    net = small_net(depth=depth)
    image = random_image(shape, seed=depth)
    whole = whole_image_prediction(net, image)
    tiles = [valid_input_size(d, depth) for d in (9, 11, 13, 17)]
    for n in tiles:
        probs = predict_tiled(net, image, n, batch_size=3)
        assert probs.shape == (2, *shape) and probs.dtype == np.float32
        np.testing.assert_allclose(probs, whole, atol=ATOL, rtol=0)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-6)
    assert probs.std() > 0.01  # a non-trivial map


def test_naive_stride_is_not_seamless(monkeypatch):
    """Negative control: tiles at the full output stride (not a multiple of 2**depth) see
    different max-pooling grids, so different tile sizes disagree."""
    net = small_net(depth=3)
    image = random_image((100, 130))
    tiles = [valid_input_size(d, 3) for d in (9, 11)]  # outputs 12 and 28, 4 modulo 8
    monkeypatch.setattr(inference, "tile_stride", output_size)
    a, b = (predict_tiled(net, image, n) for n in tiles)
    assert np.abs(a - b).max() > 1e-3


def test_image_smaller_than_tile_and_non_square():
    net = small_net(depth=2)
    for shape in [(7, 5), (1, 30), (30, 1)]:
        image = random_image(shape)
        probs = predict_tiled(net, image, valid_input_size(20, 2))
        assert probs.shape == (2, *shape)
        np.testing.assert_allclose(probs, whole_image_prediction(net, image), atol=ATOL)


def test_cell_tracking_frame_size_depth_4():
    """520 x 696 frames (PhC-U373) with the paper's depth: 572 tiles equal 252 tiles."""
    net = small_net(depth=4, base=2)
    image = random_image((520, 696))
    big = predict_tiled(net, image, 572, batch_size=4)
    small = predict_tiled(net, image, 252, batch_size=16)
    assert big.shape == (2, 520, 696)
    np.testing.assert_allclose(big, small, atol=ATOL, rtol=0)


def test_batch_size_and_mode_restored():
    net = small_net(depth=2)
    image = random_image((50, 70))
    net.train()
    a = predict_tiled(net, image, 60, batch_size=1)
    assert net.training
    b = predict_tiled(net, image, 60, batch_size=100)
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)


def test_multiclass_and_multichannel():
    torch.manual_seed(0)
    net = UNet(in_channels=3, n_classes=4, base_channels=4, depth=2)
    image = random_image((3, 40, 50))
    probs = predict_tiled(net, image, 60)
    assert probs.shape == (4, 40, 50)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        predict_tiled(net, image[0], 60)


def test_invalid_tile_size_rejected():
    with pytest.raises(ValueError, match="nearest valid sizes"):
        predict_tiled(small_net(depth=2), random_image((20, 20)), 61)


# ------------------------------------------------------------------------------------------
# test-time averaging
# ------------------------------------------------------------------------------------------


def test_transforms_explicit():
    a = np.array([[1, 2, 3], [4, 5, 6]])
    expected = {
        "identity": [[1, 2, 3], [4, 5, 6]],
        "rot90": [[3, 6], [2, 5], [1, 4]],  # counter-clockwise
        "rot180": [[6, 5, 4], [3, 2, 1]],
        "rot270": [[4, 1], [5, 2], [6, 3]],
        "flip_lr": [[3, 2, 1], [6, 5, 4]],
        "flip_ud": [[4, 5, 6], [1, 2, 3]],
        "transpose": [[1, 4], [2, 5], [3, 6]],
        "antitranspose": [[6, 3], [5, 2], [4, 1]],
    }
    assert set(TRANSFORMS) == set(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(TRANSFORMS[name].forward(a), want, err_msg=name)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_inverse_undoes_transform(name):
    x = random_image((3, 5, 8))
    t = TRANSFORMS[name]
    np.testing.assert_array_equal(t.inverse(t.forward(x)), x)
    np.testing.assert_array_equal(t.forward(t.inverse(x)), x)


def test_transforms_form_the_dihedral_group():
    x = random_image((4, 4))
    images = {name: t.forward(x).tobytes() for name, t in TRANSFORMS.items()}
    assert len(set(images.values())) == 8  # all distinct
    for s in TRANSFORMS.values():  # closed under composition
        for t in TRANSFORMS.values():
            assert s.forward(t.forward(x)).tobytes() in images.values()


def test_resolve_transforms():
    assert resolve_transforms("none") == ("identity",)
    assert resolve_transforms([]) == ("identity",)
    assert resolve_transforms(None) == ("identity",)
    assert resolve_transforms("rot90") == ("rot90",)
    assert resolve_transforms("flips") == TRANSFORM_SETS["flips"]
    assert len(resolve_transforms("dihedral")) == 8
    assert resolve_transforms(["none"]) == ("identity",)
    assert resolve_transforms(["flips", "rot90"]) == (*TRANSFORM_SETS["flips"], "rot90")
    with pytest.raises(ValueError, match="valid: identity, rot90"):
        resolve_transforms(["identity", "rot45"])


def test_averaging_matches_definition_on_non_square_image():
    net = small_net(depth=2)
    image = random_image((40, 56))
    names = ["identity", "rot90", "flip_lr", "antitranspose"]
    got = predict_averaged(net, image, names, tile_size=60, batch_size=4)
    manual = np.mean(
        [
            TRANSFORMS[n].inverse(
                predict_tiled(net, np.ascontiguousarray(TRANSFORMS[n].forward(image)), 60)
            )
            for n in names
        ],
        axis=0,
    )
    assert got.shape == (2, 40, 56) and got.dtype == np.float32
    np.testing.assert_allclose(got, manual, atol=1e-6)
    np.testing.assert_array_equal(
        predict_averaged(net, image, "none", 60), predict_tiled(net, image, 60)
    )


def test_transformed_copies_are_batched_together(monkeypatch):
    """The tiles of all transformed copies share forward passes; the batch size (1 tile, a
    mix of copies, all at once) does not change the result."""
    net = small_net(depth=2)
    image = random_image((50, 70))  # 60 tiles: stride 20 -> 3 x 4 tiles per copy
    sizes = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda x: sizes.append(len(x)) or forward(x))
    names = ["identity", "rot90", "flip_ud"]
    a = predict_averaged(net, image, names, 60, batch_size=5)
    assert sizes == [5] * 7 + [1]  # 36 tiles of 3 copies
    b = predict_averaged(net, image, names, 60, batch_size=1)
    c = predict_averaged(net, image, names, 60, batch_size=100)
    np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
    np.testing.assert_allclose(a, c, atol=ATOL, rtol=0)


def test_float32_on_the_cpu_keeps_nchw():
    net = small_net(depth=2)
    image = random_image((40, 56))
    plain = predict_averaged(net, image, "flips", 60, amp=False, channels_last=False)
    np.testing.assert_array_equal(
        predict_averaged(net, image, "flips", 60, amp=False, channels_last="auto"), plain
    )
    assert all(p.is_contiguous() for p in net.parameters())  # NCHW kept on the CPU


def test_bfloat16_prediction_on_the_cpu_is_close_to_float32():
    net = small_net(depth=2)
    image = random_image((40, 56))
    plain = predict_averaged(net, image, "flips", 60, amp=False, channels_last=False)
    bf16 = predict_averaged(net, image, "flips", 60, amp=True, channels_last="auto")
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, plain)
    np.testing.assert_allclose(bf16, plain, atol=2e-2, rtol=0)


def test_full_dihedral_averaging_is_equivariant():
    net = small_net(depth=2)
    image = random_image((40, 56))
    base = predict_averaged(net, image, "dihedral", tile_size=60)
    for name, t in TRANSFORMS.items():
        moved = np.ascontiguousarray(t.forward(image))
        np.testing.assert_allclose(
            predict_averaged(net, moved, "dihedral", 60), t.forward(base), atol=ATOL, err_msg=name
        )
    # negative control: a single prediction of a random network is not rotation-equivariant
    single = predict_tiled(net, np.ascontiguousarray(np.rot90(image)), 60)
    assert np.abs(single - np.rot90(predict_tiled(net, image, 60), axes=(1, 2))).max() > 1e-3


def test_predict_volume():
    net = small_net(depth=2)
    images = random_image((3, 30, 41))
    calls = []
    probs = predict_volume(
        net, images, 60, transforms="flips", progress=lambda i, n: calls.append(i)
    )
    assert probs.shape == (3, 30, 41) and probs.dtype == np.float32
    assert calls == [1, 2, 3]
    np.testing.assert_allclose(
        probs[1], predict_averaged(net, images[1], "flips", 60)[1], atol=1e-7
    )


def test_tiled_prediction_with_batch_norm_is_seamless():
    """A trained batch-normalised network (running statistics) predicts the same
    probabilities with every tile size as over the whole image."""
    net = UNet(base_channels=4, depth=2, seed=1, norm="batch", dropout=0.0)
    net.train()
    with torch.no_grad():
        for k in range(3):  # non-trivial running statistics
            net(torch.from_numpy(random_image((1, 1, 92, 92), seed=10 + k)) * 2 + 1)
    net.eval()
    image = random_image((100, 130), seed=5)
    whole = whole_image_prediction(net, image)
    for n in (valid_input_size(d, 2) for d in (9, 13, 17)):
        np.testing.assert_allclose(
            predict_tiled(net, image, n, batch_size=2), whole, atol=ATOL, rtol=0
        )
    assert whole.std() > 0.01
