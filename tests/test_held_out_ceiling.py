"""benchmarks/held_out_ceiling.py on a small held-out sequence made here."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from unet_repro.io import write_npz
from unet_repro.metrics.ctc import object_errors

REPO = Path(__file__).resolve().parents[1]


def _run_ceiling(tmp_path, threshold, rows, *options):
    """Write the run's scores folder (its chosen cut, ``02.objects.csv`` with ``rows``) beside
    ``02.npz`` and ``02.tif`` in ``tmp_path``, run the benchmark, return what it prints."""
    scores = tmp_path / "scores"
    scores.mkdir()
    cut = dict(threshold=threshold, mask_threshold=None, keep_unseeded=False, min_size=100)
    cut |= dict(split_depth=None, expand=0, fill_holes=True)
    (scores / "02.seg.json").write_text(json.dumps(cut | {"seg": 0.5}))
    with open(scores / "02.objects.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "label", "match", "jaccard", "category"])
        w.writerows(rows)
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "held_out_ceiling.py"),
         "--prepared", str(tmp_path / "02.npz"), "--scores", str(scores),
         "--predictions", str(tmp_path / "02.tif"), *options],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_ceiling_reports_the_runs_and_the_silver_truths_jaccard_and_the_best_cut(tmp_path):
    yy, xx = np.mgrid[:64, :80]
    gold = np.zeros((2, 64, 80), dtype=np.uint16)
    for t in range(2):
        gold[t][(yy - 20) ** 2 + (xx - 20 - t) ** 2 <= 100] = 1
        gold[t][(yy - 40) ** 2 + (xx - 55) ** 2 <= 144] = 2
    silver = np.zeros((3, 64, 80), dtype=np.uint16)
    silver[[0, 2]] = np.roll(gold, 2, axis=2)  # frame 1 has no silver truth
    write_npz(
        tmp_path / "02.npz",
        images=np.zeros((3, 64, 80), dtype=np.uint8),
        instances=gold,
        frames=np.array([0, 2]),
        silver=silver,
        has_silver=np.array([True, False, True]),
    )
    # P(cell): the gold cells at 0.9, except the second cell of frame 2 at 0.7
    probs = np.zeros((3, 64, 80), dtype=np.float32)
    probs[[0, 2]] = 0.9 * (gold > 0)
    probs[2][gold[1] == 2] = 0.7
    tifffile.imwrite(tmp_path / "02.tif", probs, photometric="minisblack")
    # the run's objects: a cut at 0.8 misses the 0.7 cell
    rows = [[0, 1, 1, 1.0, "matched"], [0, 2, 2, 1.0, "matched"]]
    rows += [[2, 1, 1, 1.0, "matched"], [2, 2, 0, 0.0, "missed"]]
    out = _run_ceiling(tmp_path, 0.8, rows, "--figure", str(tmp_path / "worst.png"))
    st = {o["label"]: o["jaccard"] for o in object_errors(gold[0], silver[0])}
    assert st[1] < 1 and st[2] < 1  # shifted by 2 px
    # the silver truth's Jaccard on the same gold cells: gold frames 0 and 2 (frame 1 has
    # neither gold nor silver truth)
    matched = [st[1], st[2], object_errors(gold[1], silver[2])[0]["jaccard"]]
    assert f"| matched | 3 | 1.0000 | {np.mean(matched):.4f} (3 cells) |" in out
    assert "| missed | 1 | 0.0000 |" in out
    assert "SEG on 02: 0.7500 (1 stack(s))" in out  # 3 of 4 cells, each with Jaccard 1
    assert "(a ceiling, not a choice): 1.0000" in out  # a threshold below 0.7 gets all four
    assert "'threshold': 0.5" in out.splitlines()[-1]
    # the figure of the worst matched cells: a PNG with one panel per matched cell
    assert "the 3 worst matched cells" in out
    assert (tmp_path / "worst.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "held_out_ceiling", REPO / "benchmarks" / "held_out_ceiling.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_by_previous_separates_what_the_previous_frame_held_apart():
    split_by_previous = _load_benchmark().split_by_previous
    yy, xx = np.mgrid[:60, :90]
    left, right = (yy - 30) ** 2 + (xx - 28) ** 2 <= 196, (yy - 30) ** 2 + (xx - 60) ** 2 <= 196
    previous = np.zeros((60, 90), dtype=np.uint16)
    previous[left], previous[right] = 1, 2
    # frame t: the two cells have moved together and come out as one object
    merged = ndi.binary_closing(np.roll(left, 3, 1) | np.roll(right, -3, 1), iterations=4)
    out = split_by_previous(merged.astype(np.uint16), previous)
    assert out.max() == 2 and ((out > 0) == merged).all()
    assert (out[30, 20] != out[30, 70]) and out[30, 20] and out[30, 70]
    # one object of t - 1 in one object of t (a cell that moved, or divided later): untouched
    one = np.where(previous == 2, 0, previous)
    assert (split_by_previous(merged.astype(np.uint16), one) == merged).all()
    # a previous object with too small a share inside (0.3 by default) does not split
    assert split_by_previous(merged.astype(np.uint16), previous, min_share=0.99).max() == 1
    # a part under min_size is not cut off
    assert split_by_previous(merged.astype(np.uint16), previous, min_size=700).max() == 1


def test_ceiling_temporal_reports_the_seg_with_merges_split_by_the_previous_frame(tmp_path):
    yy, xx = np.mgrid[:60, :90]
    gold = np.zeros((3, 60, 90), dtype=np.uint16)
    for t, gap in enumerate((4, 1, 0)):  # two cells closing in until they touch
        gold[t][((yy - 30) ** 2 + (xx - 30 + gap) ** 2 <= 196) & (xx < 45)] = 1
        gold[t][((yy - 30) ** 2 + (xx - 60 - gap) ** 2 <= 196) & (xx >= 45 + 2 * gap)] = 2
    write_npz(
        tmp_path / "02.npz",
        images=np.zeros((3, 60, 90), dtype=np.uint8),
        instances=gold[1:],
        frames=np.array([1, 2]),
        silver=gold,
        has_silver=np.array([True, True, True]),
    )
    probs = 0.9 * (gold > 0).astype(np.float32)
    probs[1:, 27:34, 40:52] = 0.9  # frames 1 and 2: the cells joined by a bridge
    tifffile.imwrite(tmp_path / "02.tif", probs, photometric="minisblack")
    out = _run_ceiling(tmp_path, 0.5, [], "--temporal")
    without = float(out.split("SEG on 02: ")[1].split()[0])
    line = next(x for x in out.splitlines() if "split by the previous one" in x)
    assert "3 frames in time order" in line and "merged 0 of 4 cells" in line
    assert without < 0.55 and float(line.split("SEG ")[1].split(",")[0]) > 0.8
