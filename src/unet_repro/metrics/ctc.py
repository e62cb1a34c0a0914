"""Cell Tracking Challenge SEG measure (the "IOU" column of the U-Net paper's Table 2), and
DET and OP_CSB, by which the Challenge's Cell Segmentation Benchmark ranks today.

A ground-truth object R matches a predicted object S iff |R ∩ S| > 0.5 |R|, so each R has at
most one match. SEG is the Jaccard index |R ∩ S| / |R ∪ S| of each R with its match (0 when
unmatched), summed over all ground-truth objects of all annotated frames of a sequence and
divided by their number. Predicted objects that match nothing are not penalised.

The official Python implementation is the PyPI package ``py-ctcmetrics``
(``ctc_metrics.evaluate_sequence(res, gt, metrics=["SEG"])``); :func:`seg_measure` pools the
per-object values in the same order and with the same float operations, so the two agree
exactly.

DET (Matula et al. 2015) counts, in every frame, how the result objects detect the tracking
markers ``GT/TRA`` (present for every cell of every frame): DET = 1 - min(AOGM_D, AOGM_D0) /
AOGM_D0 with AOGM_D = 5 splits + 10 false negatives + 1 false positive, AOGM_D0 = 10 markers
(:func:`det_measure`); OP_CSB = (SEG + DET) / 2. ``py-ctcmetrics`` computes both from a result
folder with a valid ``res_track.txt``; :func:`write_ctc_result` writes one.

File layout (CTC): ground truth ``<seq>_GT/SEG/man_segNNN.tif`` (uint16 instance labels, NNN =
frame index, only some frames annotated), ``<seq>_GT/TRA/man_trackNNN.tif`` and
``man_track.txt``; results ``<seq>_RES/maskNNN.tif``, one uint16 mask for *every* frame,
numbered contiguously from 0, and ``res_track.txt`` (``label begin end parent`` per track).

References
----------
.. [1] Maška M. et al., "A benchmark for comparison of cell tracking algorithms",
   Bioinformatics 30(11):1609-1617, 2014.
.. [2] Ulman V. et al., "An objective comparison of cell-tracking algorithms",
   Nat. Methods 14:1141-1152, 2017.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from ..io import atomic_path

__all__ = [
    "RES_TRACK",
    "det_counts",
    "det_measure",
    "evaluate_sequence_det",
    "evaluate_sequence_objects",
    "evaluate_sequence_seg",
    "instances_from_probability",
    "matched_jaccards",
    "object_errors",
    "seg_losses",
    "seg_measure",
    "seg_score",
    "op_csb",
    "sequence_labels",
    "write_ctc_result",
]


_DENSE_MAX = 1 << 24  # entries of the dense contingency table of matched_jaccards


def _check_label_image(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D label image, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{what} must hold integer labels, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{what} has negative labels")
    return a


def _matches(gt: np.ndarray, res: np.ndarray):
    """The ground-truth labels present, and each match R -> S (|R ∩ S| > 0.5 |R|) as arrays of
    ground-truth label, predicted label and Jaccard index, in increasing ground-truth order."""
    gt = _check_label_image(gt, "gt")
    res = _check_label_image(res, "res")
    if gt.shape != res.shape:
        raise ValueError(f"gt shape {gt.shape} and res shape {res.shape} differ")
    g = gt.ravel().astype(np.int64)
    r = res.ravel().astype(np.int64)
    ng, nr = int(g.max(initial=0)) + 1, int(r.max(initial=0)) + 1
    if ng * nr <= _DENSE_MAX:  # small label values: a dense contingency table, no sorting
        table = np.bincount(g * nr + r, minlength=ng * nr).reshape(ng, nr)
        size_g, size_r = table.sum(1), table.sum(0)
        inter = table[1:, 1:]
        gi, ri = np.nonzero(2 * inter > size_g[1:, None])  # row-major: by ground-truth label
        i = inter[gi, ri]
        jaccards = i / (size_g[1:][gi] + size_r[1:][ri] - i)
        return np.nonzero(size_g[1:])[0] + 1, gi + 1, ri + 1, jaccards
    gt_ids, g_idx = np.unique(g, return_inverse=True)
    res_ids, r_idx = np.unique(r, return_inverse=True)
    # contingency table over the labels present (sparse: pairs that occur)
    key = g_idx.astype(np.int64) * res_ids.size + r_idx
    pairs, inter = np.unique(key, return_counts=True)
    gi, ri = pairs // res_ids.size, pairs % res_ids.size
    size_g = np.bincount(g_idx, minlength=gt_ids.size)
    size_r = np.bincount(r_idx, minlength=res_ids.size)
    keep = (gt_ids[gi] != 0) & (res_ids[ri] != 0) & (2 * inter > size_g[gi])
    gi, ri, inter = gi[keep], ri[keep], inter[keep]
    # pairs are sorted by ground-truth label first: the order of py-ctcmetrics
    union = size_g[gi] + size_r[ri] - inter
    return gt_ids[gt_ids != 0], gt_ids[gi], res_ids[ri], inter / union


def matched_jaccards(gt: np.ndarray, res: np.ndarray) -> tuple[np.ndarray, int]:
    """Jaccard indices of the matched ground-truth objects of one frame.

    Parameters
    ----------
    gt : ndarray of int, (H, W)
        Ground-truth instance labels (0 = background).
    res : ndarray of int, (H, W)
        Predicted instance labels (0 = background).

    Returns
    -------
    jaccards : ndarray of float64
        |R ∩ S| / |R ∪ S| for every ground-truth object R that has a match S
        (|R ∩ S| > 0.5 |R|), in increasing order of the ground-truth label.
    n_gt : int
        Number of ground-truth objects (labels > 0) in the frame.
    """
    present, _, _, jaccards = _matches(gt, res)
    return jaccards, int(present.size)


def seg_score(gt: np.ndarray, res: np.ndarray) -> tuple[float, int]:
    """SEG numerator and denominator of one frame.

    Parameters
    ----------
    gt, res : ndarray of int, (H, W)
        Ground-truth and predicted instance labels (0 = background).

    Returns
    -------
    sum_jaccard : float
        Sum over ground-truth objects of the Jaccard index with their match (0 if none).
    n_gt : int
        Number of ground-truth objects.
    """
    j, n = matched_jaccards(gt, res)
    return float(np.sum(j)), n


def seg_measure(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """SEG pooled over frames: Σ Jaccard over all ground-truth objects / number of objects.

    Parameters
    ----------
    pairs : iterable of (gt, res)
        Ground-truth and predicted label images of the annotated frames, in frame order.

    Returns
    -------
    float
        SEG in [0, 1]; 0 when there is no ground-truth object.
    """
    values, n_total = [], 0
    for gt, res in pairs:
        j, n = matched_jaccards(gt, res)
        values.append(j)
        n_total += n
    if not values:
        raise ValueError("seg_measure needs at least one (gt, res) pair")
    return float(np.sum(np.concatenate(values)) / max(n_total, 1))


#: The categories of :func:`object_errors`.
OBJECT_CATEGORIES = ("matched", "merged", "missed")


def object_errors(gt: np.ndarray, res: np.ndarray) -> list[dict[str, float | int | str]]:
    """Every ground-truth object of one frame with its SEG Jaccard and why it falls short.

    Each ground-truth object R is

    * ``missed``: no predicted object S has |R ∩ S| > 0.5 |R| (Jaccard 0);
    * ``merged``: its match S is also the match of another ground-truth object of the frame
      (one predicted object for two or more cells);
    * ``matched``: the only ground-truth object its match covers (what it lacks of Jaccard 1
      is its outline).

    Parameters
    ----------
    gt, res : ndarray of int, (H, W)
        Ground-truth and predicted instance labels (0 = background).

    Returns
    -------
    list of dict
        ``label``, ``match`` (predicted label, 0 when missed), ``jaccard`` and ``category``
        per ground-truth object, in increasing order of the ground-truth label.
    """
    present, gl, rl, jaccards = _matches(gt, res)
    match = {g: (r, j) for g, r, j in zip(gl.tolist(), rl.tolist(), jaccards.tolist(), strict=True)}
    owners = np.bincount(rl, minlength=1)
    out = []
    for lg in present.tolist():
        lr, jac = match.get(lg, (0, 0.0))
        category = "missed" if lr == 0 else ("merged" if owners[lr] > 1 else "matched")
        out.append({"label": lg, "match": lr, "jaccard": float(jac), "category": category})
    return out


def seg_losses(objects: Iterable[dict]) -> dict[str, float | int]:
    """What SEG loses to each category of :func:`object_errors`, pooled over frames.

    With n ground-truth objects, ``1 - SEG = loss_matched + loss_merged + loss_missed`` where
    ``loss_c = Σ_{R in c} (1 - J(R)) / n``: the outlines of the matched objects, the objects
    merged with a neighbour, the objects no prediction matches. Returns the three losses,
    ``seg`` and the counts ``objects``, ``matched``, ``merged``, ``missed``.
    """
    objects = list(objects)
    n = len(objects)
    out: dict[str, float | int] = {"objects": n}
    for c in OBJECT_CATEGORIES:
        js = [o["jaccard"] for o in objects if o["category"] == c]
        out[c] = len(js)
        out[f"loss_{c}"] = float(sum(1.0 - j for j in js) / n) if n else 0.0
    out["seg"] = float(sum(o["jaccard"] for o in objects) / n) if n else 0.0
    return out


def instances_from_probability(
    p_cell: np.ndarray, threshold: float = 0.5, min_size: int = 0, connectivity: int = 4
) -> np.ndarray:
    """Instance labels from a cell-probability map: threshold, then connected components.

    Parameters
    ----------
    p_cell : ndarray of float, (H, W)
        Probability of the cell class.
    threshold : float
        Pixels with ``p_cell > threshold`` are cell.
    min_size : int
        Components with fewer pixels are removed (0 keeps all).
    connectivity : {4, 8}
        Pixel connectivity of the components (4: edge neighbours only, the default, so that
        cells touching at a corner stay separate).

    Returns
    -------
    ndarray of uint16, (H, W)
        Labels 1..n in raster order of the components' first pixels, 0 = background.
    """
    p = np.asarray(p_cell)
    if p.ndim != 2:
        raise ValueError(f"p_cell must be 2-D, got shape {p.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size}")
    structure = ndi.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    lab, n = ndi.label(p > threshold, structure=structure)
    if min_size > 0 and n > 0:
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= min_size
        keep[0] = False
        new_ids = np.zeros(n + 1, dtype=np.int64)
        new_ids[keep] = np.arange(1, int(keep.sum()) + 1)
        lab, n = new_ids[lab], int(keep.sum())
    if n > np.iinfo(np.uint16).max:
        raise ValueError(f"{n} objects do not fit in uint16")
    return lab.astype(np.uint16)


def _mask_name(t: int, n_frames: int) -> str:
    return f"mask{t:04d}.tif" if n_frames > 1000 else f"mask{t:03d}.tif"


#: The tracking file of a CTC result folder.
RES_TRACK = "res_track.txt"


def sequence_labels(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Relabel per-frame instances with labels unique over the sequence, and their tracks.

    A segmentation-only result links no cell across frames: each object of each frame is a
    track of its own that starts and ends in that frame, with no parent. Objects are numbered
    frame by frame, in the order of their labels in the frame (frame 0's first object is 1).
    Returns the relabelled uint16 masks and the ``res_track.txt`` rows ``L B E P`` (label,
    begin frame, end frame, parent 0), or None when the sequence holds more objects than
    uint16 labels can name (65535), which no CTC result folder can hold.
    """
    out, rows, offset = [], [], 0
    limit = int(np.iinfo(np.uint16).max)
    for t, m in enumerate(masks):
        m = _check_label_image(m, f"mask {t}")
        labels = np.unique(m)
        labels = labels[labels != 0]
        if offset + labels.size > limit:
            return None
        lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.uint16)
        lut[labels] = np.arange(offset + 1, offset + labels.size + 1, dtype=np.uint16)
        out.append(lut[m])
        rows += [(offset + k + 1, t, t, 0) for k in range(labels.size)]
        offset += labels.size
    return out, np.array(rows, dtype=np.int64).reshape(-1, 4)


