"""Readers that bring each dataset into one internal form, and the held-out splits.

Internal form
-------------
ISBI 2012
    ``images`` (N, H, W) uint8 and ``labels`` (N, H, W) bool, True = cell (non-membrane).
Cell Tracking Challenge (one sequence, e.g. ``01``)
    ``images`` (T, H, W) of all frames, ``instances`` (K, H, W) uint16 instance labels of the
    K annotated frames (``<seq>_GT/SEG/man_segNNN.tif``) and ``frames`` (K,) their frame
    indices NNN. With ``partial=True`` also ``markers`` (T, H, W) uint16, the tracking markers
    of every frame (``<seq>_GT/TRA/man_trackNNN.tif``: every cell of every frame), and
    ``silver`` (T, H, W) uint16, the silver-truth segmentation of every frame
    (``<seq>_ST/SEG/man_segNNN.tif``), with ``has_silver`` (T,) bool saying which frames have
    one (all zeros where it lacks). They tell which cells the gold truth left out (the paper's
    "partially annotated" images, see :func:`unet_repro.weights.unannotated_region`), and they
    are the Cell Tracking Challenge's silver-truth training data (``ST``, ``GT+ST``) and the
    reference on the frames the network never saw (:func:`frame_roles`).
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import DataError, read_tiff

ISBI = "isbi2012"
CTC_DATASETS = ("PhC-C2DH-U373", "DIC-C2DH-HeLa")
DATASETS = (ISBI, *CTC_DATASETS)


def read_isbi(volume_path: str | Path, labels_path: str | Path | None = None):
    """Read the ISBI 2012 volume and, if given, its binary labels.

    Returns ``images`` (N, H, W) uint8, or ``(images, labels)`` with ``labels`` bool
    (True = cell). Raises :class:`DataError` naming the file for a wrong dimensionality,
    a shape mismatch, or labels that are not binary.
    """
    images = read_tiff(volume_path)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise DataError(f"{volume_path}: expected a stack (N, H, W), got shape {images.shape}")
    if labels_path is None:
        return images
    labels = read_tiff(labels_path)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.shape != images.shape:
        raise DataError(
            f"{labels_path}: label shape {labels.shape} does not match image shape "
            f"{images.shape} of {volume_path}"
        )
    values = np.unique(labels)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise DataError(
            f"{labels_path}: ISBI labels must be binary (0 and one value), found {shown}"
        )
    return images, labels > 0


_SEG_NAME = re.compile(r"man_seg(\d+)\.tif$")
_FRAME_NAME = re.compile(r"t(\d+)\.tif$")


@dataclass
class CTCSequence:
    """One CTC training sequence in the internal form."""

    images: np.ndarray  # (T, H, W)
    instances: np.ndarray  # (K, H, W) uint16
    frames: np.ndarray  # (K,) int64 frame indices of the annotated frames
    markers: np.ndarray | None = None  # (T, H, W) uint16 GT/TRA markers of every frame
    silver: np.ndarray | None = None  # (T, H, W) uint16 ST/SEG of every frame (0 = none)
    has_silver: np.ndarray | None = None  # (T,) bool: the frame has an ST/SEG file


MISSING = ("error", "fallback")


def read_ctc_sequence(
    root: str | Path, sequence: str, partial: bool = False, missing: str = "error"
) -> CTCSequence:
    """Read frames and gold-truth segmentation of one sequence of a CTC dataset folder.

    ``root`` is the unpacked dataset folder (holding ``01/``, ``01_GT/SEG/`` ...). With
    ``partial=True`` the tracking markers (``01_GT/TRA``) and the silver truth (``01_ST/SEG``)
    of the annotated frames are read as well; a missing folder raises :class:`DataError`
    naming it, unless ``missing="fallback"`` (then ``markers`` or ``silver`` stays None, with
    a warning).
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    root = Path(root)
    frame_dir, seg_dir = root / sequence, root / f"{sequence}_GT" / "SEG"
    if not frame_dir.is_dir():
        raise DataError(f"{frame_dir}: sequence folder not found")
    if not seg_dir.is_dir():
        raise DataError(f"{seg_dir}: GT folder not found (expected man_segNNN.tif files)")
    frame_files = sorted(
        (int(m.group(1)), p) for p in frame_dir.iterdir() if (m := _FRAME_NAME.match(p.name))
    )
    if not frame_files:
        raise DataError(f"{frame_dir}: no frames tNNN.tif")
    indices = [i for i, _ in frame_files]
    if indices != list(range(len(indices))):
        raise DataError(f"{frame_dir}: frame numbers are not contiguous from 0")
    images = np.stack([_read_2d(p) for _, p in frame_files])
    seg_files = sorted(
        (int(m.group(1)), p) for p in seg_dir.iterdir() if (m := _SEG_NAME.match(p.name))
    )
    if not seg_files:
        raise DataError(f"{seg_dir}: no man_segNNN.tif files")
    frames, instances = [], []
    for index, path in seg_files:
        if index >= len(images):
            raise DataError(f"{path}: frame {index} does not exist in {frame_dir}")
        label = _read_2d(path)
        if label.shape != images.shape[1:]:
            raise DataError(
                f"{path}: label shape {label.shape} does not match frame shape {images.shape[1:]}"
            )
        frames.append(index)
        instances.append(label.astype(np.uint16))
    seq = CTCSequence(images, np.stack(instances), np.asarray(frames, dtype=np.int64))
    if partial:
        every = range(len(images))
        seq.markers, _ = _read_annotated(
            root / f"{sequence}_GT" / "TRA", "man_track{:03d}.tif", every, images, missing, True
        )
        seq.silver, seq.has_silver = _read_annotated(
            root / f"{sequence}_ST" / "SEG", "man_seg{:03d}.tif", every, images, missing, False
        )
    return seq


