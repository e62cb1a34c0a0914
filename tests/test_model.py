"""Tests of the U-Net architecture (paper section 2, Fig. 1) and its tile geometry."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from unet_repro.model import (
    UNet,
    center_crop,
    check_input_size,
    count_parameters,
    forward_flops,
    margin,
    output_size,
    valid_input_size,
)


def meta_unet(**kwargs) -> UNet:
    """A network on PyTorch's meta device: shapes and parameter counts without arithmetic."""
    with torch.device("meta"):
        return UNet(**kwargs)


def conv_output_shapes(net: UNet, size: int) -> list[tuple[str, int, int]]:
    """(kind, channels, spatial size) of every convolution's output, in execution order."""
    shapes = []

    def hook(module, inputs, output):
        kind = "up" if isinstance(module, nn.ConvTranspose2d) else f"{module.kernel_size[0]}x"
        shapes.append((kind, output.shape[1], output.shape[-1]))

    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(hook)
    net.eval()
    net(torch.empty(1, net.config["in_channels"], size, size, device="meta"))
    return shapes


# Fig. 1 of the paper: channels and size of every feature map after a convolution, 572 input.
FIG1 = [
    ("3x", 64, 570), ("3x", 64, 568),
    ("3x", 128, 282), ("3x", 128, 280),
    ("3x", 256, 138), ("3x", 256, 136),
    ("3x", 512, 66), ("3x", 512, 64),
    ("3x", 1024, 30), ("3x", 1024, 28),
    ("up", 512, 56), ("3x", 512, 54), ("3x", 512, 52),
    ("up", 256, 104), ("3x", 256, 102), ("3x", 256, 100),
    ("up", 128, 200), ("3x", 128, 198), ("3x", 128, 196),
    ("up", 64, 392), ("3x", 64, 390), ("3x", 64, 388),
    ("1x", 2, 388),
]  # fmt: skip


def test_paper_network_matches_figure_1():
    assert conv_output_shapes(meta_unet(), 572) == FIG1


def test_23_convolutional_layers():
    net = meta_unet()
    kinds = [
        ("up" if isinstance(m, nn.ConvTranspose2d) else m.kernel_size)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    assert kinds.count((3, 3)) == 18
    assert kinds.count("up") == 4
    assert kinds.count((1, 1)) == 1
    assert len(kinds) == 23


def test_parameter_counts_pinned():
    assert count_parameters(meta_unet()) == 31_030_658
    assert count_parameters(meta_unet(variant="release")) == 31_100_354


def _oracle_parameters(c_in, n_classes, base, depth, release):
    """Parameter count from the channel widths alone."""
    w = [base * 2**level for level in range(depth + 1)]

    def conv(a, b, k):
        return a * b * k * k + b

    total, c = 0, c_in
    for level in range(depth + 1):
        total += conv(c, w[level], 3) + conv(w[level], w[level], 3)
        c = w[level]
    for level in reversed(range(depth)):
        c_up = w[1] if (release and level == 0) else w[level]
        total += conv(w[level + 1], c_up, 2) + conv(c_up + w[level], w[level], 3)
        total += conv(w[level], w[level], 3)
    return total + conv(w[0], n_classes, 1)


@pytest.mark.parametrize("variant", ["paper", "release"])
@pytest.mark.parametrize(
    ("c_in", "k", "base", "depth"), [(1, 2, 64, 4), (3, 5, 8, 2), (1, 2, 16, 5)]
)
def test_parameter_count_matches_oracle(variant, c_in, k, base, depth):
    net = meta_unet(in_channels=c_in, n_classes=k, base_channels=base, depth=depth, variant=variant)
    assert count_parameters(net) == _oracle_parameters(c_in, k, base, depth, variant == "release")


def test_release_variant_structure():
    net = meta_unet(variant="release")
    shapes = conv_output_shapes(net, 572)
    # the last up-convolution keeps 128 channels; everything else as in Fig. 1
    assert shapes[19] == ("up", 128, 392)
    assert [s for i, s in enumerate(shapes) if i != 19] == [
        s for i, s in enumerate(FIG1) if i != 19
    ]
    assert net.decoders[-1][0].in_channels == 128 + 64
    for up in net.upconvs:  # a ReLU after each up-convolution
        assert isinstance(up[-1], nn.ReLU)
    for up in meta_unet().upconvs:
        assert not any(isinstance(m, nn.ReLU) for m in up)


def _dropout_owners(net):
    return [name for name, m in net.named_modules() if isinstance(m, nn.Dropout)]


def test_dropout_placement():
    assert _dropout_owners(meta_unet()) == ["bottom.4"]
    assert _dropout_owners(meta_unet(variant="release")) == ["encoders.3.4", "bottom.4"]
    assert all(m.p == 0.5 for m in meta_unet().modules() if isinstance(m, nn.Dropout))
    assert _dropout_owners(meta_unet(dropout=0.0)) == []


def test_dropout_active_only_in_training():
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2, variant="release")
    x = torch.randn(1, 1, 60, 60)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.allclose(net(x), net(x))


