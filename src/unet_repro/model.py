"""The U-Net of Ronneberger, Fischer & Brox (MICCAI 2015), section 2 and Fig. 1.

The network has a contracting path of ``depth`` down-sampling steps and a symmetric expanding
path. Each level applies two unpadded 3x3 convolutions, each followed by a ReLU; going down, a 2x2
max pooling with stride 2 halves the resolution and the next level doubles the number of feature
channels (64, 128, 256, 512, 1024 for the paper's ``depth=4``). Going up, a 2x2 "up-convolution"
(transposed convolution, stride 2) halves the channels, its output is concatenated with the
centre-cropped feature map of the same level of the contracting path, and two 3x3 convolutions +
ReLU follow. A final 1x1 convolution maps to ``n_classes`` logits. With ``depth=4`` that is 23
convolutional layers (18 3x3 convolutions, 4 up-convolutions and the 1x1 convolution).

Because every convolution is unpadded, the output is smaller than the input: a valid input size is
``16 d + 60`` and gives an output of ``16 d - 124`` (572 -> 388 for d = 32), a margin of 92 pixels
on each side (see :func:`valid_input_size`, :func:`output_size`, :func:`margin`).

Two variants are provided:

``"paper"``
    The network of the paper's Fig. 1, with dropout (section 3.1, "drop-out layers at the end of
    the contracting path") after the bottom level's two convolutions. 31,030,658 parameters for
    one input channel, two classes and 64 base channels.
``"release"``
    The network of the Caffe model released with the paper in 2015: a ReLU after each
    up-convolution, the last up-convolution keeps the channel count of the level below (128
    instead of 64 for base 64, so the top level's first 3x3 convolution sees 128 + 64 channels),
    and dropout after the last convolution of the two deepest levels (``d3c`` and ``d4c``).
    31,100,354 parameters.

In both variants the dropout acts on the level's output feature map, i.e. on what is both pooled
and passed through the skip connection (Caffe's in-place dropout).

References
----------
O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, LNCS 9351, pp. 234-241. arXiv:1505.04597.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "BN_MOMENTUM",
    "NORMS",
    "VARIANTS",
    "UNet",
    "center_crop",
    "check_input_size",
    "count_parameters",
    "forward_flops",
    "init_generator",
    "init_weights",
    "margin",
    "output_size",
    "valid_input_size",
]

VARIANTS = ("paper", "release")
#: Normalisation after each 3x3 convolution: ``"none"`` (the paper's and the release's
#: networks) or ``"batch"`` (batch normalisation, Ioffe & Szegedy 2015; beyond the paper).
NORMS = ("none", "batch")
#: Running-statistics momentum of the batch normalisation: the statistics a trained network
#: predicts with average about the last 100 training tiles (torch's default, 0.1, about 10:
#: with one tile per batch, as here, that is one augmented tile's statistics more than the
#: data's).
BN_MOMENTUM = 0.01


# --------------------------------------------------------------------------------------------
# Tile geometry
# --------------------------------------------------------------------------------------------


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return depth


def _trace_sizes(n: int, depth: int) -> int | None:
    """Follow a spatial size through the network; the output size, or None if it breaks.

    A size breaks when a max pooling receives an odd size (the 2x2 pooling would drop a row) or
    when any feature map would become empty.
    """
    size = n
    for _ in range(depth):
        size -= 4  # two unpadded 3x3 convolutions
        if size < 2 or size % 2:
            return None
        size //= 2  # 2x2 max pooling, stride 2
    size -= 4  # bottom level
    if size < 1:
        return None
    for _ in range(depth):
        size = 2 * size - 4  # 2x2 up-convolution, two 3x3 convolutions
        if size < 1:
            return None
    return size


def valid_input_size(d: int, depth: int = 4) -> int:
    """The network input size for the integer size parameter ``d``.

    ``d`` is the size of the feature map that enters the bottom level's convolutions, so the input
    size is ``2**depth * (d + 4) - 4``, i.e. ``16 d + 60`` for the paper's ``depth=4`` (572 for
    d = 32). The output is then ``2**depth * (d - 8) + 4``.

    Parameters
    ----------
    d : int
        Size parameter; the smallest with a non-empty output is 8 (7 for ``depth=1``).
    depth : int
        Number of 2x2 max-pooling steps (4 in the paper).

    Returns
    -------
    int
        The input size. Raises ValueError when the output would be empty.
    """
    _check_depth(depth)
    n = 2**depth * (d + 4) - 4
    if _trace_sizes(n, depth) is None:
        raise ValueError(f"d={d} gives an empty output at depth {depth}")
    return n


def _nearest_valid(n: int, depth: int) -> tuple[int | None, int]:
    """The nearest valid input sizes strictly below (None if none) and strictly above ``n``."""
    step = 2**depth
    below = None
    k = n - 1 - ((n - 1 - (step - 4)) % step)  # largest size < n congruent to -4 mod 2**depth
    while k > 0:
        if _trace_sizes(k, depth) is not None:
            below = k
            break
        k -= step
        if k < 0:
            break
    # smallest size > n congruent to -4 mod 2**depth
    above = n + 1 + ((step - 4 - (n + 1)) % step)
    while _trace_sizes(above, depth) is None:
        above += step
    return below, above


def check_input_size(n: int, depth: int = 4) -> int:
    """Validate a network input size (tile size) and return it.

    Parameters
    ----------
    n : int
        Candidate input size (one spatial dimension).
    depth : int
        Number of max-pooling steps.

    Returns
    -------
    int
        ``n`` unchanged.

    Raises
    ------
    ValueError
        If every 2x2 max pooling would not see an even size, or the output would be empty. The
        message names the nearest valid sizes below and above ``n``.
    """
    _check_depth(depth)
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"input size must be an integer, got {n!r}")
    n = int(n)
    if _trace_sizes(n, depth) is not None:
        return n
    below, above = _nearest_valid(n, depth)
    near = f"{below} or {above}" if below is not None else f"{above} (the smallest)"
    raise ValueError(
        f"invalid U-Net input size {n} for depth {depth}: valid sizes are "
        f"{2**depth}*d + {2**depth * 4 - 4} with a non-empty output; nearest valid sizes: {near}"
    )


def output_size(input_size: int, depth: int = 4) -> int:
    """Output size of the network for a valid input size.

    For ``depth=4`` this is ``input_size - 184``, i.e. ``16 d - 124`` for input ``16 d + 60``
    (572 -> 388). In general ``2**depth * (d - 8) + 4``.

    Raises
    ------
    ValueError
        If ``input_size`` is not valid (see :func:`check_input_size`).
    """
    check_input_size(input_size, depth)
    out = _trace_sizes(int(input_size), depth)
    assert out is not None
    return out


def margin(depth: int = 4) -> int:
    """Context margin ``m = (input - output) / 2`` of the network on each side.

    ``m = 2 * (3 * 2**depth - 2)``: 92 pixels for the paper's ``depth=4``.
    """
    _check_depth(depth)
    return 2 * (3 * 2**depth - 2)


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the last two dimensions of ``x`` to ``size`` around the centre.

    The border to remove must be even on both axes (it always is inside a U-Net built from
    valid sizes), so the crop is exactly centred.
    """
    h, w = x.shape[-2:]
    th, tw = size
    dh, dw = h - th, w - tw
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(f"cannot centre-crop {(h, w)} to {(th, tw)}")
    return x[..., dh // 2 : dh // 2 + th, dw // 2 : dw // 2 + tw]


def _double_conv(c_in: int, c_out: int, dropout: float, norm: str = "none") -> nn.Sequential:
    """Two unpadded 3x3 convolutions, each followed by a ReLU (with ``norm="batch"``: conv,
    batch normalisation, ReLU; the convolution's bias is then left out, the normalisation's
    shift replaces it), then dropout where ``dropout > 0``."""
    layers: list[nn.Module] = []
    for k in range(2):
        layers.append(nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, bias=norm == "none"))
        if norm == "batch":
            layers.append(nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM))
        layers.append(nn.ReLU(inplace=True))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _fan_in(module: nn.Conv2d | nn.ConvTranspose2d) -> int:
    """Incoming connections of one output neuron (the paper's N in std = sqrt(2/N))."""
    kh, kw = module.kernel_size
    if isinstance(module, nn.ConvTranspose2d):
        # each output pixel of a k x k, stride-s transposed convolution receives (k/s)^2 input
        # pixels per input channel: C_in for the 2x2, stride-2 up-convolution
        sh, sw = module.stride
        return module.in_channels * math.ceil(kh / sh) * math.ceil(kw / sw) // module.groups
    return module.in_channels * kh * kw // module.groups


