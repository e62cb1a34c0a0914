"""Data augmentation of section 3.1: shifts, rotations, grey values and elastic deformation.

The paper ("Data Augmentation", section 3.1) trains on few images and relies on shift and
rotation invariance, robustness to deformations and grey-value variations, above all on random
elastic deformations: "smooth deformations using random displacement vectors on a coarse 3 by 3
grid. The displacements are sampled from a Gaussian distribution with 10 pixels standard
deviation. Per-pixel displacements are then computed using bicubic interpolation."

Everything here is numpy in, numpy out; randomness comes only from a ``numpy.random.Generator``
passed in, so a tile is a pure function of the arrays, the generator state and the settings.

Conventions
-----------
* Warps are *backward* ("pull") maps, as in ``scipy.ndimage.map_coordinates`` and the
  ``elasticdeform`` package: ``out[p] = in[p + u(p)]``. A constant displacement ``u = (a, b)``
  therefore moves image content by ``(-a, -b)``.
* The ``points x points`` control points of the coarse grid span the whole warped array: the
  first and last lie on the corner pixels, as in ``elasticdeform.deform_grid``. The per-pixel
  field is the cubic B-spline interpolant of the control values (scipy ``order=3``,
  ``mode="mirror"``), i.e. the paper's "bicubic interpolation".
* Borders are extended by mirroring without repeating the edge pixel: numpy ``mode="reflect"``,
  which is scipy.ndimage ``mode="mirror"`` (the same extension the paper uses for tiling, Fig. 2).
* The image is interpolated with cubic splines, the labels with nearest neighbour (``order=0``,
  they stay integer) and the weight map linearly (``order=1``, it stays non-negative). All three
  are sampled at the same coordinates, so they stay aligned.

References
----------
O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015, section 3.1. The coarse-grid deformation follows the conventions of
G. van Tulder's ``elasticdeform`` package (PyPI), which cites the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .config import merge_settings

__all__ = [
    "DEFAULT_AUG",
    "NO_AUG",
    "check_aug",
    "deform_grid",
    "dense_displacement",
    "grey_value_change",
    "mirror_crop",
    "random_displacement",
    "sample_tile",
    "warp",
]

#: Default augmentation settings (see :func:`sample_tile`). The paper gives only the elastic
#: deformation's numbers (3x3 grid, 10 px); the rest are this reproduction's choices.
DEFAULT_AUG: dict[str, Any] = {
    "enabled": True,  # master switch; False -> plain random crop (shift) only
    "elastic": True,  # paper: random elastic deformation
    "elastic_sigma": 10.0,  # paper: std of the coarse displacements, pixels
    "elastic_points": 3,  # paper: 3 x 3 coarse grid
    "rot90": True,  # random multiple of 90 degrees (exact, no interpolation)
    "flip": True,  # random left-right flip (with rot90: all 8 symmetries of the square)
    "rotation_deg": 0.0,  # extra rotation by an angle ~ U(-r, r) degrees (0: off)
    "scale": 0.0,  # zoom by a factor exp(U(-s, s)) about the tile centre (0: off; beyond the paper)
    "placement": "uniform",  # output window: "uniform" (every pixel equally often) | "inside"
    "gamma": 0.0,  # grey values: gamma = exp(U(-g, g)) on the tile's [min, max] range (0: off)
    "contrast": 0.1,  # grey values: x * U(1 - c, 1 + c)
    "brightness": 0.1,  # grey values: + U(-b, b), in units of the normalised image
}

PLACEMENTS = ("uniform", "inside")

#: Settings that switch every augmentation off except the random tile position.
NO_AUG: dict[str, Any] = {**DEFAULT_AUG, "enabled": False}


def check_aug(aug: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``aug`` into :data:`DEFAULT_AUG` and validate it.

    Raises
    ------
    ValueError
        On an unknown key (catches typos) or a negative range.
    """
    cfg = merge_settings(DEFAULT_AUG, aug, "augmentation")
    for key in ("elastic_sigma", "rotation_deg", "scale", "gamma", "contrast", "brightness"):
        if cfg[key] < 0:
            raise ValueError(f"augmentation setting {key!r} must be >= 0, got {cfg[key]}")
    if cfg["contrast"] >= 1:
        raise ValueError(f"contrast must be < 1 (factor 1 +- c), got {cfg['contrast']}")
    if cfg["placement"] not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {cfg['placement']!r}")
    if int(cfg["elastic_points"]) < 1:
        raise ValueError(f"elastic_points must be >= 1, got {cfg['elastic_points']}")
    return cfg


