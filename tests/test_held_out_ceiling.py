"""benchmarks/held_out_ceiling.py on a small held-out sequence made here."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from unet_repro.io import write_npz
from unet_repro.metrics.ctc import object_errors

REPO = Path(__file__).resolve().parents[1]


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
    scores = tmp_path / "scores"
    scores.mkdir()
    cut = dict(threshold=0.8, mask_threshold=None, keep_unseeded=False, min_size=100)
    cut |= dict(split_depth=None, expand=0, fill_holes=True)
    (scores / "02.seg.json").write_text(json.dumps(cut | {"seg": 0.5}))
    # the run's objects: the cut above misses the 0.7 cell
    with open(scores / "02.objects.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "label", "match", "jaccard", "category"])
        w.writerows([[0, 1, 1, 1.0, "matched"], [0, 2, 2, 1.0, "matched"]])
        w.writerows([[2, 1, 1, 1.0, "matched"], [2, 2, 0, 0.0, "missed"]])
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "held_out_ceiling.py"),
         "--prepared", str(tmp_path / "02.npz"), "--scores", str(scores),
         "--predictions", str(tmp_path / "02.tif"), "--figure", str(tmp_path / "worst.png")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
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