def test_forward_572_gives_388_logits():
    torch.manual_seed(0)
    net = UNet(in_channels=1, n_classes=3, base_channels=2)  # real arithmetic, tiny widths
    out = net(torch.randn(2, 1, 572, 572))
    assert out.shape == (2, 3, 388, 388)
    assert torch.isfinite(out).all()
    assert meta_unet()(torch.empty(1, 1, 572, 572, device="meta")).shape == (1, 2, 388, 388)


def test_forward_non_square():
    net = meta_unet(base_channels=4)
    out = net(torch.empty(1, 1, 572, 188 + 16 * 3, device="meta"))
    assert out.shape == (1, 2, 388, 52)


def test_geometry_formulas():
    assert valid_input_size(32) == 572
    assert output_size(572) == 388
    assert margin() == 92
    for d in range(8, 60):
        assert valid_input_size(d) == 16 * d + 60
        assert output_size(16 * d + 60) == 16 * d - 124


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_valid_sizes_brute_force(depth):
    """Sizes accepted by check_input_size = sizes the network runs on, with the stated output."""
    net = meta_unet(base_channels=1, depth=depth)
    accepted = []
    for n in range(1, 700):
        try:
            check_input_size(n, depth)
        except ValueError:
            continue
        accepted.append(n)
        out = net(torch.empty(1, 1, n, n, device="meta")).shape[-1]
        assert out == output_size(n, depth)
        assert n - out == 2 * margin(depth)
    d_min = 7 if depth == 1 else 8
    expected = [valid_input_size(d, depth) for d in range(d_min, 400)]
    assert accepted == [n for n in expected if n < 700]
    # brute force: every pooled map even, every map non-empty
    for n in range(1, 700):
        size, ok = n, True
        for _ in range(depth):
            size -= 4
            ok &= size >= 2 and size % 2 == 0
            size //= 2
        size -= 4
        ok &= size >= 1
        for _ in range(depth):
            size = 2 * size - 4
            ok &= size >= 1
        assert ok == (n in accepted), n