def write_ctc_result(folder: str | os.PathLike, masks: Sequence[np.ndarray]) -> bool:
    """Write a CTC result folder: ``mask000.tif, mask001.tif, ...`` (uint16) and ``res_track.txt``.

    The labels are made unique over the sequence (:func:`sequence_labels`), so that the folder
    is a valid segmentation-only result for the Challenge's software (every object a track of
    one frame, no links), which DET and OP_CSB need. A sequence with more than 65535 objects
    (a noise-level prediction) cannot be one: its masks keep their per-frame labels and no
    ``res_track.txt`` is written (SEG and DET do not depend on either).

    The files are written to a temporary folder next to ``folder``, which is then renamed to
    ``folder`` (an existing ``folder`` is replaced), so readers never see a partial result.

    Parameters
    ----------
    folder : path
        Result folder, e.g. ``.../01_RES``.
    masks : sequence of ndarray
        One 2-D integer label image per frame, frame 0 first; per-frame labels must fit in
        uint16.

    Returns
    -------
    bool
        Whether the folder is a complete CTC result (with ``res_track.txt``).
    """
    folder = Path(folder)
    if len(masks) == 0:
        raise ValueError("masks is empty")
    checked = []
    for t, m in enumerate(masks):
        m = _check_label_image(m, f"mask {t}")
        if m.size and m.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"mask {t} has labels above 65535")
        checked.append(m)
    relabelled = sequence_labels(checked)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        frames = checked if relabelled is None else relabelled[0]
        for t, m in enumerate(frames):
            tifffile.imwrite(tmp / _mask_name(t, len(frames)), m.astype(np.uint16))
        if relabelled is not None:
            lines = "".join(" ".join(map(str, row)) + "\n" for row in relabelled[1].tolist())
            (tmp / RES_TRACK).write_text(lines)
    return relabelled is not None


