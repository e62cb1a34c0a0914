"""benchmarks/truth_crops.py: cell names, crop, outlines, and the CLI on a mirror made here."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "truth_crops.py"
spec = importlib.util.spec_from_file_location("truth_crops", SCRIPT)
truth_crops = importlib.util.module_from_spec(spec)
spec.loader.exec_module(truth_crops)


def test_parse_cell_reads_the_four_fields_and_names_a_bad_one():
    assert truth_crops.parse_cell("02:41:7:GT") == ("02", 41, 7, "GT")
    for bad in ("02:41:7", "02:41:7:SEG", "02:x:7:ST", "02:41:0:GT", "02:-1:3:GT"):
        with pytest.raises(ValueError, match="02:"):
            truth_crops.parse_cell(bad)


def test_crop_box_is_the_bounding_box_plus_margin_clipped_to_the_image():
    mask = np.zeros((40, 50), bool)
    mask[10:15, 30:45] = True
    rows, cols = truth_crops.crop_box(mask, 8)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (2, 23, 22, 50)
    with pytest.raises(ValueError, match="empty"):
        truth_crops.crop_box(np.zeros((4, 4), bool), 1)


def test_overlay_draws_the_named_cell_green_and_the_others_magenta():
    truth = np.zeros((20, 30), np.uint16)
    truth[2:10, 2:10] = 3
    truth[2:10, 12:20] = 5
    rgb = truth_crops.overlay(np.arange(600.0).reshape(20, 30), truth, 5)
    green = np.all(rgb == (0, 1, 0), axis=2)
    magenta = np.all(rgb == (1, 0, 1), axis=2)
    assert green.any() and magenta.any()
    assert np.all(truth[green] == 5) and np.all(truth[magenta] == 3)
    assert not green[truth != 5].any() and not (green | magenta)[4:8, 4:8].any()  # outlines only


def _mirror(root):
    seq = root / "ctc" / "DS" / "01"
    seg = root / "ctc" / "DS" / "01_GT" / "SEG"
    seq.mkdir(parents=True)
    seg.mkdir(parents=True)
    image = np.random.default_rng(0).integers(0, 255, (60, 60), np.uint8)
    tifffile.imwrite(seq / "t003.tif", image)
    truth = np.zeros((60, 60), np.uint16)
    truth[20:30, 20:30] = 4
    truth[20:30, 31:40] = 6
    tifffile.imwrite(seg / "man_seg003.tif", truth)


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_cli_draws_the_named_cells_and_names_what_is_missing(tmp_path):
    _mirror(tmp_path / "data")
    common = ["--dataset", "DS", "--data", str(tmp_path / "data"), "--margin", "5"]
    run = _run("01:3:4:GT", *common, "--out", str(tmp_path / "f.png"))
    assert run.returncode == 0, run.stderr
    assert "01 t003 GT cell 4: 100 px; instances in the crop: [4, 6]" in run.stdout
    assert (tmp_path / "f.png").stat().st_size > 0
    missing = _run("01:3:4:ST", *common, "--out", str(tmp_path / "g.png"))
    assert missing.returncode != 0 and "01_ST/SEG/man_seg003.tif: not found" in missing.stderr
    absent = _run("01:3:9:GT", *common, "--out", str(tmp_path / "h.png"))
    assert absent.returncode != 0 and "holds no instance 9" in absent.stderr
