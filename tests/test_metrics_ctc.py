"""CTC SEG: brute-force cases and exact equality with the official py-ctcmetrics package."""

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from unet_repro.metrics import ctc

ctc_metrics = pytest.importorskip("ctc_metrics")


def official_seg(res: Path, gt: Path) -> float:
    return ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=["SEG"], threads=1)["SEG"]


def official(res: Path, gt: Path, metrics=("Valid", "SEG", "DET")) -> dict:
    return ctc_metrics.evaluate_sequence(str(res), str(gt), metrics=list(metrics), threads=1)


def brute_force_seg(frames):
    """Σ over GT objects of IoU with the matched object (|R∩S| > |R|/2) / number of objects."""
    total, n = 0.0, 0
    for gt, res in frames:
        for r in np.unique(gt[gt > 0]):
            n += 1
            mask_r = gt == r
            for s in np.unique(res[res > 0]):
                mask_s = res == s
                inter = np.sum(mask_r & mask_s)
                if inter > 0.5 * mask_r.sum():
                    total += inter / np.sum(mask_r | mask_s)
    return total / max(n, 1)


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# ---------------------------------------------------------------------------------------------
# definition on small cases
# ---------------------------------------------------------------------------------------------


def test_unmatched_object_scores_zero_and_extra_predictions_are_free():
    gt = np.zeros((10, 10), np.uint16)
    gt[1:4, 1:4] = 1
    gt[6:9, 6:9] = 2
    res = np.zeros_like(gt)
    res[1:4, 1:4] = 5  # perfect for object 1, object 2 missed
    assert ctc.seg_score(gt, res) == (1.0, 2)
    res[0, 9] = 7  # an extra predicted object
    res[5, 0:3] = 8
    assert ctc.seg_score(gt, res) == (1.0, 2)
    assert ctc.seg_measure([(gt, res)]) == 0.5


def test_half_overlap_is_not_a_match():
    gt = np.zeros((4, 8), np.uint16)
    gt[0:2, 0:4] = 1  # |R| = 8
    res = np.zeros_like(gt)
    res[0:2, 0:2] = 3  # |R ∩ S| = 4 = |R| / 2: no match
    assert ctc.seg_score(gt, res) == (0.0, 1)
    res[0, 2] = 3  # 5 > 4: match, IoU = 5 / 8
    assert ctc.seg_score(gt, res) == (5 / 8, 1)
    res[3, 5:8] = 3  # S grows outside R: IoU = 5 / 11
    assert ctc.seg_score(gt, res) == (5 / 11, 1)


def test_seg_pools_objects_over_frames_and_equals_brute_force():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        gt = rng.integers(0, 5, size=(12, 12)).astype(np.uint16)
        res = gt.copy()
        flip = rng.random(gt.shape) < 0.3
        res[flip] = rng.integers(0, 7, size=flip.sum())
        frames.append((gt, res))
    assert ctc.seg_measure(frames) == pytest.approx(brute_force_seg(frames), abs=1e-12)
    sums = [ctc.seg_score(g, r) for g, r in frames]
    pooled = sum(s for s, _ in sums) / sum(n for _, n in sums)
    assert ctc.seg_measure(frames) == pytest.approx(pooled, abs=1e-12)
    # frames without objects count in no denominator
    empty = np.zeros((12, 12), np.uint16)
    assert ctc.seg_measure([*frames, (empty, empty)]) == ctc.seg_measure(frames)
    assert ctc.seg_measure([(empty, empty)]) == 0.0


def brute_force_objects(gt, res):
    """Per gold object: its match by |R ∩ S| > |R|/2, the IoU, and whether that S also
    matches another gold object (merged) — from the definition, one mask at a time."""
    rows, match = [], {}
    for r in np.unique(gt[gt > 0]):
        mask_r = gt == r
        for s in np.unique(res[res > 0]):
            mask_s = res == s
            inter = np.sum(mask_r & mask_s)
            if inter > 0.5 * mask_r.sum():
                match[int(r)] = (int(s), inter / np.sum(mask_r | mask_s))
    owners = [s for s, _ in match.values()]
    for r in np.unique(gt[gt > 0]).tolist():
        s, j = match.get(r, (0, 0.0))
        cat = "missed" if s == 0 else ("merged" if owners.count(s) > 1 else "matched")
        rows.append((r, s, j, cat))
    return rows