#: Stream of the initial weights in :func:`init_generator` (the training's other random draws,
#: tiles and dropout, use the seed itself; this keeps the initial weights a separate stream).
INIT_STREAM = 0x696E6974  # "init"


def init_generator(seed: int) -> torch.Generator:
    """A CPU generator for the initial weights, seeded from ``seed`` alone.

    Its state is ``numpy.random.SeedSequence([seed, INIT_STREAM])``'s first 64 bits, so
    different seeds give unrelated weights, and the weights do not depend on the global
    generators, the device the network later runs on or anything drawn before.
    """
    words = np.random.SeedSequence([int(seed), INIT_STREAM]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """He initialisation of section 3: weights ~ N(0, sqrt(2/N)), biases 0.

    N is the number of incoming nodes of one neuron, e.g. 9 * 64 = 576 for a 3x3 convolution on
    64 channels, and ``C_in`` for a 2x2 stride-2 up-convolution.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            std = math.sqrt(2.0 / _fan_in(module))
            with torch.no_grad():
                module.weight.normal_(0.0, std, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015, Fig. 1) with unpadded convolutions.

    Parameters
    ----------
    in_channels : int
        Input image channels (1 for the EM and cell-tracking data).
    n_classes : int
        Output classes (2: background / foreground).
    base_channels : int
        Feature channels of the top level (64 in the paper); level ``l`` has
        ``base_channels * 2**l``.
    depth : int
        Number of max-pooling steps (4 in the paper).
    variant : {"paper", "release"}
        ``"paper"``: Fig. 1. ``"release"``: the 2015 Caffe model (ReLU after each up-convolution,
        last up-convolution keeps ``2 * base_channels`` channels, dropout after the two deepest
        levels). See the module docstring.
    dropout : float
        Dropout probability (0.5 in the release); 0 disables dropout.
    norm : {"none", "batch"}
        ``"none"``: the paper's network. ``"batch"``: batch normalisation between each 3x3
        convolution and its ReLU (beyond the paper). In eval mode it applies the running
        statistics of training, a fixed per-channel affine map, so the network stays a
        function of each output pixel's receptive field and the overlap-tile prediction
        stays seamless; in train mode it normalises with the statistics of the tile itself
        (one tile per batch).
    seed : int, optional
        Draw the initial weights from a generator seeded from ``seed``
        (:func:`init_generator`), so they are a function of the seed alone; ``None`` draws
        them from torch's global generator (which torch seeds randomly in every process).

    Notes
    -----
    ``forward`` takes ``(B, in_channels, H, W)`` with ``H`` and ``W`` valid input sizes (see
    :func:`check_input_size`) and returns logits ``(B, n_classes, H - 2 m, W - 2 m)`` with the
    margin ``m = margin(depth)`` (92 for depth 4).
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        base_channels: int = 64,
        depth: int = 4,
        variant: str = "paper",
        dropout: float = 0.5,
        norm: str = "none",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _check_depth(depth)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        for name, value in (
            ("in_channels", in_channels),
            ("n_classes", n_classes),
            ("base_channels", base_channels),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.config: dict[str, Any] = dict(
            in_channels=in_channels,
            n_classes=n_classes,
            base_channels=base_channels,
            depth=depth,
            variant=variant,
            dropout=dropout,
        )
        if norm != "none":  # absent for the paper's network: its model files stay as they were
            self.config["norm"] = norm
        self.depth = depth
        self.variant = variant
        widths = [base_channels * 2**level for level in range(depth + 1)]
        release = variant == "release"

        # contracting path: levels 0 .. depth-1, then the bottom level
        self.encoders = nn.ModuleList()
        c_in = in_channels
        for level in range(depth):
            p = dropout if (release and level == depth - 1) else 0.0
            self.encoders.append(_double_conv(c_in, widths[level], p, norm))
            c_in = widths[level]
        self.bottom = _double_conv(widths[depth - 1], widths[depth], dropout, norm)

        # expanding path, stored from the deepest level upwards
        self.upconvs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c_in = widths[depth]
        for level in reversed(range(depth)):
            c_up = widths[level]
            if release and level == 0:
                c_up = widths[1]  # the release's last up-convolution keeps its channels
            up: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_up, 2, stride=2)]
            if release:
                up.append(nn.ReLU(inplace=True))
            self.upconvs.append(nn.Sequential(*up))
            self.decoders.append(_double_conv(c_up + widths[level], widths[level], 0.0, norm))
            c_in = widths[level]
        self.head = nn.Conv2d(widths[0], n_classes, 1)
        self.pool = nn.MaxPool2d(2, stride=2)
        init_weights(self, None if seed is None else init_generator(seed))

    @property
    def margin(self) -> int:
        """Context margin on each side, ``(input - output) / 2`` (92 for depth 4)."""
        return margin(self.depth)

    def output_size(self, input_size: int) -> int:
        """Output size for a valid input size (388 for 572 at depth 4)."""
        return output_size(input_size, self.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H_out, W_out)`` for an input ``(B, C, H, W)``."""
        if x.ndim != 4:
            raise ValueError(f"expected input of shape (B, C, H, W), got {tuple(x.shape)}")
        check_input_size(x.shape[-2], self.depth)
        check_input_size(x.shape[-1], self.depth)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips), strict=True):
            x = upconv(x)
            x = torch.cat([center_crop(skip, x.shape[-2:]), x], dim=1)
            x = decoder(x)
        return self.head(x)


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_flops(model: UNet | Mapping[str, Any], input_size: int | tuple[int, int]) -> int:
    """FLOPs of one forward pass on one ``input_size`` tile, a multiply-add counting as 2.

    Only convolutions and up-convolutions are counted (bias additions, ReLU, pooling, cropping
    and softmax are < 0.5 % of the total). The count is exact: it runs the network on PyTorch's
    ``meta`` device (no arithmetic, no memory) and sums ``2 * C_in * C_out * k^2 * H_out * W_out``
    over the convolutions and ``2 * C_in * C_out * k^2 * H_in * W_in`` over the up-convolutions.

    Parameters
    ----------
    model : UNet or mapping
        A network, or the keyword arguments of :class:`UNet`.
    input_size : int or (int, int)
        Valid input tile size.

    Returns
    -------
    int
        FLOPs (about 3.0e11 for the paper's network at 572 x 572).
    """
    cfg = dict(model.config) if isinstance(model, UNet) else dict(model)
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    with torch.device("meta"):
        net = UNet(**cfg)
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        macs_per_pixel = module.in_channels * module.out_channels * kh * kw // module.groups
        if isinstance(module, nn.ConvTranspose2d):
            pixels = inputs[0].shape[-2] * inputs[0].shape[-1]
        else:
            pixels = output.shape[-2] * output.shape[-1]
        total += 2 * macs_per_pixel * pixels * output.shape[0]

    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.register_forward_hook(hook)
    net.eval()
    with torch.no_grad():
        net(torch.empty(1, cfg.get("in_channels", 1), h, w, device="meta"))
    return total