# --------------------------------------------------------------------------------------------
# DET: detection accuracy (the Cell Segmentation Benchmark's second measure)
# --------------------------------------------------------------------------------------------

#: AOGM-D weights of the Challenge (Matula et al. 2015): split, false negative, false positive.
W_NS, W_FN, W_FP = 5, 10, 1


def det_counts(markers: np.ndarray, res: np.ndarray) -> dict[str, int]:
    """Detection counts of one frame: reference markers against result objects.

    A marker R (``GT/TRA``, every cell of every frame) is detected by the result object S with
    |R ∩ S| > 0.5 |R| (at most one S can). ``TP``: detected markers; ``FN``: the others;
    ``FP``: result objects that detect no marker; ``NS``: splits needed, sum over result
    objects of (number of markers it detects - 1) where it detects at least one (a merge of
    k cells needs k - 1 splits); ``N``: markers.
    """
    markers = _check_label_image(markers, "markers")
    res = _check_label_image(res, "result")
    if markers.shape != res.shape:
        raise ValueError(f"markers {markers.shape} and result {res.shape} differ in shape")
    r, c = markers.ravel().astype(np.int64), res.ravel().astype(np.int64)
    r_ids = np.unique(r[r > 0])
    c_ids = np.unique(c[c > 0])
    inside = r > 0
    pairs, overlap = np.unique(np.stack([r[inside], c[inside]]), axis=1, return_counts=True)
    size = dict(zip(*np.unique(r[inside], return_counts=True), strict=True))
    hit = [
        (int(a), int(b))
        for (a, b), n in zip(pairs.T, overlap, strict=True)
        if b > 0 and 2 * n > size[a]
    ]
    per_object = np.unique([b for _, b in hit], return_counts=True)[1] if hit else np.zeros(0)
    tp = len(hit)
    return {
        "N": int(r_ids.size),
        "TP": tp,
        "FN": int(r_ids.size) - tp,
        "FP": int(c_ids.size) - int(per_object.size),
        "NS": int(np.sum(per_object - 1)),
    }


