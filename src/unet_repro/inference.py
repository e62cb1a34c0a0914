"""Overlap-tile prediction (paper section 2, Fig. 2) and test-time averaging.

The U-Net uses unpadded convolutions, so an output tile of size ``out`` needs an input tile of
size ``out + 2 m`` (``m = 92`` for depth 4). Large images are predicted tile by tile; context
missing at the image border is extrapolated by mirroring the image (without repeating the edge
pixel, numpy's ``"reflect"`` mode). The result is seamless: it equals one forward pass over the
whole mirror-padded image, whatever the tile size.

Exact seamlessness needs one detail that the paper leaves implicit: 2x2 max pooling is only
shift-equivariant for shifts that are multiples of 2, so after ``depth`` poolings two tiles agree
on their overlap only when their offsets differ by a multiple of ``2**depth``. The output size
``16 d - 124`` is 4 modulo 16, so tiles are placed with a stride of ``out`` rounded down to a
multiple of ``2**depth`` (384 for 572 -> 388 tiles) and each tile contributes its first ``stride``
output rows and columns. Tiling covers both axes (the 2015 MATLAB code tiled along one axis only).

Test-time averaging predicts transformed copies of the image (the 8 symmetries of the square:
rotations by multiples of 90 degrees and reflections), maps each prediction back with the inverse
transform, and averages the softmax probabilities. Averaging over all 8 makes the prediction
exactly equivariant to these transforms.

References
----------
O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, section 2 ("overlap-tile strategy") and section 4 ("averaged over 7
rotated versions of the input data").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from unet_repro.model import check_input_size, margin, output_size
from unet_repro.precision import resolve as resolve_precision

__all__ = [
    "TRANSFORMS",
    "TRANSFORM_SETS",
    "mirror_pad",
    "predict_averaged",
    "predict_tiled",
    "predict_volume",
    "resolve_transforms",
    "tile_stride",
]


# --------------------------------------------------------------------------------------------
# Mirror padding
# --------------------------------------------------------------------------------------------


def _reflect_indices(n: int, before: int, after: int) -> np.ndarray:
    """Source indices for reflecting an axis of length ``n`` by ``before``/``after`` pixels.

    The reflection does not repeat the edge pixel and is repeated as often as needed, i.e. the
    padded axis is the periodic sequence 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... (period
    ``2 (n - 1)``) read from ``-before`` to ``n + after``.
    """
    idx = np.arange(-before, n + after)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def _normalize_pad(pad: int | Sequence) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(pad, int | np.integer):
        p = int(pad)
        result = ((p, p), (p, p))
    else:
        pad = tuple(pad)
        if len(pad) != 2:
            raise ValueError(f"pad must be an int or ((top, bottom), (left, right)), got {pad!r}")
        result = tuple(
            (int(p), int(p)) if isinstance(p, int | np.integer) else (int(p[0]), int(p[1]))
            for p in pad
        )
    if any(v < 0 for pair in result for v in pair):
        raise ValueError(f"pad widths must be >= 0, got {result}")
    return result  # type: ignore[return-value]


def mirror_pad(image: np.ndarray, pad: int | Sequence) -> np.ndarray:
    """Mirror-pad the last two axes of ``image`` without repeating the edge pixel.

    Equals ``numpy.pad(image, pad, mode="reflect")`` on the last two axes when every pad width is
    smaller than the axis; larger pad widths repeat the reflection (the padded axis is periodic
    with period ``2 (n - 1)``), which is what the overlap-tile strategy needs for images smaller
    than the network's context.

    Parameters
    ----------
    image : ndarray, shape (..., H, W)
        Image (any leading axes, e.g. channels).
    pad : int or ((top, bottom), (left, right))
        Pad widths; an int pads all four sides, a pair entry may also be a single int.

    Returns
    -------
    ndarray, shape (..., H + top + bottom, W + left + right)
    """
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions, got shape {image.shape}")
    (top, bottom), (left, right) = _normalize_pad(pad)
    h, w = image.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"cannot mirror-pad an empty image of shape {image.shape}")
    rows = _reflect_indices(h, top, bottom)
    cols = _reflect_indices(w, left, right)
    return image[..., rows[:, None], cols[None, :]]


# --------------------------------------------------------------------------------------------
# Overlap-tile prediction
# --------------------------------------------------------------------------------------------


def _depth(model: nn.Module) -> int:
    return int(getattr(model, "depth", 4))


def tile_stride(tile_size: int, depth: int = 4) -> int:
    """Distance between neighbouring output tiles: ``output_size`` rounded down to ``2**depth``.

    384 for a 572 -> 388 tile at depth 4. Tiles at multiples of ``2**depth`` see the same max-
    pooling grid, which makes the tiled prediction exactly seamless.

    Raises
    ------
    ValueError
        If ``tile_size`` is not a valid input size or its output is smaller than ``2**depth``.
    """
    out = output_size(tile_size, depth)
    stride = out - out % 2**depth
    if stride < 1:
        step = 2**depth  # valid sizes, and their outputs, are 2**depth apart
        n_min = tile_size + step * math.ceil((step - out) / step)
        raise ValueError(
            f"tile size {tile_size} gives an output of {out} < 2**depth = {step} pixels; "
            f"use a tile size of at least {n_min}"
        )
    return stride


def _as_chw(image: np.ndarray, in_channels: int | None) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {image.shape}")
    if in_channels is not None and image.shape[0] != in_channels:
        raise ValueError(f"model expects {in_channels} input channels, image has {image.shape[0]}")
    return image


def predict_tiled(
    model: nn.Module,
    image: np.ndarray,
    tile_size: int,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    *,
    amp: bool | str = False,
    channels_last: bool | str = "auto",
) -> np.ndarray:
    """Softmax probabilities for a whole image by the overlap-tile strategy.

    Output tiles of ``tile_stride(tile_size)`` pixels cover the image in both axes; each is
    predicted from an input tile of ``tile_size`` pixels cut from the image mirror-padded by the
    margin ``m`` (92 for depth 4) on the top and left and as much as needed on the bottom and
    right. The result equals a single forward pass over the whole mirror-padded image.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~unet_repro.model.UNet` (any module with a ``depth`` attribute, mapping an
        ``(B, C, n, n)`` input to ``(B, K, out, out)`` logits). It is moved to ``device`` and run
        in eval mode under ``torch.no_grad()``; its training mode is restored afterwards.
    image : ndarray, shape (H, W) or (C, H, W)
        Image of any size (also smaller than one tile), already normalised like the training data.
    tile_size : int
        Network input size, validated with :func:`~unet_repro.model.check_input_size`.
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device
        Where to run the network.
    amp : bool or "auto", keyword-only
        Run the network under bfloat16 autocast (bfloat16 operands, float32 accumulation; the
        softmax is float32): faster, about 3 significant digits per operand, probabilities
        differ from float32 by about 1e-3. ``"auto"``: where the hardware computes bfloat16
        natively (CUDA; AMX-BF16 / AVX512-BF16 CPUs), :func:`unet_repro.precision.resolve`.
    channels_last : bool or "auto", keyword-only
        The model (in place) and the tiles in the NHWC memory format, native to cuDNN's
        tensor-core and oneDNN's bfloat16 convolutions; ``"auto"``: on CUDA and with CPU
        bfloat16. Same arithmetic up to the order of float32 sums.

    Returns
    -------
    ndarray, shape (K, H, W), float32
        Per-pixel class probabilities (softmax over the K classes).
    """
    return _predict_many(
        model, [image], tile_size, batch_size, device, amp=amp, channels_last=channels_last
    )[0]


def _predict_many(
    model: nn.Module,
    images: Sequence[np.ndarray],
    tile_size: int,
    batch_size: int,
    device: str | torch.device,
    *,
    amp: bool | str,
    channels_last: bool | str,
) -> list[np.ndarray]:
    """:func:`predict_tiled` of several images, their tiles batched together.

    The tiles of all images form one queue cut into forward passes of ``batch_size`` tiles, so
    e.g. the 7 transformed copies of a test-time average fill whole batches. Each tile's output
    does not depend on the other tiles of its batch (eval mode: no batch statistics), so the
    result is that of predicting the images one by one. On CUDA the next batch is cut, pinned and
    sent while the previous one is computed and copied back (one batch in flight).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    depth = _depth(model)
    config = getattr(model, "config", {})
    arrays = [_as_chw(image, config.get("in_channels")) for image in images]
    n = check_input_size(tile_size, depth)
    out = output_size(n, depth)
    m = margin(depth)
    stride = tile_stride(n, depth)
    padded, jobs = [], []  # jobs: (image, tile row origin, tile column origin)
    for k, x in enumerate(arrays):
        _, h, w = x.shape
        ny, nx = math.ceil(h / stride), math.ceil(w / stride)
        bottom = (ny - 1) * stride + n - m - h
        right = (nx - 1) * stride + n - m - w
        padded.append(mirror_pad(x, ((m, bottom), (m, right))))
        jobs += [(k, iy * stride, ix * stride) for iy in range(ny) for ix in range(nx)]

    device = torch.device(device)
    cuda = device.type == "cuda"
    amp, nhwc = resolve_precision(amp, channels_last, device)
    memory_format = torch.channels_last if nhwc else None
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    model.to(device)
    if memory_format is not None:
        model.to(memory_format=memory_format)
    model.eval()
    results: list[np.ndarray | None] = [None] * len(arrays)

    def launch(chunk):
        batch = torch.from_numpy(
            np.stack([padded[k][:, y : y + n, x0 : x0 + n] for k, y, x0 in chunk])
        )
        if cuda:
            batch = batch.pin_memory()  # an asynchronous copy: no wait for the batch in flight
        x = batch.to(device=device, dtype=dtype, non_blocking=True)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        if logits.shape[-2:] != (out, out):
            raise ValueError(f"model output {tuple(logits.shape[-2:])} != expected {(out, out)}")
        probs = torch.softmax(logits.float(), dim=1).contiguous()
        if not cuda:
            return chunk, probs.to("cpu", torch.float32), None
        host = torch.empty(probs.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(probs, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return chunk, host, done

    def collect(chunk, host, done) -> None:
        if done is not None:
            done.synchronize()
        for (k, y, x0), p in zip(chunk, host.numpy(), strict=True):
            _, h, w = arrays[k].shape
            if results[k] is None:
                results[k] = np.empty((p.shape[0], h, w), dtype=np.float32)
            hh, ww = min(stride, h - y), min(stride, w - x0)
            results[k][:, y : y + hh, x0 : x0 + ww] = p[:, :hh, :ww]

    try:
        with torch.no_grad():
            pending = None
            for start in range(0, len(jobs), batch_size):
                current = launch(jobs[start : start + batch_size])
                if pending is not None:
                    collect(*pending)
                pending = current
            if pending is not None:
                collect(*pending)
    finally:
        model.train(was_training)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Test-time averaging
# --------------------------------------------------------------------------------------------


def _rot(k: int) -> Callable[[np.ndarray], np.ndarray]:
    def rotate(a: np.ndarray) -> np.ndarray:
        return np.rot90(a, k, axes=(-2, -1))

    rotate.__name__ = f"rot{90 * (k % 4)}"
    return rotate


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _flip_lr(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1]


def _flip_ud(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1, :]


def _transpose(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -2, -1)


def _antitranspose(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -2, -1)[..., ::-1, ::-1]


class Transform(NamedTuple):
    """A symmetry of the square acting on the last two axes, with its inverse."""

    forward: Callable[[np.ndarray], np.ndarray]
    inverse: Callable[[np.ndarray], np.ndarray]


#: The 8 symmetries of the square (dihedral group D4) on the last two (row, column) axes.
#: ``rot90`` is ``numpy.rot90`` (counter-clockwise), ``transpose`` swaps rows and columns and
#: ``antitranspose`` reflects about the other diagonal.
TRANSFORMS: dict[str, Transform] = {
    "identity": Transform(_identity, _identity),
    "rot90": Transform(_rot(1), _rot(3)),
    "rot180": Transform(_rot(2), _rot(2)),
    "rot270": Transform(_rot(3), _rot(1)),
    "flip_lr": Transform(_flip_lr, _flip_lr),
    "flip_ud": Transform(_flip_ud, _flip_ud),
    "transpose": Transform(_transpose, _transpose),
    "antitranspose": Transform(_antitranspose, _antitranspose),
}

#: Named sets of transforms accepted by :func:`resolve_transforms`. ``"flips"`` is the 2015
#: release's averaging for the cell-tracking data (none, left-right, up-down, both).
TRANSFORM_SETS: dict[str, tuple[str, ...]] = {
    "none": ("identity",),
    "flips": ("identity", "flip_lr", "flip_ud", "rot180"),
    "dihedral": tuple(TRANSFORMS),
}


def resolve_transforms(transforms: str | Sequence[str] | None) -> tuple[str, ...]:
    """Names of the transforms to average over.

    Each entry is a transform of :data:`TRANSFORMS` or the name of a set in
    :data:`TRANSFORM_SETS` (expanded in place); a single string is one entry. ``None``, ``"none"``
    and an empty sequence mean the identity only.

    Examples
    --------
    >>> resolve_transforms("flips")
    ('identity', 'flip_lr', 'flip_ud', 'rot180')
    >>> resolve_transforms(["none"])
    ('identity',)

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    if transforms is None:
        return ("identity",)
    if isinstance(transforms, str):
        transforms = [transforms]
    names: list[str] = []
    unknown = []
    for entry in transforms:
        if entry in TRANSFORM_SETS:
            names.extend(TRANSFORM_SETS[entry])
        elif entry in TRANSFORMS:
            names.append(entry)
        else:
            unknown.append(entry)
    if unknown:
        raise ValueError(
            f"unknown transform(s) {unknown}; valid: {', '.join(TRANSFORMS)} "
            f"(or a set: {', '.join(TRANSFORM_SETS)})"
        )
    return tuple(names) or ("identity",)


def predict_averaged(
    model: nn.Module,
    image: np.ndarray,
    transforms: str | Sequence[str] | None,
    tile_size: int,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    *,
    amp: bool | str = False,
    channels_last: bool | str = "auto",
) -> np.ndarray:
    """Softmax probabilities averaged over transformed copies of the image.

    ``mean over t of t.inverse(predict_tiled(model, t.forward(image)))``. Transforms that swap the
    axes (``rot90``, ``rot270``, ``transpose``, ``antitranspose``) change the shape of
    non-square images; each prediction is mapped back before averaging. The tiles of all
    transformed copies are batched together (e.g. 7 copies x 4 tiles of a 512 x 512 slice with
    572 tiles = 28 tiles, in forward passes of ``batch_size``); the result is the same as
    predicting the copies one by one.

    Parameters
    ----------
    model, tile_size, batch_size, device, amp, channels_last
        As for :func:`predict_tiled`.
    image : ndarray, shape (H, W) or (C, H, W)
    transforms : str, sequence of str or None
        See :func:`resolve_transforms`; e.g. ``"none"``, ``"flips"``, ``"dihedral"`` or
        ``["identity", "rot90"]``.

    Returns
    -------
    ndarray, shape (K, H, W), float32
    """
    names = resolve_transforms(transforms)
    image = np.asarray(image, dtype=np.float32)
    moved = [np.ascontiguousarray(TRANSFORMS[name].forward(image)) for name in names]
    predictions = _predict_many(
        model, moved, tile_size, batch_size, device, amp=amp, channels_last=channels_last
    )
    total: np.ndarray | None = None
    for name, prediction in zip(names, predictions, strict=True):
        probs = TRANSFORMS[name].inverse(prediction)
        total = probs.astype(np.float64) if total is None else total + probs
    assert total is not None
    return (total / len(names)).astype(np.float32)


def predict_volume(
    model: nn.Module,
    images: np.ndarray,
    tile_size: int,
    transforms: str | Sequence[str] | None = None,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    class_index: int = 1,
    *,
    amp: bool | str = False,
    channels_last: bool | str = "auto",
) -> np.ndarray:
    """Probability of class ``class_index`` (foreground) for every slice of a stack.

    Parameters
    ----------
    model, tile_size, transforms, batch_size, device, amp, channels_last
        As for :func:`predict_averaged`.
    images : ndarray, shape (N, H, W)
        Stack of single-channel images.
    progress : callable, optional
        Called as ``progress(done, total)`` after each slice.
    class_index : int
        Class whose probability is returned (1 = foreground, e.g. non-membrane for ISBI).

    Returns
    -------
    ndarray, shape (N, H, W), float32
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    result = np.empty(images.shape, dtype=np.float32)
    for i, image in enumerate(images):
        probs = predict_averaged(
            model,
            image,
            transforms,
            tile_size,
            batch_size,
            device,
            amp=amp,
            channels_last=channels_last,
        )
        result[i] = probs[class_index]
        if progress is not None:
            progress(i + 1, len(images))
    return result