def _read_annotated(folder, pattern, frames, images, missing, every_frame):
    """uint16 label images of ``frames`` from ``folder`` and which files exist (None, None if
    the folder is missing)."""
    what = "tracking markers (GT/TRA)" if every_frame else "silver truth (ST/SEG)"
    if not folder.is_dir():
        msg = (
            f"{folder}: folder not found; the {what} mark the cells the gold segmentation "
            "left out (ignored in training)"
        )
        if missing == "error":
            raise DataError(
                f"{msg}. Set weights.missing_annotations: fallback to train without them"
            )
        logging.getLogger(__name__).warning("%s (falling back)", msg)
        return None, None
    out, present = [], []
    for index in frames:
        path = folder / pattern.format(index)
        present.append(path.is_file())
        if not path.is_file():
            if every_frame:
                raise DataError(f"{path}: not found (every frame has tracking markers)")
            out.append(np.zeros(images.shape[1:], dtype=np.uint16))
            continue
        label = _read_2d(path)
        if label.shape != images.shape[1:]:
            raise DataError(
                f"{path}: shape {label.shape} does not match frame shape {images.shape[1:]}"
            )
        out.append(label.astype(np.uint16))
    return np.stack(out), np.asarray(present, dtype=bool)


def _read_2d(path: Path) -> np.ndarray:
    image = read_tiff(path)
    if image.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image, got shape {image.shape}")
    return image


#: The Cell Tracking Challenge's names of the training-data configurations of a submission.
TRAINING_DATA = ("GT", "ST", "GT+ST")
#: What a frame of a training sequence is used for (:func:`frame_roles`).
ROLES = ("train", "select", "unused")