def det_measure(counts: Iterable[dict[str, int]]) -> float:
    """DET = 1 - min(AOGM_D, AOGM_D0) / AOGM_D0 over the frames of a sequence.

    AOGM_D = 5 NS + 10 FN + 1 FP (the cost of correcting the detections into the reference
    markers), AOGM_D0 = 10 N (the cost of building them from nothing). 1 is perfect.
    """
    total = {"N": 0, "FN": 0, "FP": 0, "NS": 0}
    for frame in counts:
        for k in total:
            total[k] += int(frame[k])
    if total["N"] == 0:
        raise ValueError("no reference markers: DET is undefined")
    aogm = W_NS * total["NS"] + W_FN * total["FN"] + W_FP * total["FP"]
    aogm0 = W_FN * total["N"]
    return float(1 - min(aogm, aogm0) / aogm0)


_TRA_RE = re.compile(r"^man_track(\d+)\.tif$")


def evaluate_sequence_det(res_folder: str | os.PathLike, gt_folder: str | os.PathLike) -> float:
    """DET of one sequence from CTC folders: ``<seq>_GT/TRA/man_trackNNN.tif`` (every frame)
    against ``<seq>_RES/maskNNN.tif`` of the same frame index."""
    res_folder, tra_dir = Path(res_folder), Path(gt_folder) / "TRA"
    if not tra_dir.is_dir():
        raise ValueError(f"no TRA folder in {gt_folder} (tracking markers, needed for DET)")
    ref = {int(m.group(1)): f for f in tra_dir.iterdir() if (m := _TRA_RE.match(f.name))}
    if not ref:
        raise ValueError(f"no man_track*.tif in {tra_dir}")
    res = {int(m.group(1)): f for f in res_folder.iterdir() if (m := _MASK_RE.match(f.name))}
    missing = sorted(set(ref) - set(res))
    if missing:
        raise ValueError(f"{res_folder} lacks result masks for frames {missing[:10]}")
    return det_measure(
        det_counts(tifffile.imread(ref[t]), tifffile.imread(res[t])) for t in sorted(ref)
    )


