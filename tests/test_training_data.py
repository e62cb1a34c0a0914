"""The Challenge's training-data configurations (GT, ST, GT+ST) and the selection frames.

The selection frames (every k-th frame without gold truth) are never trained on in any
configuration; GT+ST takes gold over silver where both exist and keeps the ignore regions of
the gold frames; the cut is chosen on the selection frames against their silver truth.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unet_repro import synthetic
from unet_repro.datasets import frame_roles, read_ctc_sequence, read_frames
from unet_repro.io import write_npz
from unet_repro.postprocess import select_postprocessing
from unet_repro.train import load_composites, load_samples
from unet_repro.weights import (
    core_instances,
    training_target,
    training_truth,
    unannotated_region,
    weight_map,
)

REPO = Path(__file__).resolve().parents[1]
GOLD = (1, 5, 6, 9)


def roles(data, every=2, n=12, silver=None):
    silver = np.ones(n, bool) if silver is None else silver
    return frame_roles(n, GOLD, silver, data, every)


@pytest.mark.parametrize("data", ["GT", "ST", "GT+ST"])
def test_selection_frames_are_unseen_and_the_same_in_every_configuration(data):
    rows = roles(data)
    assert [r["frame"] for r in rows] == list(range(12))
    select = [r["frame"] for r in rows if r["role"] == "select"]
    # every second frame without gold truth, starting with the first
    assert select == [0, 3, 7, 10]
    assert not set(select) & set(GOLD)
    assert all(r["truth"] == "silver" for r in rows if r["role"] == "select")
    train = {r["frame"] for r in rows if r["role"] == "train"}
    assert not train & set(select)  # the held-back frames never enter training


def test_gt_trains_on_gold_st_on_silver_gt_plus_st_gold_over_silver():
    by = {d: {r["frame"]: (r["role"], r["truth"]) for r in roles(d)} for d in ("GT", "ST", "GT+ST")}
    assert {t for t, (role, _) in by["GT"].items() if role == "train"} == set(GOLD)
    assert all(by["GT"][t] == ("train", "gold") for t in GOLD)
    assert by["GT"][2] == ("unused", "silver")
    # ST: the silver truth of every frame but the selection frames, gold frames included
    assert {t for t, (role, truth) in by["ST"].items() if role == "train"} == {
        1,
        2,
        4,
        5,
        6,
        8,
        9,
        11,
    }
    assert all(truth == "silver" for role, truth in by["ST"].values() if role == "train")
    # GT+ST: gold where it exists, silver elsewhere
    assert all(by["GT+ST"][t] == ("train", "gold") for t in GOLD)
    assert all(by["GT+ST"][t] == ("train", "silver") for t in (2, 4, 8, 11))


def test_frames_without_silver_truth_are_neither_selected_nor_silver_trained():
    silver = np.ones(12, bool)
    silver[[0, 2]] = False
    rows = {r["frame"]: r for r in roles("GT+ST", silver=silver)}
    assert rows[0]["role"] == rows[2]["role"] == "unused" and rows[0]["truth"] == "none"
    assert [t for t, r in rows.items() if r["role"] == "select"] == [3, 7, 10]
    with pytest.raises(ValueError, match="training data must be one of"):
        frame_roles(12, GOLD, silver, "gold", 2)
    with pytest.raises(ValueError, match="holdout_every must be >= 1"):
        frame_roles(12, GOLD, silver, "GT", 0)
    with pytest.raises(ValueError, match="outside 0..11"):
        frame_roles(12, (12,), silver, "GT", 2)


@pytest.fixture
def sequence(tmp_path):
    synthetic.write_ctc(tmp_path / "X", np.random.default_rng(3), n_frames=8, annotated=(1, 4))
    return read_ctc_sequence(tmp_path / "X", "01", partial=True)


def test_training_truth_keeps_the_ignore_regions_on_gold_frames(sequence):
    seq = sequence
    rows = frame_roles(len(seq.images), seq.frames, seq.has_silver, "GT+ST", 2)
    chosen = training_truth(seq.instances, seq.frames, rows, seq.markers, seq.silver)
    assert [t for t, *_ in chosen] == [r["frame"] for r in rows if r["role"] == "train"]
    for t, truth, lab, ignore in chosen:
        if t in seq.frames:
            k = int(np.flatnonzero(seq.frames == t)[0])
            assert truth == "gold"
            np.testing.assert_array_equal(lab, seq.instances[k])  # gold over silver
            expected = unannotated_region(seq.instances[k], seq.markers[t], seq.silver[t])
            if t == 4:  # the partially annotated frame: its left-out cell is ignored
                assert ignore is not None and ignore.any()
                np.testing.assert_array_equal(ignore, expected)
            else:
                assert ignore is None and not expected.any()
        else:
            assert truth == "silver" and ignore is None  # the silver truth marks every cell
            np.testing.assert_array_equal(lab, seq.silver[t])
    # `background`: nothing ignored anywhere
    plain = training_truth(
        seq.instances, seq.frames, rows, seq.markers, seq.silver, unannotated="background"
    )
    assert all(ig is None for *_, ig in plain)


def write_prepared(path, seq):
    """A prepared .npz of a sequence read with its markers and silver truth."""
    write_npz(
        path,
        images=seq.images,
        instances=seq.instances,
        frames=seq.frames,
        markers=seq.markers,
        silver=seq.silver,
        has_silver=seq.has_silver,
    )


def run_weights(tmp_path, prepared, data, every, *extra):
    out = {k: tmp_path / f"{data}.{k}" for k in ("weights.tif", "target.tif", "frames.csv")}
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "weights.py"),
            "--prepared",
            str(prepared),
            "--training-data",
            data,
            "--holdout-every",
            str(every),
            "--out-weights",
            str(out["weights.tif"]),
            "--out-target",
            str(out["target.tif"]),
            "--out-frames",
            str(out["frames.csv"]),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.mark.parametrize("data", ["GT", "ST", "GT+ST"])
def test_weights_script_writes_one_page_per_training_frame(tmp_path, sequence, data):
    seq = sequence
    prepared = tmp_path / "01.npz"
    write_prepared(prepared, seq)
    out = run_weights(tmp_path, prepared, data, 2)
    with open(out["frames.csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(8))
    train = read_frames(out["frames.csv"])
    select = read_frames(out["frames.csv"], "select")
    assert select == [0, 3, 6] and not set(select) & set(train)
    assert not set(select) & set(seq.frames.tolist())
    w, t = tifffile.imread(out["weights.tif"]), tifffile.imread(out["target.tif"])
    assert len(w) == len(t) == len(train)
    for page, frame in enumerate(train):
        truth = next(r["truth"] for r in rows if int(r["frame"]) == frame)
        if truth == "gold":
            lab = seq.instances[int(np.flatnonzero(seq.frames == frame)[0])]
        else:
            lab = seq.silver[frame]
        np.testing.assert_array_equal(t[page], training_target(lab))
        if frame != 4:
            np.testing.assert_allclose(w[page], weight_map(lab), rtol=1e-6)
    if data != "ST":  # frame 4's left-out cell: weight 0 in GT and GT+ST
        page = train.index(4)
        assert (w[page] == 0).any()
    # the training loop gets the image of each page's frame
    samples = load_samples(prepared, out["weights.tif"], out["target.tif"], frames=train)
    assert len(samples) == len(train)
    for (image, _, _), frame in zip(samples, train, strict=True):
        raw = seq.images[frame].astype(np.float64)
        assert np.corrcoef(image.ravel(), raw.ravel())[0, 1] > 0.999
    with pytest.raises(Exception, match="weight pages"):
        load_samples(prepared, out["weights.tif"], out["target.tif"], frames=train[:-1])


def test_weights_script_trains_the_cores_and_ignores_the_cells_without_one(tmp_path, sequence):
    seq = sequence
    prepared = tmp_path / "01.npz"
    write_prepared(prepared, seq)
    out = run_weights(tmp_path, prepared, "GT+ST", 2, "--core-erosion", "2")
    train = read_frames(out["frames.csv"])
    w, t = tifffile.imread(out["weights.tif"]), tifffile.imread(out["target.tif"])
    with open(out["frames.csv"], newline="") as f:
        rows = {int(r["frame"]): r["truth"] for r in csv.DictReader(f)}
    plain = 0
    for page, frame in enumerate(train):
        if rows[frame] == "gold":
            lab = seq.instances[int(np.flatnonzero(seq.frames == frame)[0])]
        else:
            lab = seq.silver[frame]
        core, vanished = core_instances(lab, 2)
        np.testing.assert_array_equal(t[page], core > 0)
        assert (t[page] <= training_target(lab)).all()  # the cores lie inside the old target
        plain += int(training_target(lab).sum())
        assert (w[page][vanished] == 0).all()
        if frame != 4:  # frame 4 also ignores its left-out cell
            expect = weight_map(core, ignore=vanished if vanished.any() else None)
            np.testing.assert_allclose(w[page], expect, rtol=1e-6)
    assert 0 < t.sum() < plain  # every cell lost its rim


def test_st_needs_the_silver_truth(tmp_path, sequence):
    seq = sequence
    prepared = tmp_path / "01.npz"
    write_npz(prepared, images=seq.images, instances=seq.instances, frames=seq.frames)
    with pytest.raises(subprocess.CalledProcessError) as err:
        run_weights(tmp_path, prepared, "GT+ST", 2)
    assert "holds no silver truth" in err.value.stderr.decode()


def test_selection_on_unseen_frames_scores_against_the_silver_truth(tmp_path, sequence):
    """select_ctc --on unseen: the selection frames' predictions against their silver truth."""
    seq = sequence
    prepared = tmp_path / "01.npz"
    write_prepared(prepared, seq)
    out = run_weights(tmp_path, prepared, "GT", 2)
    select = read_frames(out["frames.csv"], "select")
    # a "prediction" from the silver truth: cells without their separation borders
    probs = np.stack([training_target(seq.silver[t]) for t in select]).astype(np.float32)
    pred = tmp_path / "select-01.tif"
    meta = {"photometric": "minisblack"}
    tifffile.imwrite(pred, probs, description=json.dumps({"frames": select}), **meta)
    grid = {"threshold": [0.5], "mask_threshold": [None], "expand": [0, 1]}
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "select_ctc.py"),
        "--predictions",
        str(pred),
        "--prepared",
        str(prepared),
        "--frames",
        str(out["frames.csv"]),
        "--grid",
        json.dumps(grid),
        "--out-json",
        str(tmp_path / "pp.json"),
        "--out-csv",
        str(tmp_path / "pp.csv"),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    best = json.loads((tmp_path / "pp.json").read_text())
    # against the silver truth of those frames, not the gold truth of others
    expected, _ = select_postprocessing(list(probs), list(seq.silver[select]), grid)
    assert best["seg"] == pytest.approx(expected["seg"]) and best["seg"] > 0.9
    assert best["expand"] == expected["expand"]
    assert best["reference"].startswith("silver truth")
    assert best["selected_on"] == [{"prepared": str(prepared), "frames": select}]
    # a prediction of other frames than the CSV names is refused
    tifffile.imwrite(pred, probs, description=json.dumps({"frames": [1, 2, 5]}), **meta)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and "for selection" in proc.stderr