# --------------------------------------------------------------------------------------------
# Elastic deformation
# --------------------------------------------------------------------------------------------


def random_displacement(
    rng: np.random.Generator, sigma: float = 10.0, points: int = 3, ndim: int = 2
) -> np.ndarray:
    """Coarse random displacement vectors, shape ``(ndim, points, ..., points)``, ~ N(0, sigma).

    Section 3.1: a 3 by 3 grid, standard deviation 10 pixels.
    """
    return rng.normal(0.0, sigma, size=(ndim,) + (int(points),) * ndim)


def _spline_weights(n_ctrl: int, n: int) -> np.ndarray:
    """``(n, n_ctrl)`` matrix A with ``A @ c`` = cubic B-spline interpolant of control values ``c``.

    Control point ``k`` sits at pixel ``k * (n - 1) / (n_ctrl - 1)``. The interpolant is linear in
    ``c``, so A's columns are the interpolants of the unit vectors.
    """
    if n_ctrl == 1:
        return np.ones((n, 1))
    positions = np.linspace(0.0, n_ctrl - 1, n)
    eye = np.eye(n_ctrl)
    return np.stack(
        [ndi.map_coordinates(eye[k], [positions], order=3, mode="mirror") for k in range(n_ctrl)],
        axis=1,
    )