def op_csb(seg: float, det: float) -> float:
    """The Cell Segmentation Benchmark's overall performance: OP_CSB = (SEG + DET) / 2."""
    return 0.5 * (float(seg) + float(det))


_SEG_RE = re.compile(r"^man_seg(\d+)\.tif$")
_MASK_RE = re.compile(r"^mask(\d+)\.tif$")


def _seg_pairs(res_folder, gt_folder):
    """(frame, gold truth, result mask) of every annotated frame of a sequence."""
    res_folder, seg_dir = Path(res_folder), Path(gt_folder) / "SEG"
    if not seg_dir.is_dir():
        raise ValueError(f"no SEG folder in {gt_folder}")
    gt_files = {}
    for f in sorted(seg_dir.iterdir()):
        if f.suffix == ".tif":
            m = _SEG_RE.match(f.name)
            if m is None:
                raise ValueError(f"unexpected ground-truth file {f} (3-D slices unsupported)")
            gt_files[int(m.group(1))] = f
    if not gt_files:
        raise ValueError(f"no man_seg*.tif in {seg_dir}")
    res_files = {}
    for f in res_folder.iterdir() if res_folder.is_dir() else ():
        m = _MASK_RE.match(f.name)
        if m is not None:
            res_files[int(m.group(1))] = f
    missing = sorted(set(gt_files) - set(res_files))
    if missing:
        raise ValueError(f"{res_folder} lacks result masks for frames {missing}")
    for t in sorted(gt_files):
        yield t, tifffile.imread(gt_files[t]), tifffile.imread(res_files[t])


def evaluate_sequence_seg(res_folder: str | os.PathLike, gt_folder: str | os.PathLike) -> float:
    """SEG of one sequence from CTC folders.

    Parameters
    ----------
    res_folder : path
        ``<seq>_RES`` with ``maskNNN.tif``.
    gt_folder : path
        ``<seq>_GT`` with ``SEG/man_segNNN.tif``; every annotated frame is evaluated against
        the result mask of the same frame index.

    Returns
    -------
    float
        SEG over all annotated frames.
    """
    return seg_measure((gt, res) for _, gt, res in _seg_pairs(res_folder, gt_folder))


def evaluate_sequence_objects(
    res_folder: str | os.PathLike, gt_folder: str | os.PathLike
) -> list[dict[str, float | int | str]]:
    """:func:`object_errors` of every annotated frame of a sequence, each row with its
    ``frame`` (folders as in :func:`evaluate_sequence_seg`)."""
    return [
        {"frame": t, **row}
        for t, gt, res in _seg_pairs(res_folder, gt_folder)
        for row in object_errors(gt, res)
    ]
