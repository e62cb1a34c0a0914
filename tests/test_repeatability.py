"""One configuration and seed give one result, across processes; every number says what made it.

torch seeds its global generator randomly in every new process, so repeatability is tested
across two processes (the training script run twice), never inside one.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unet_repro.ablations import variant_config
from unet_repro.io import write_npz, write_tiff
from unet_repro.model import UNet, init_generator
from unet_repro.provenance import (
    ENV,
    config_digest,
    flatten,
    from_prediction,
    record,
    steps_of,
    versions,
)

REPO = Path(__file__).resolve().parents[1]


def _inputs(folder: Path) -> list[str]:
    """A prepared sequence of two 64x64 images with discs, their targets and weight maps."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:64, :64]
    targets = np.zeros((2, 64, 64), np.uint8)
    for t in targets:
        for _ in range(4):
            cy, cx = rng.integers(10, 54, 2)
            t[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 1
    images = (targets * 120 + rng.normal(60, 20, targets.shape)).clip(0, 255).astype(np.uint8)
    write_npz(folder / "train.npz", images=images)
    write_tiff(folder / "train.target.tif", targets)
    write_tiff(folder / "train.weights.tif", 1.0 + 2.0 * targets.astype(np.float32))
    return [
        "--prepared",
        str(folder / "train.npz"),
        "--weights",
        str(folder / "train.weights.tif"),
        "--targets",
        str(folder / "train.target.tif"),
    ]


def _train(folder: Path, inputs: list[str], seed: int, threads: int = 1, configured=None, **train):
    """Run scripts/train.py in a new process; return (model bytes, loss rows without seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = {"base_channels": 4, "depth": 2, "dropout": 0.5}
    train_cfg = {"iterations": 4, "input_size": 92, "lr": 0.01, "log_every": 1, "seed": seed}
    train_cfg.update(train)
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), *inputs]
    cmd += ["--model-config", json.dumps(model_cfg), "--train-config", json.dumps(train_cfg)]
    cmd += ["--device", "cpu", "--threads", str(threads), "--checkpoint", str(folder / "c.pt")]
    cmd += ["--out-model", str(folder / "model.pt"), "--out-log", str(folder / "loss.csv")]
    cmd += ["--out-plot", str(folder / "loss.png")]
    if configured:
        cmd += ["--configured-threads", str(configured)]
    env = {**os.environ, ENV: json.dumps({"full": "d1g3st"})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(folder / "loss.csv", newline="") as f:
        rows = [r[:3] for r in csv.reader(f)]  # iteration, loss, lr: the seconds aside
    return (folder / "model.pt").read_bytes(), rows, proc.stderr, folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two processes with seed 0, one with seed 1 (the same data)."""
    root = tmp_path_factory.mktemp("repeat")
    inputs = _inputs(root)
    return {
        name: _train(root / name, inputs, seed)
        for name, seed in (("a", 0), ("b", 0), ("other_seed", 1))
    }


def test_two_processes_train_bit_identical_models(trained):
    model_a, rows_a, *_ = trained["a"]
    model_b, rows_b, *_ = trained["b"]
    assert rows_a == rows_b and len(rows_a) == 5  # header + 4 iterations, every loss equal
    assert model_a == model_b  # the model file, byte for byte (provenance included)


def test_another_seed_gives_other_initial_weights_and_losses(trained):
    _, rows_a, *_ = trained["a"]
    _, rows_c, *_ = trained["other_seed"]
    assert rows_a[1][1] != rows_c[1][1]  # iteration 1's loss: other initial weights, tiles
    a = UNet(base_channels=4, depth=2, seed=0).state_dict()
    c = UNet(base_channels=4, depth=2, seed=1).state_dict()
    again = UNet(base_channels=4, depth=2, seed=0).state_dict()
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])


def test_initial_weights_ignore_the_global_generator():
    torch.manual_seed(1)
    a = UNet(base_channels=4, depth=2, seed=3).state_dict()
    torch.manual_seed(2)
    torch.rand(10)
    b = UNet(base_channels=4, depth=2, seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the initial weights' stream is not the global stream of the same seed (dropout's)
    g = torch.Generator().manual_seed(3)
    assert not torch.equal(init_generator(3).get_state(), g.get_state())


def test_model_records_its_provenance(trained):
    state = torch.load(trained["a"][3] / "model.pt", weights_only=True)
    prov = state["provenance"]
    assert prov["seed"] == 0 and prov["threads"] == 1 and prov["config_digest"] == "d1g3st"
    assert prov["device"].startswith("cpu: ") and prov["versions"] == versions()
    assert prov["versions"]["torch"] == torch.__version__  # with its build (+cpu, +cu129)
    assert set(prov) == {
        "seed",
        "commit",
        "tree",
        "config_digest",
        "device",
        "threads",
        "versions",
        "precision",
    }  # no time, no date
    assert prov["precision"] == "float32, NCHW"  # amp false: the CPU's default path
    assert "torch runs with 1 thread(s)" in trained["a"][2]


