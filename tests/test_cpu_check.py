"""The check before an unrequested CPU training (unet_repro.cpu_check)."""

from pathlib import Path

import pytest
import torch
import yaml

from unet_repro import cpu_check
from unet_repro.model import UNet
from unet_repro.train import check_train_config

REPO = Path(__file__).resolve().parents[1]


def test_format_duration():
    assert cpu_check.format_duration(20) == "1 minutes"
    assert cpu_check.format_duration(45 * 60) == "45 minutes"
    assert cpu_check.format_duration(35 * 3600) == "35 hours"
    assert cpu_check.format_duration(58 * 86400) == "58 days"


def test_message_above_the_limit_gives_the_estimate_and_the_choices():
    assert cpu_check.cpu_training_message(20000, 2.0, 2) is None  # 11.1 hours
    msg = cpu_check.cpu_training_message(20000, 6.3, 2)
    assert "20000 iterations x 6.3 s per step (timed here, 2 threads) = about 35 hours" in msg
    assert "more than the 12 hours" in msg
    assert "snakemake --cores 2 --configfile config/quick.yaml" in msg
    assert "add --config device=cpu" in msg
    assert cpu_check.cpu_training_message(100, 1.0, 1, limit_hours=0.01).startswith("no GPU")


def test_timing_changes_neither_the_model_nor_the_random_generators():
    torch.manual_seed(0)
    model = UNet(base_channels=2, depth=2, dropout=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = cpu_check.time_training_step(model, 92, repeats=2)
    assert 0 < seconds < 60
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_with_cuda_nothing_is_timed(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("timed")

    monkeypatch.setattr(cpu_check, "time_training_step", fail)
    cfg = {"iterations": 10**9, "input_size": 572}
    assert cpu_check.auto_device_check(None, cfg, cuda_available=True) is None


def test_long_cpu_training_stops(monkeypatch):
    monkeypatch.setattr(cpu_check, "time_training_step", lambda *a, **k: 6.3)
    cfg = {"iterations": 20000, "input_size": 572}
    msg = cpu_check.auto_device_check(None, cfg, cuda_available=False)
    assert "about 35 hours" in msg


@pytest.mark.parametrize("name", ["quick.yaml", "ablations_cpu.yaml"])
def test_cpu_configurations_with_device_auto_pass(name):
    """The CPU configurations (device: auto) fit in the limit on this machine."""
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    assert cfg["device"] == "auto"
    iterations = max(
        [cfg["train"]["iterations"]]
        + [o.get("iterations", 0) for o in cfg["train_overrides"].values()]
    )
    train = check_train_config({**cfg["train"], "iterations": iterations})
    for override in [{}, *(cfg.get("model_overrides") or {}).values()]:  # each dataset's network
        model = UNet(**{**cfg["model"], **override})
        assert cpu_check.auto_device_check(model, train, cuda_available=False) is None