def test_figure3_draws_the_page_of_its_frame(tmp_path, sequence):
    """Under GT+ST the weight stacks hold silver frames too: the figure finds its frame's page."""
    import argparse
    import importlib.util

    seq = sequence
    prepared = tmp_path / "01.npz"
    write_prepared(prepared, seq)
    out = run_weights(tmp_path, prepared, "GT+ST", 2)
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("fw", REPO / "scripts" / "figure_weights.py")
    fw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fw)
    data = dict(np.load(prepared))
    target = tifffile.imread(out["target.tif"])
    args = argparse.Namespace(
        index=1, frame=None, frames=out["frames.csv"], prepared=prepared, weights="w.tif"
    )
    image, truth, page, what = fw.figure_inputs(data, len(target), args)
    # the second annotated frame, 4, is page 2 (pages: frames 1, 2, 4, 5, 7)
    assert read_frames(out["frames.csv"]) == [1, 2, 4, 5, 7] and page == 2
    np.testing.assert_array_equal(image, seq.images[4])
    np.testing.assert_array_equal(truth, seq.instances[1])
    np.testing.assert_array_equal(target[page], training_target(truth))
    args.frame = 3  # a selection frame, not annotated
    with pytest.raises(SystemExit, match="not an annotated frame"):
        fw.figure_inputs(data, len(target), args)