def dense_displacement(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Per-pixel displacement field from coarse control-point displacements.

    Parameters
    ----------
    coarse : ndarray, shape (2, P, Q)
        Displacement (rows, columns) at a ``P x Q`` grid of control points spanning the array.
    shape : (int, int)
        Shape ``(H, W)`` of the array to warp.

    Returns
    -------
    ndarray, shape (2, H, W), float64
        The cubic B-spline (bicubic) interpolation of ``coarse``. A tensor-product spline is
        separable, so this is ``A_rows @ coarse[i] @ A_cols.T`` for each component.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    if coarse.ndim != 3 or coarse.shape[0] != 2:
        raise ValueError(f"coarse displacement must have shape (2, P, Q), got {coarse.shape}")
    h, w = (int(s) for s in shape)
    a_rows = _spline_weights(coarse.shape[1], h)
    a_cols = _spline_weights(coarse.shape[2], w)
    return np.stack([a_rows @ c @ a_cols.T for c in coarse])


def warp(array: np.ndarray, displacement: np.ndarray, order: int) -> np.ndarray:
    """Backward warp ``out[p] = array[p + displacement[:, p]]`` with mirror borders.

    Parameters
    ----------
    array : ndarray, shape (H, W)
    displacement : ndarray, shape (2, H, W)
        Per-pixel displacement (rows, columns), e.g. from :func:`dense_displacement`.
    order : int
        Spline order: 3 for images, 0 for labels (the output keeps the input's integer values),
        1 for weight maps (stays within the input's range).

    Returns
    -------
    ndarray, same shape and dtype as ``array``.
    """
    array = np.asarray(array)
    if array.ndim != 2 or displacement.shape != (2, *array.shape):
        raise ValueError(
            f"need a 2-D array and a (2, H, W) displacement, got {array.shape} and "
            f"{displacement.shape}"
        )
    grid = np.indices(array.shape, dtype=np.float64)
    return _sample(array, grid + displacement, order)


def _sample(array: np.ndarray, coords: np.ndarray, order: int) -> np.ndarray:
    """Sample ``array`` at ``coords`` (2, ...) with mirror borders, keeping its dtype."""
    if order == 0:
        return ndi.map_coordinates(array, coords, order=0, mode="mirror")
    out = ndi.map_coordinates(array.astype(np.float64), coords, order=order, mode="mirror")
    return out.astype(array.dtype, copy=False)


def deform_grid(
    arrays: Sequence[np.ndarray], coarse: np.ndarray, orders: Sequence[int] = (3, 0, 1)
) -> list[np.ndarray]:
    """Deform several same-shape arrays with one coarse displacement grid.

    The counterpart of ``elasticdeform.deform_grid(X, displacement, order=orders,
    mode="mirror")`` (same results up to rounding, checked against elasticdeform 0.5.1): the
    same field warps every array, each with its own interpolation order (image cubic, labels
    nearest, weights linear by default).
    """
    shapes = {np.shape(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"arrays must have the same shape, got {sorted(shapes)}")
    if len(orders) != len(arrays):
        raise ValueError(f"need one order per array, got {len(orders)} for {len(arrays)}")
    field = dense_displacement(coarse, shapes.pop())
    return [warp(a, field, o) for a, o in zip(arrays, orders, strict=True)]


# --------------------------------------------------------------------------------------------
# Grey values, cropping, tiles
# --------------------------------------------------------------------------------------------


def grey_value_change(
    x: np.ndarray,
    rng: np.random.Generator,
    gamma: float = 0.0,
    contrast: float = 0.1,
    brightness: float = 0.1,
) -> np.ndarray:
    """Random grey-value change of a normalised image tile.

    In this order: gamma ``t -> t**exp(U(-gamma, gamma))`` on the tile rescaled to [0, 1] by its
    own min and max (then mapped back to that range), contrast ``x -> x * U(1 - c, 1 + c)``,
    brightness ``x -> x + U(-b, b)``. A range of 0 skips that step (and draws nothing).
    """
    x = np.asarray(x, dtype=np.float32)
    if gamma > 0:
        lo, hi = float(x.min()), float(x.max())
        if hi > lo:
            g = np.exp(rng.uniform(-gamma, gamma))
            x = (lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g).astype(np.float32)
    if contrast > 0:
        x = x * np.float32(rng.uniform(1.0 - contrast, 1.0 + contrast))
    if brightness > 0:
        x = x + np.float32(rng.uniform(-brightness, brightness))
    return x


def mirror_crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The ``size x size`` window at ``(top, left)``, mirror-extended where it leaves the array.

    The extension is numpy ``mode="reflect"`` (no repeated edge pixel) and works for windows much
    larger than the array (repeated reflection).
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    if min(array.shape) < 2:
        raise ValueError(f"mirror extension needs at least 2 pixels per axis, got {array.shape}")
    h, w = array.shape
    pads = ((max(0, -top), max(0, top + size - h)), (max(0, -left), max(0, left + size - w)))
    padded = np.pad(array, pads, mode="reflect") if any(p for ax in pads for p in ax) else array
    t, l_ = top + pads[0][0], left + pads[1][0]
    return padded[t : t + size, l_ : l_ + size]


def _random_start(
    rng: np.random.Generator, length: int, window: int, placement: str = "uniform"
) -> int:
    """Random start of the output window on an axis of ``length`` pixels.

    ``"uniform"``: uniform over ``-(window - 1) .. length - 1``, every start whose window holds
    at least one pixel of the axis; each pixel is then covered by exactly ``window`` of the
    ``length + window - 1`` starts, so every pixel is equally likely to be in the window
    (probability ``window / (length + window - 1)``) and image borders are trained as often
    as the centre (the rest of the window is mirror-extended data). ``"inside"``: uniform over
    the starts whose window lies inside the axis (centred when it does not fit); pixels within
    ``window`` of the border are then covered less often.
    """
    if placement == "uniform":
        return int(rng.integers(-(window - 1), length))
    if length >= window:
        return int(rng.integers(0, length - window + 1))
    return (length - window) // 2


def sample_tile(
    image: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None,
    rng: np.random.Generator,
    input_size: int,
    output_size: int,
    aug: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random, augmented training tile (section 3 and 3.1).

    The output window (``output_size`` square, where the loss is evaluated) is placed at random
    (the *shift*): with ``aug["placement"] == "uniform"`` (default) so that every pixel of the
    image is equally likely to lie in it, the window then extending into the mirror-extended
    image near the borders; with ``"inside"`` uniformly among the positions inside the image
    (centred on an axis shorter than the window; see :func:`_random_start`). The input
    tile is the ``input_size`` square with the same centre, so it carries
    ``(input_size - output_size) / 2`` pixels of context on each side, mirror-extended beyond
    the image border. Then, with ``aug["enabled"]``:

    1. elastic deformation (coarse ``points x points`` grid over the input tile, N(0, sigma)),
       an optional small rotation and an optional zoom by ``exp(U(-scale, scale))`` (content
       magnified by that factor; beyond the paper) about the tile centre, all as one backward
       map sampled directly from the mirror-extended image (one interpolation, no black
       corners);
    2. a random multiple of 90 degrees and a random flip (exact array operations);
    3. grey-value changes of the image (:func:`grey_value_change`).

    Image, target and weights go through the same geometric transform, so the returned target
    and weights are exactly aligned with the centre of the returned input tile.

    Parameters
    ----------
    image : ndarray (H, W), float
        Normalised image.
    target : ndarray (H, W), integer
        Class labels (e.g. {0, 1}).
    weights : ndarray (H, W) or None
        Pixel-wise loss weights (section 3, eq. 2); None means all ones.
    rng : numpy.random.Generator
        The only source of randomness.
    input_size, output_size : int
        Network input and output tile sizes; ``input_size - output_size`` must be even and >= 0.
    aug : mapping, optional
        Settings merged into :data:`DEFAULT_AUG` (see there).

    Returns
    -------
    x : ndarray (input_size, input_size), float32
    y : ndarray (output_size, output_size), int64
    w : ndarray (output_size, output_size), float32
    """
    cfg = check_aug(aug)
    image = np.asarray(image)
    target = np.asarray(target)
    weights = np.ones(image.shape, np.float32) if weights is None else np.asarray(weights)
    if image.ndim != 2 or target.shape != image.shape or weights.shape != image.shape:
        raise ValueError(
            f"image, target and weights must be 2-D of one shape, got {image.shape}, "
            f"{target.shape}, {weights.shape}"
        )
    m2 = input_size - output_size
    if output_size < 1 or m2 < 0 or m2 % 2:
        raise ValueError(
            f"input_size - output_size must be even and >= 0, got {input_size} - {output_size}"
        )
    m = m2 // 2
    top = _random_start(rng, image.shape[0], output_size, cfg["placement"]) - m  # input tile
    left = _random_start(rng, image.shape[1], output_size, cfg["placement"]) - m
    on = cfg["enabled"]
    elastic = on and cfg["elastic"] and cfg["elastic_sigma"] > 0
    angle = 0.0
    coarse = None
    if elastic:
        coarse = random_displacement(rng, cfg["elastic_sigma"], cfg["elastic_points"])
    if on and cfg["rotation_deg"] > 0:
        angle = np.deg2rad(rng.uniform(-cfg["rotation_deg"], cfg["rotation_deg"]))
    zoom = 1.0  # drawn last, so that scale 0 leaves every other draw as it was
    if on and cfg["scale"] > 0:
        zoom = float(np.exp(rng.uniform(-cfg["scale"], cfg["scale"])))

    inner = slice(m, m + output_size)
    if coarse is None and angle == 0.0 and zoom == 1.0:
        # pure shift: exact integer crops
        x = mirror_crop(image, top, left, input_size).astype(np.float32)
        y = mirror_crop(target, top, left, input_size)[inner, inner]
        w = mirror_crop(weights, top, left, input_size)[inner, inner]
    else:
        c = (input_size - 1) / 2.0  # tile centre, in tile and (plus offset) image coordinates
        d = np.indices((input_size, input_size), dtype=np.float64) - c
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        coords = np.stack([cos * d[0] - sin * d[1], sin * d[0] + cos * d[1]])
        coords += np.array([top + c, left + c])[:, None, None]
        if coarse is not None:
            coords += dense_displacement(coarse, (input_size, input_size))
        x = _sample(image, coords, 3).astype(np.float32)
        y = _sample(target, coords[:, inner, inner], 0)
        w = _sample(weights, coords[:, inner, inner], 1)

    if on and cfg["rot90"]:
        k = int(rng.integers(4))
        x, y, w = (np.rot90(a, k) for a in (x, y, w))
    if on and cfg["flip"] and rng.integers(2):
        x, y, w = (a[:, ::-1] for a in (x, y, w))
    if on:
        x = grey_value_change(x, rng, cfg["gamma"], cfg["contrast"], cfg["brightness"])
    return (
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.int64),
        np.ascontiguousarray(np.maximum(w, 0), dtype=np.float32),
    )