def test_fewer_threads_than_configured_are_logged(tmp_path):
    inputs = _inputs(tmp_path)
    _, _, log, _ = _train(tmp_path / "t", inputs, seed=0, threads=1, configured=2)
    assert "training with 1 torch thread(s) where the configuration asks for 2" in log
    assert "differ in the last bits" in log


def test_config_digest_ignores_where_data_come_from():
    cfg = {"name": "x", "train": {"lr": 0.1}, "mirror": "/a", "resources": {"t": 1}}
    same = {**cfg, "mirror": "/b", "resources": {"t": 8}, "download": {"retries": 1}}
    assert config_digest(cfg) == config_digest(same)
    assert config_digest(cfg) != config_digest({**cfg, "train": {"lr": 0.2}})
    # key order does not matter
    assert config_digest(dict(reversed(list(cfg.items())))) == config_digest(cfg)
    # defining (or tabling) another ablation variant changes no number of the full method;
    # a variant's own digest is that of its merged configuration
    with_variant = {**cfg, "ablations": {"slow": {"train": {"lr": 0.2}}}}
    assert config_digest({**with_variant, "ablation_variants": ["slow"]}) == config_digest(cfg)
    assert config_digest(variant_config(with_variant, "slow")) != config_digest(cfg)


def test_prediction_carries_the_records_to_the_scores(tmp_path):
    """predict.py writes the model's record and its own into the TIFF; scores read both."""
    config = {"base_channels": 2, "depth": 2, "dropout": 0.0}
    prov = {"seed": 7, **record("full", "cpu", 1)}
    model = {"model_config": config, "state_dict": UNet(**config, seed=0).state_dict()}
    torch.save({**model, "provenance": prov}, tmp_path / "m.pt")
    write_npz(tmp_path / "p.npz", images=np.zeros((1, 40, 40), np.uint8))
    cmd = [sys.executable, str(REPO / "scripts" / "predict.py"), "--model", tmp_path / "m.pt"]
    cmd += ["--prepared", tmp_path / "p.npz", "--tile-size", "92", "--device", "cpu"]
    cmd += ["--threads", "1", "--out", tmp_path / "o.tif"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    found = from_prediction(tmp_path / "o.tif")
    assert found["seed"] == 7 and found["train"] == {k: v for k, v in prov.items() if k != "seed"}
    assert found["predict"]["threads"] == 1 and found["predict"]["device"].startswith("cpu")
    assert found["predict"]["precision"] == "float32, NCHW"  # predict.py's default: amp false
    fields = flatten(steps_of({"provenance": {**found, "evaluate": record("full")}}))
    assert fields["threads"] == "1" and "torch " in fields["versions"]
    assert fields["precision"] == "float32, NCHW"  # the model's record has none: predict's
    # a prediction without a record (older file) gives None, not an error
    write_tiff(tmp_path / "old.tif", np.zeros((1, 4, 4), np.float32))
    assert from_prediction(tmp_path / "old.tif") == {"seed": None, "train": None, "predict": None}


def test_flatten_names_the_step_where_values_differ():
    base = {"commit": "a" * 40, "tree": "clean", "device": "cpu: X", "threads": 2}
    steps = [("train", {**base, "device": "cuda: H200"}), ("predict", base), ("evaluate", base)]
    out = flatten(steps)
    assert out["commit"] == "a" * 12 and out["threads"] == "2"
    assert out["device"] == "train: cuda: H200; predict: cpu: X; evaluate: cpu: X"
    dirty = flatten([("train", {**base, "tree": "uncommitted changes"})])
    assert dirty["commit"].endswith("(+ uncommitted changes)")


def test_bfloat16_training_repeats_across_processes(tmp_path, trained):
    """amp true on the CPU: bfloat16 autocast in NHWC (channels_last auto), one result per seed."""
    inputs = _inputs(tmp_path)
    model_a, rows_a, *_ = _train(tmp_path / "a", inputs, 0, amp=True)
    model_b, rows_b, _, folder = _train(tmp_path / "b", inputs, 0, amp=True)
    assert rows_a == rows_b and model_a == model_b
    fp32 = trained["a"][1]
    assert rows_a[1:] != fp32[1:]  # bfloat16 arithmetic, not float32's...
    assert float(rows_a[1][1]) == pytest.approx(float(fp32[1][1]), rel=0.02)  # ...close to it
    prov = torch.load(folder / "model.pt", weights_only=True)["provenance"]
    assert prov["precision"] == "bfloat16 autocast, NHWC"