def test_composites_paste_cells_of_training_frames_only_into_training_frames(tmp_path):
    """paste.py: one composite per training page, in page order, made of training frames
    only (the selection frames' grey values, a sentinel here, never appear), with the target
    and w(x) of its labels, and the frame's truth kept where nothing was pasted."""
    rng = np.random.default_rng(0)
    n, shape = 8, (96, 128)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    silver = np.zeros((n, *shape), np.int32)
    for t in range(n):
        for k, (y, x) in enumerate([(25, 25), (70, 40), (30, 95), (72, 100)], start=1):
            y, x = y + rng.integers(-3, 4), x + rng.integers(-3, 4)
            silver[t][(yy - y) ** 2 + (xx - x) ** 2 <= 64] = k
    images = (100 + 80 * (silver > 0) + rng.integers(0, 20, silver.shape)).astype(np.uint16)
    gold = (1, 4)
    instances = silver[list(gold)].copy()
    roles = frame_roles(n, gold, np.ones(n, bool), "GT+ST", 2)
    select = [r["frame"] for r in roles if r["role"] == "select"]
    images[select] = 4000  # the sentinel
    prepared = tmp_path / "01.npz"
    write_npz(
        prepared,
        images=images,
        instances=instances,
        frames=np.array(gold),
        silver=silver,
        has_silver=np.ones(n, bool),
    )
    weights = run_weights(tmp_path, prepared, "GT+ST", 2, "--unannotated", "background")
    out = tmp_path / "01.pasted.npz"
    cmd = [sys.executable, str(REPO / "scripts" / "paste.py"), "--prepared", str(prepared)]
    cmd += ["--training-data", "GT+ST", "--holdout-every", "2", "--unannotated", "background"]
    subprocess.run([*cmd, "--touching-pastes", "2", "--out", str(out)], check=True)
    comp = np.load(out)
    train = read_frames(weights["frames.csv"])
    assert comp["frames"].tolist() == train and not set(train) & set(select)
    assert comp["images"].max() < 4000
    assert (comp["pasted"] >= 1).all()
    for k, frame in enumerate(train):
        lab = comp["instances"][k]
        np.testing.assert_array_equal(comp["targets"][k], training_target(lab))
        np.testing.assert_allclose(comp["weights"][k], weight_map(lab), rtol=1e-6)
        base = silver[frame]
        kept = lab <= base.max()
        np.testing.assert_array_equal(lab[kept], base[kept])
        assert lab.max() == base.max() + comp["pasted"][k]
    # the training loop takes them as (image, target, weights) triples, images normalised
    samples = load_composites(out)
    assert len(samples) == len(train) and abs(samples[0][0].mean()) < 1e-5
    bad = tmp_path / "bad.npz"
    write_npz(bad, images=comp["images"], targets=comp["targets"][:-1], weights=comp["weights"])
    with pytest.raises(Exception, match="equal stacks"):
        load_composites(bad)
    # a run again gives the same composites (drawn from the seed and the frame)
    again = tmp_path / "again.npz"
    subprocess.run([*cmd, "--touching-pastes", "2", "--out", str(again)], check=True)
    assert again.read_bytes() == out.read_bytes()
    # copies placed on the cells: other composites, the same frames; a bad range is refused
    # before anything is written
    on = tmp_path / "on.npz"
    subprocess.run(
        [*cmd, "--touching-pastes", "2", "--touching-overlap", "0.3", "0.7", "--out", str(on)],
        check=True,
    )
    assert np.load(on)["frames"].tolist() == train
    assert not np.array_equal(np.load(on)["instances"], comp["instances"])
    refused = subprocess.run(
        [
            *cmd,
            "--touching-pastes",
            "2",
            "--touching-overlap",
            "0.7",
            "0.3",
            "--out",
            str(on) + "2",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "--touching-overlap" in refused.stderr
    assert not (tmp_path / "on.npz2").exists()
    # only round cells: none of these small digital disks is that round (a clear error), and
    # a roundness of 1 or more is refused
    for value, message in (("0.99", "no cell of the training frames"), ("1.5", "[0, 1)")):
        refused = subprocess.run(
            [*cmd, "--touching-pastes", "2", "--touching-roundness", value, "--out", str(on) + "3"],
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
        assert not (tmp_path / "on.npz3").exists()