def frame_roles(
    n_frames: int,
    gold_frames,
    has_silver,
    training_data: str = "GT",
    holdout_every: int = 4,
) -> list[dict]:
    """What each frame of a CTC training sequence is used for, and against which truth.

    The *selection frames* are every ``holdout_every``-th frame without gold truth that has a
    silver truth, starting with the first: the post-processing is chosen on them, against
    their silver truth, and no configuration trains on them. The others, by
    ``training_data`` (the Challenge's names):

    ``GT``
        the gold frames (``GT/SEG``; partially annotated: the workflow ignores the cells they
        leave out) are trained on; every other frame is unused (the paper's data);
    ``ST``
        every frame with a silver truth (``ST/SEG``) is trained on, with it, gold frames too;
    ``GT+ST``
        gold truth where it exists (with its ignore regions), silver truth elsewhere.

    Parameters
    ----------
    n_frames : int
        Frames in the sequence (T).
    gold_frames : iterable of int
        Indices of the frames with gold truth.
    has_silver : (T,) bool
        Which frames have a silver truth.
    training_data, holdout_every : str, int
        See above; ``holdout_every >= 1``.

    Returns
    -------
    list of dict
        One per frame, in frame order: ``frame``, ``role`` (``train``, ``select`` or
        ``unused``) and ``truth`` (``gold``, ``silver`` or ``none``: what that frame is
        trained or scored on; for an unused frame, the best it has).
    """
    if training_data not in TRAINING_DATA:
        raise ValueError(f"training data must be one of {TRAINING_DATA}, got {training_data!r}")
    if int(holdout_every) < 1:
        raise ValueError(f"holdout_every must be >= 1, got {holdout_every}")
    silver = np.asarray(has_silver, dtype=bool)
    if silver.shape != (n_frames,):
        raise ValueError(f"has_silver has shape {silver.shape}, expected ({n_frames},)")
    gold = {int(t) for t in gold_frames}
    if any(not 0 <= t < n_frames for t in gold):
        raise ValueError(f"gold frames {sorted(gold)} outside 0..{n_frames - 1}")
    unseen = [t for t in range(n_frames) if t not in gold and silver[t]]
    select = set(unseen[:: int(holdout_every)])
    rows = []
    for t in range(n_frames):
        if t in select:
            role, truth = "select", "silver"
        elif training_data == "ST":
            role, truth = (
                ("train", "silver") if silver[t] else ("unused", "gold" if t in gold else "none")
            )
        elif t in gold:
            role, truth = "train", "gold"
        elif training_data == "GT+ST" and silver[t]:
            role, truth = "train", "silver"
        else:
            role, truth = "unused", "silver" if silver[t] else "none"
        rows.append({"frame": t, "role": role, "truth": truth})
    return rows


def read_frame_roles(path) -> list[dict]:
    """The rows of a frame-roles CSV (the weights rule's: frame, role, truth, page)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"frame", "role"} <= set(rows[0]):
        raise DataError(f"{path}: not a frame-roles CSV (needs the columns frame, role)")
    return rows


def frames_of(rows, role: str = "train") -> list[int]:
    """Frames of ``role`` in frame-roles rows, ordered by their page.

    ``role="train"`` gives the frame of each page of the weight and target stacks; another
    role (``select``) the frames of that role in frame order.
    """
    picked = [r for r in rows if r["role"] == role]
    if role == "train":
        picked.sort(key=lambda r: int(r["page"]))
    return [int(r["frame"]) for r in picked]


def read_frames(path, role: str = "train") -> list[int]:
    """:func:`frames_of` the frame-roles CSV at ``path``."""
    return frames_of(read_frame_roles(path), role)


def parse_indices(spec: str | int | list, n: int | None = None) -> list[int]:
    """Parse an index list like ``"0-24"``, ``"0-4,10,12-13"`` or ``[0, 1, 2]``.

    Ranges are inclusive. With ``n``, indices must lie in ``[0, n)``.
    """
    if isinstance(spec, int):
        items = [spec]
    elif isinstance(spec, list):
        items = []
        for part in spec:
            items += parse_indices(part)
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", part):
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ValueError(f"index range {part!r} is empty")
                items += range(lo, hi + 1)
            elif part.isdigit():
                items.append(int(part))
            else:
                raise ValueError(f"cannot parse index list {spec!r} (use e.g. '0-24,27')")
    if n is not None and any(not 0 <= i < n for i in items):
        raise ValueError(f"index list {spec!r} has indices outside 0..{n - 1}")
    if len(set(items)) != len(items):
        raise ValueError(f"index list {spec!r} repeats indices")
    return items
