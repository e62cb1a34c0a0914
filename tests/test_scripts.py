"""Every rule script is also a command-line tool with --help, and reports bad input clearly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (REPO / "scripts").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script):
    proc = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and len(proc.stdout) > 200


def test_prepare_reports_the_bad_file(tmp_path):
    tifffile.imwrite(tmp_path / "v.tif", np.zeros((2, 8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "l.tif", np.arange(128, dtype=np.uint8).reshape(2, 8, 8))
    cmd = [sys.executable, REPO / "scripts" / "prepare.py", "isbi", "--volume", tmp_path / "v.tif"]
    cmd += ["--labels", tmp_path / "l.tif", "--out", tmp_path / "o.npz"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "l.tif: ISBI labels must be binary" in proc.stderr
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("uncompressed", [False, True])
def test_predict_writes_float32_pages(tmp_path, uncompressed):
    """--uncompressed (the ISBI submission) writes plain float32 pages; else zlib."""
    import torch

    from unet_repro.model import UNet

    config = {"base_channels": 2, "depth": 2, "dropout": 0.0}
    torch.save(
        {"model_config": config, "state_dict": UNet(**config).state_dict()}, tmp_path / "m.pt"
    )
    images = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    np.savez(tmp_path / "p.npz", images=images)
    cmd = [sys.executable, REPO / "scripts" / "predict.py", "--model", tmp_path / "m.pt"]
    cmd += ["--prepared", tmp_path / "p.npz", "--tile-size", "92", "--device", "cpu"]
    cmd += ["--out", tmp_path / "o.tif"] + (["--uncompressed"] if uncompressed else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        assert len(tif.pages) == 3
        expected = tifffile.COMPRESSION.NONE if uncompressed else tifffile.COMPRESSION.ADOBE_DEFLATE
        assert {p.compression for p in tif.pages} == {expected}
        probs = tif.asarray()
    assert probs.dtype == np.float32 and probs.shape == (3, 40, 40)


def test_select_ctc_names_a_mismatched_prediction(tmp_path):
    """select_ctc.py --on annotated: predictions that do not match the annotated frames are
    named."""
    import numpy as np
    import tifffile

    from unet_repro.io import write_npz

    inst = np.zeros((2, 16, 16), np.uint16)
    inst[:, 2:8, 2:8] = 1
    write_npz(tmp_path / "01.npz", images=np.zeros((5, 16, 16)), instances=inst, frames=[1, 3])
    tifffile.imwrite(
        tmp_path / "p.tif", np.zeros((3, 16, 16), np.float32), photometric="minisblack"
    )
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "select_ctc.py"),
        "--predictions",
        str(tmp_path / "p.tif"),
        "--prepared",
        str(tmp_path / "01.npz"),
        "--on",
        "annotated",
        "--out-json",
        str(tmp_path / "o.json"),
        "--out-csv",
        str(tmp_path / "o.csv"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and "p.tif: shape (3, 16, 16) differs" in proc.stderr
    assert not (tmp_path / "o.json").exists()
    p = np.zeros((2, 16, 16), np.float32)
    p[:, 3:7, 3:7] = 0.9
    tifffile.imwrite(tmp_path / "p.tif", p, photometric="minisblack")
    subprocess.run(cmd, check=True, capture_output=True)
    import json

    best = json.loads((tmp_path / "o.json").read_text())
    assert best["expand"] >= 1 and best["frames"] == 2 and best["seg"] > 0.85