@pytest.mark.parametrize("seed", range(4))
def test_object_errors_equal_the_definition_and_decompose_seg(seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(3):
        gt = rng.integers(0, 6, size=(14, 14)).astype(np.uint16)
        res = gt.copy()
        res[rng.random(gt.shape) < 0.3] = 0
        res[(gt == 1) | (gt == 2)] = 9  # gold 1 and 2 merged into one object
        res[gt == 3] = rng.integers(0, 2, size=int((gt == 3).sum())) * 4  # 3: often missed
        frames.append((gt, res))
    objects = []
    for gt, res in frames:
        got = ctc.object_errors(gt, res)
        want = brute_force_objects(gt, res)
        assert [(o["label"], o["match"], o["category"]) for o in got] == [
            (w[0], w[1], w[3]) for w in want
        ]
        assert [o["jaccard"] for o in got] == pytest.approx([w[2] for w in want], abs=1e-12)
        objects += got
    assert {o["category"] for o in objects} == {"matched", "merged", "missed"}
    losses = ctc.seg_losses(objects)
    assert losses["seg"] == pytest.approx(ctc.seg_measure(frames), abs=1e-12)
    total = losses["loss_matched"] + losses["loss_merged"] + losses["loss_missed"]
    assert 1 - losses["seg"] == pytest.approx(total, abs=1e-12)
    assert losses["objects"] == losses["matched"] + losses["merged"] + losses["missed"]
    assert losses["loss_missed"] == pytest.approx(losses["missed"] / losses["objects"])


def test_object_errors_hand_made():
    gt = np.zeros((10, 20), np.uint16)
    gt[1:5, 1:5], gt[1:5, 5:9], gt[6:9, 12:18] = 1, 2, 3
    res = np.zeros_like(gt)
    res[1:5, 1:9] = 7  # one object for the two touching cells
    assert [(o["category"], o["jaccard"]) for o in ctc.object_errors(gt, res)] == [
        ("merged", 0.5),
        ("merged", 0.5),
        ("missed", 0.0),
    ]
    res[6:9, 12:17] = 2
    assert ctc.object_errors(gt, res)[2] == {
        "label": 3,
        "match": 2,
        "jaccard": 15 / 18,
        "category": "matched",
    }
    assert ctc.object_errors(np.zeros_like(gt), res) == []
    assert ctc.seg_losses([])["objects"] == 0


def test_gt_and_result_ids_do_not_matter():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, size=(16, 16))
    res = np.where(rng.random(gt.shape) < 0.8, gt, 0)
    perm_g = np.array([0, 40, 3, 17, 9, 2])
    perm_r = np.array([0, 5, 1000, 7, 6, 60000])
    assert ctc.seg_score(perm_g[gt], perm_r[res]) == ctc.seg_score(gt, res)


