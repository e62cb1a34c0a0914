"""The GPU device check (benchmarks/device_check.py) runs end to end at tiny sizes on a CPU."""

import csv
import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device_check():
    spec = importlib.util.spec_from_file_location(
        "device_check", REPO / "benchmarks" / "device_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_smoke_table(device_check, tmp_path, one_thread):
    tiny = dataclasses.replace(
        device_check.SMOKE,
        model={"variant": "paper", "base_channels": 4, "depth": 2, "dropout": 0.5},
        tile=92,  # output 52
        warmup=1,
        reps=1,
        pilot=2,
        min_iterations=2,
        max_iterations=3,
        tile_samples=1,
        repeat_iterations=2,
        image_size=64,
        n_slices=4,
    )
    rows = device_check.smoke(tmp_path, tiny, seconds=0.1)

    with open(tmp_path / "device_check.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == device_check.COLUMNS
    assert len(table) == len(rows)
    assert (tmp_path / "device_check.md").read_text().count("\n|") == len(
        rows
    ) + 2  # header, rule, rows
    timed = [r for r in rows if r["measurement"].startswith(("train step", "predict", "pilot"))]
    assert {r["part"] for r in timed} == {"a", "b"}
    assert any(r["measurement"] == "train step, batch 1" for r in timed)
    for r in timed:
        assert math.isfinite(r["seconds"]) and r["seconds"] > 0, r
        assert math.isfinite(r["tflop"]) and r["tflop"] > 0, r
        assert math.isfinite(r["tflop_per_s"]), r
    scores = {r["measurement"]: r["value"] for r in rows if r["measurement"].endswith("error")}
    assert set(scores) == {"warping error", "rand error", "pixel error"}
    assert all(0 <= v <= 1 for v in scores.values())
    # (d) determinism: two runs per mode, each with its step time; the CPU repeats in both
    repeat = [r for r in rows if r["measurement"].startswith("repeat: train() twice")]
    assert sorted(r["setting"].split(",")[0] for r in repeat) == [
        "deterministic false",
        "deterministic false",
        "deterministic true",
        "deterministic true",
    ]
    for r in repeat:
        assert r["part"] == "d" and math.isfinite(r["seconds"]) and r["seconds"] > 0, r
        assert r["value"] == 1.0, r  # bit-identical on the CPU at one thread count
    loss = np.loadtxt(tmp_path / "loss.csv", delimiter=",", skiprows=1, ndmin=2)
    assert len(loss) >= 1 and np.isfinite(loss[:, 1]).all()


def test_pack_round_trip(device_check, tmp_path):
    """`pack` reads the workflow's layout and writes what the parts read."""
    from unet_repro.io import write_npz, write_tiff

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (30, 16, 16), dtype=np.uint8)
    labels = rng.random((30, 16, 16)) > 0.3
    (tmp_path / "results").mkdir()
    write_npz(tmp_path / "results/prepared/isbi2012/train.npz", images=images, labels=labels)
    weights = rng.random((30, 16, 16)).astype(np.float32)
    write_tiff(tmp_path / "results/weights/isbi2012/train.weights.tif", weights)
    write_tiff(tmp_path / "results/weights/isbi2012/train.target.tif", labels.astype(np.uint8))
    device_check.pack(tmp_path / "results", tmp_path / "data", "fold4")
    data = device_check.load_data(tmp_path / "data")
    assert data["train"].tolist() == list(range(24))
    assert data["test"].tolist() == list(range(24, 30))
    np.testing.assert_array_equal(data["images"], images)
    np.testing.assert_array_equal(data["labels"], labels)
    np.testing.assert_array_equal(data["weights"], weights)