def test_invalid_size_message_names_nearest_valid_sizes():
    with pytest.raises(ValueError, match=r"570.*556 or 572"):
        check_input_size(570)
    with pytest.raises(ValueError, match=r"573.*572 or 588"):
        check_input_size(573)
    with pytest.raises(ValueError, match=r"188 \(the smallest\)"):
        check_input_size(100)
    with pytest.raises(ValueError, match="integer"):
        check_input_size(572.0)
    with pytest.raises(ValueError, match="570"):
        output_size(570)
    with pytest.raises(ValueError, match="input size 570"):
        meta_unet()(torch.empty(1, 1, 570, 572, device="meta"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        UNet(variant="caffe")
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="dropout"):
        UNet(dropout=1.0)


def test_he_initialisation():
    torch.manual_seed(0)
    net = UNet()
    big = net.bottom[2]  # 1024 -> 1024 3x3 convolution: 9.4 M weights
    assert big.weight.shape == (1024, 1024, 3, 3)
    std = math.sqrt(2 / (1024 * 9))
    assert abs(big.weight.std().item() / std - 1) < 0.005
    assert abs(big.weight.mean().item()) < 0.005 * std
    # up-convolution: each output neuron sees C_in = 1024 inputs
    up = net.upconvs[0][0]
    assert up.weight.shape == (1024, 512, 2, 2)
    assert abs(up.weight.std().item() / math.sqrt(2 / 1024) - 1) < 0.01
    head = net.head  # 1x1, fan-in 64
    assert abs(head.weight.std().item() / math.sqrt(2 / 64) - 1) < 0.2
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            assert torch.count_nonzero(m.bias) == 0


def _oracle_flops(base, depth, n, n_classes=2, c_in=1, release=False):
    w = [base * 2**level for level in range(depth + 1)]
    flops, size, c, sizes = 0, n, c_in, []
    for level in range(depth + 1):
        for _ in range(2):
            size -= 2
            flops += 2 * c * w[level] * 9 * size * size
            c = w[level]
        sizes.append(size)
        size //= 2
    size = sizes[-1]
    for level in reversed(range(depth)):
        c_up = w[1] if (release and level == 0) else w[level]
        flops += 2 * c * c_up * 4 * size * size
        size *= 2
        c = c_up + w[level]
        for _ in range(2):
            size -= 2
            flops += 2 * c * w[level] * 9 * size * size
            c = w[level]
    return flops + 2 * c * n_classes * size * size


def test_forward_flops():
    paper = forward_flops(meta_unet(), 572)
    assert paper == _oracle_flops(64, 4, 572)
    assert forward_flops(UNet(base_channels=2), 572) == _oracle_flops(2, 4, 572)
    assert 3.00e11 < paper < 3.02e11  # about 301 GFLOP per 572x572 tile
    assert forward_flops({"base_channels": 16}, 572) == _oracle_flops(16, 4, 572)
    assert forward_flops({"variant": "release"}, 252) == _oracle_flops(64, 4, 252, release=True)
    assert forward_flops({"base_channels": 8, "depth": 2}, 60) == _oracle_flops(8, 2, 60)


def test_center_crop():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(center_crop(x, (2, 4)), x[..., 2:4, 1:5])
    with pytest.raises(ValueError):
        center_crop(x, (3, 4))
    np.testing.assert_array_equal(center_crop(x, (6, 6)).numpy(), x.numpy())


def test_batch_norm_structure_and_paper_network_unchanged():
    """norm="batch" puts a BatchNorm2d between every 3x3 convolution (then bias-free) and its
    ReLU; the default keeps the paper's layers, keys and initial weights exactly."""
    plain, default = (
        UNet(base_channels=4, depth=2, seed=3),
        UNet(base_channels=4, depth=2, seed=3, norm="none"),
    )
    assert plain.config == default.config and "norm" not in plain.config
    for (k, a), (k2, b) in zip(
        plain.state_dict().items(), default.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(a, b)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    bn = UNet(base_channels=4, depth=2, seed=3, norm="batch")
    assert bn.config["norm"] == "batch"
    convs = [m for m in bn.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 2 * (2 * 2 + 1) and all(c.bias is None for c in convs)
    block = bn.encoders[0]
    kinds = [type(m).__name__ for m in block]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
    # the up-convolutions and the 1x1 head keep their biases
    assert bn.head.bias is not None and all(u[0].bias is not None for u in bn.upconvs)
    # the 3x3 weights are drawn as in the paper's network (same generator stream and order)
    for c_plain, c_bn in zip(
        [m for m in plain.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)],
        convs,
        strict=True,
    ):
        assert torch.equal(c_plain.weight, c_bn.weight)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        UNet(norm="group")


def test_batch_norm_uses_running_statistics_in_eval_mode():
    """Eval mode: a per-pixel function (a tile's output does not depend on the rest of the
    batch or tile); train mode: the tile's own statistics."""
    net = UNet(base_channels=4, depth=2, seed=0, norm="batch", dropout=0.0)
    x = torch.randn(2, 1, 60, 60)
    net.train()
    net(x)  # updates the running statistics
    norm = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert norm.momentum == 0.01 and norm.num_batches_tracked == 1
    assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
    net.eval()
    with torch.no_grad():
        both = net(x)
        alone = net(x[:1])
        shifted = net(torch.cat([x[:1], 5 * x[1:] + 3]))
    torch.testing.assert_close(both[:1], alone)
    torch.testing.assert_close(shifted[:1], alone)
    net.train()
    with torch.no_grad():
        assert not torch.allclose(net(x)[:1], net(x[:1]))  # batch statistics