def test_seg_input_validation():
    with pytest.raises(ValueError, match="shape"):
        ctc.seg_score(np.zeros((3, 3), int), np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="integer"):
        ctc.seg_score(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least one"):
        ctc.seg_measure([])


# ---------------------------------------------------------------------------------------------
# instances and result folders
# ---------------------------------------------------------------------------------------------


def test_instances_from_probability():
    p = np.zeros((6, 6), np.float32)
    p[0, 0] = p[1, 1] = 0.9  # two pixels touching at a corner
    p[3:6, 3:6] = 0.7
    p[4, 4] = 0.5  # not above the threshold: a hole
    lab4 = ctc.instances_from_probability(p)
    assert lab4.dtype == np.uint16 and lab4.max() == 3
    assert lab4[0, 0] != lab4[1, 1] and lab4[4, 4] == 0
    lab8 = ctc.instances_from_probability(p, connectivity=8)
    assert lab8.max() == 2 and lab8[0, 0] == lab8[1, 1]
    big = ctc.instances_from_probability(p, min_size=2)
    np.testing.assert_array_equal(np.unique(big), [0, 1])
    assert (big > 0).sum() == 8
    assert ctc.instances_from_probability(p, threshold=0.8).max() == 2
    with pytest.raises(ValueError, match="connectivity"):
        ctc.instances_from_probability(p, connectivity=6)


def test_write_ctc_result_is_complete_and_replaces(tmp_path):
    masks = [np.full((5, 7), t, np.int32) for t in range(3)]
    out = tmp_path / "01_RES"
    assert ctc.write_ctc_result(out, masks)
    names = ["mask000.tif", "mask001.tif", "mask002.tif", "res_track.txt"]
    assert sorted(os.listdir(out)) == names
    m = tifffile.imread(out / "mask002.tif")
    assert m.dtype == np.uint16 and (m == 2).all()  # frame 1's object is 1, frame 2's is 2
    assert (out / "res_track.txt").read_text() == "1 1 1 0\n2 2 2 0\n"
    ctc.write_ctc_result(out, masks[:1])  # replaces the previous result entirely
    assert sorted(os.listdir(out)) == ["mask000.tif", "res_track.txt"]
    assert sorted(os.listdir(tmp_path)) == ["01_RES"]  # no temporary folders left
    with pytest.raises(ValueError, match="65535"):
        ctc.write_ctc_result(tmp_path / "bad", [np.full((2, 2), 70000)])
    assert sorted(os.listdir(tmp_path)) == ["01_RES"]


# ---------------------------------------------------------------------------------------------
# equality with py-ctcmetrics
# ---------------------------------------------------------------------------------------------


def synthetic_sequence(root: Path, rng, n_frames=5, shape=(48, 64)):
    """A CTC sequence: moving disks as GT (TRA every frame, SEG on some) and a noisy result."""
    gt_dir = root / "01_GT"
    (gt_dir / "SEG").mkdir(parents=True)
    (gt_dir / "TRA").mkdir()
    centres = rng.uniform([8, 8], [shape[0] - 8, shape[1] - 8], size=(4, 2))
    results = []
    for t in range(n_frames):
        gt = np.zeros(shape, np.uint16)
        for k, (cy, cx) in enumerate(centres + t):
            gt[disk(shape, cy, cx, rng.uniform(3, 7))] = k + 1
        tifffile.imwrite(gt_dir / "TRA" / f"man_track{t:03d}.tif", gt)
        if t % 2 == 0:
            tifffile.imwrite(gt_dir / "SEG" / f"man_seg{t:03d}.tif", gt)
        res = np.zeros(shape, np.uint16)
        for cy, cx in centres + t + rng.normal(0, 1.5, size=(4, 2)):
            if rng.random() < 0.85:  # some objects missed
                res[disk(shape, cy, cx, rng.uniform(3, 7))] = rng.integers(1, 300)
        res[rng.integers(0, shape[0]), :5] = 999  # an extra object
        results.append(res)
    with open(gt_dir / "TRA" / "man_track.txt", "w") as f:
        for k in range(4):
            f.write(f"{k + 1} 0 {n_frames - 1} 0\n")
    res_dir = root / "01_RES"
    ctc.write_ctc_result(res_dir, results)
    return res_dir, gt_dir, results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_py_ctcmetrics_on_synthetic_sequences(tmp_path, seed):
    res_dir, gt_dir, results = synthetic_sequence(tmp_path, np.random.default_rng(seed))
    ours = ctc.evaluate_sequence_seg(res_dir, gt_dir)
    assert 0.2 < ours < 1.0
    assert ours == official_seg(res_dir, gt_dir)
    frames = [
        (tifffile.imread(gt_dir / "SEG" / f"man_seg{t:03d}.tif"), results[t]) for t in (0, 2, 4)
    ]
    assert ctc.seg_measure(frames) == ours
    assert ours == pytest.approx(brute_force_seg(frames), abs=1e-12)


def test_evaluate_sequence_seg_reports_missing_masks(tmp_path):
    res_dir, gt_dir, _ = synthetic_sequence(tmp_path, np.random.default_rng(3))
    (res_dir / "mask004.tif").unlink()
    with pytest.raises(ValueError, match=r"\[4\]"):
        ctc.evaluate_sequence_seg(res_dir, gt_dir)


@pytest.mark.parametrize(("dataset", "seq"), [("PhC-C2DH-U373", "01"), ("DIC-C2DH-HeLa", "02")])
def test_equals_py_ctcmetrics_on_real_silver_truth(shared_data, tmp_path, dataset, seq):
    """The silver truth (ST) of every frame, evaluated as a result against the gold SEG."""
    root = shared_data / "ctc" / dataset
    gt_dir = root / f"{seq}_GT"
    res_dir = tmp_path / f"{seq}_RES"
    res_dir.mkdir()
    st = sorted((root / f"{seq}_ST" / "SEG").glob("man_seg*.tif"))
    assert len(st) == len(list((gt_dir / "TRA").glob("man_track*.tif")))
    for f in st:  # CTC result names; links keep the test light
        os.symlink(f, res_dir / f.name.replace("man_seg", "mask"))
    ours = ctc.evaluate_sequence_seg(res_dir, gt_dir)
    assert 0.5 < ours < 1.0
    assert ours == official_seg(res_dir, gt_dir)


def test_dense_and_sorted_contingency_agree(monkeypatch):
    """matched_jaccards: the dense table (small labels) and the sorted one give the same."""
    import unet_repro.metrics.ctc as ctc

    rng = np.random.default_rng(3)
    gt = rng.integers(0, 6, (40, 50)) * (rng.random((40, 50)) < 0.9)
    res = ndi.label(rng.random((40, 50)) < 0.6)[0]
    gt[:20, :20], res[:20, :20] = 7, 900  # a sure match with large label values
    dense = ctc.matched_jaccards(gt, res)
    monkeypatch.setattr(ctc, "_DENSE_MAX", 0)
    sorted_ = ctc.matched_jaccards(gt, res)
    assert dense[1] == sorted_[1] and len(dense[0]) > 0
    np.testing.assert_array_equal(dense[0], sorted_[0])


# ---------------------------------------------------------------------------------------------
# DET, OP_CSB and the result folder's res_track.txt
# ---------------------------------------------------------------------------------------------


def brute_force_det_counts(markers, res):
    """Written from the definitions: marker R detected by S iff |R ∩ S| > |R| / 2."""
    refs = [r for r in np.unique(markers) if r]
    objs = [c for c in np.unique(res) if c]
    detects = {c: 0 for c in objs}
    tp = 0
    for r in refs:
        area = np.sum(markers == r)
        for c in objs:
            if np.sum((markers == r) & (res == c)) > area / 2:
                detects[c] += 1
                tp += 1
    return {
        "N": len(refs),
        "TP": tp,
        "FN": len(refs) - tp,
        "FP": sum(1 for c in objs if detects[c] == 0),
        "NS": sum(k - 1 for k in detects.values() if k > 0),
    }


def test_det_counts_hand_made_cases():
    markers = np.zeros((10, 30), np.uint16)
    markers[2:6, 2:6], markers[2:6, 10:14], markers[2:6, 20:24] = 1, 2, 3
    assert ctc.det_measure([ctc.det_counts(markers, markers)]) == 1.0  # perfect
    merged = markers.copy()
    merged[2:6, 2:14] = 7  # one object over markers 1 and 2: one split needed
    c = ctc.det_counts(markers, merged)
    assert (c["TP"], c["FN"], c["FP"], c["NS"]) == (3, 0, 0, 1)
    assert ctc.det_measure([c]) == pytest.approx(1 - 5 / 30)
    missed = np.where(markers == 3, 0, markers)
    missed[8:10, 0:3] = 9  # a false positive
    c = ctc.det_counts(markers, missed)
    assert (c["TP"], c["FN"], c["FP"], c["NS"]) == (2, 1, 1, 0)
    assert ctc.det_measure([c]) == pytest.approx(1 - (10 + 1) / 30)
    half = markers.copy()
    half[2:4, 20:24] = 0  # exactly half of marker 3 covered: not detected (> 0.5 needed)
    assert ctc.det_counts(markers, half)["FN"] == 1
    # DET is floored at 0: far more errors than building the markers from nothing costs
    noise = np.arange(300, dtype=np.uint16).reshape(10, 30) + 1
    assert ctc.det_measure([ctc.det_counts(markers, noise)]) == 0.0
    assert ctc.op_csb(0.8, 0.9) == pytest.approx(0.85)


@pytest.mark.parametrize("seed", range(4))
def test_det_counts_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    markers = ndi.label(rng.random((24, 24)) > 0.6)[0]
    res = ndi.label(ndi.binary_dilation(markers > 0) & (rng.random((24, 24)) > 0.2))[0]
    res[rng.random((24, 24)) > 0.97] = res.max() + 1  # scattered pixels of one more object
    assert ctc.det_counts(markers, res) == brute_force_det_counts(markers, res)


def test_sequence_labels_are_unique_tracks_of_one_frame():
    masks = [np.array([[0, 5], [5, 9]]), np.zeros((2, 2), int), np.array([[3, 0], [0, 0]])]
    relabelled, tracks = ctc.sequence_labels(masks)
    assert [m.tolist() for m in relabelled] == [
        [[0, 1], [1, 2]],
        [[0, 0], [0, 0]],
        [[3, 0], [0, 0]],
    ]
    assert tracks.tolist() == [[1, 0, 0, 0], [2, 0, 0, 0], [3, 2, 2, 0]]
    too_many = [np.arange(40000).reshape(200, 200), np.arange(40000).reshape(200, 200)]
    assert ctc.sequence_labels(too_many) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_det_equals_py_ctcmetrics_and_the_folder_is_valid(tmp_path, seed):
    res_dir, gt_dir, _ = synthetic_sequence(tmp_path, np.random.default_rng(seed))
    theirs = official(res_dir, gt_dir)
    assert theirs["Valid"] == 1  # res_track.txt consistent with the masks
    ours = ctc.evaluate_sequence_det(res_dir, gt_dir)
    assert 0.3 < ours < 1.0 and ours == pytest.approx(theirs["DET"], abs=1e-12)
    seg = ctc.evaluate_sequence_seg(res_dir, gt_dir)
    assert ctc.op_csb(seg, ours) == pytest.approx(theirs["OP_CSB"], abs=1e-12)


@pytest.mark.parametrize("dataset", ["PhC-C2DH-U373", "DIC-C2DH-HeLa"])
def test_det_equals_py_ctcmetrics_on_the_real_heldout_sequence(shared_data, tmp_path, dataset):
    """The held-out sequence 02: its silver truth as a result folder written by us."""
    root = shared_data / "ctc" / dataset
    gt_dir = root / "02_GT"
    st = sorted((root / "02_ST" / "SEG").glob("man_seg*.tif"))
    res_dir = tmp_path / "02_RES"
    assert ctc.write_ctc_result(res_dir, [tifffile.imread(f) for f in st])
    theirs = official(res_dir, gt_dir, ("Valid", "DET"))
    assert theirs["Valid"] == 1
    ours = ctc.evaluate_sequence_det(res_dir, gt_dir)
    assert 0.5 < ours <= 1.0
    assert ours == pytest.approx(theirs["DET"], abs=1e-12)
