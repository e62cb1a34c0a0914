"""Tests of the training loop (unet_repro.train): loss, resuming, atomic files."""

import csv
import logging
import math

import numpy as np
import pytest
import torch

from unet_repro.augment import NO_AUG
from unet_repro.io import DataError
from unet_repro.model import UNet
from unet_repro.train import (
    TileStream,
    check_train_config,
    learning_rate,
    load_checkpoint,
    load_model,
    normalize,
    plot_loss,
    previous_checkpoint,
    save_atomic,
    train,
    weighted_cross_entropy,
)

TINY = {"input_size": 60, "iterations": 8, "lr": 0.01, "log_every": 1, "seed": 3}


@pytest.fixture(autouse=True)
def deterministic_torch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)


def discs(seed, shape=(80, 80), n=6):
    """Bright discs on a dark, noisy background; target = the discs, weights = 1 + disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, np.uint8)
    for _ in range(n):
        cy, cx, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(5, 12)
        lab |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    img = np.where(lab, 1.0, 0.2) + rng.normal(0, 0.1, shape)
    return normalize(img), lab, (1.0 + lab).astype(np.float32)


def tiny_net(seed=0, base=4):
    torch.manual_seed(seed)
    return UNet(base_channels=base, depth=2, dropout=0.5)  # dropout exercises the torch RNG


def run(tmp_path, cfg, model=None, **kw):
    paths = {k: tmp_path / f for k, f in [("out_model", "m.pt"), ("checkpoint", "c.pt")]}
    paths["log_csv"] = tmp_path / "loss.csv"
    samples = [discs(s) for s in range(3)]
    model = model if model is not None else tiny_net()
    return train(model, samples, cfg, device="cpu", progress=False, **paths, **kw)


def read_log(path):
    with open(path, newline="") as f:
        return [(int(r["iteration"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)]


# --------------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------------


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[[[2.0, 0.0], [1.0, -1.0]], [[0.0, 0.0], [3.0, 2.0]]]])  # (1,2,2,2)
    target = torch.tensor([[[0, 1], [1, 0]]])
    weights = torch.tensor([[[1.0, 2.0], [0.5, 10.0]]])
    expected = 0.0
    for i in range(2):
        for j in range(2):
            z = logits[0, :, i, j].tolist()
            log_p = z[target[0, i, j]] - math.log(sum(math.exp(v) for v in z))
            expected += -weights[0, i, j].item() * log_p
    expected /= 4  # mean over the pixels
    got = weighted_cross_entropy(logits, target, weights)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # unit weights = the ordinary cross-entropy
    ones = torch.ones_like(weights)
    ref = torch.nn.functional.cross_entropy(logits, target)
    assert weighted_cross_entropy(logits, target, ones).item() == pytest.approx(ref.item())
    with pytest.raises(ValueError, match="do not match"):
        weighted_cross_entropy(logits, target[:, :1], weights)


def test_normalize():
    x = normalize(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    assert x.dtype == np.float32
    assert abs(x.mean()) < 1e-6 and x.std() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(normalize(np.full((4, 4), 7)), 0.0)


def test_learning_rate_schedules():
    cfg = check_train_config({"iterations": 100, "lr": 0.1})
    assert [learning_rate(cfg, i) for i in (1, 50, 100)] == [0.1] * 3
    poly = check_train_config({"iterations": 100, "lr": 0.1, "schedule": "poly"})
    lrs = [learning_rate(poly, i) for i in range(1, 101)]
    assert lrs[0] == 0.1 and all(np.diff(lrs) < 0) and 0 < lrs[-1] < 0.01
    step = check_train_config({"lr": 0.1, "schedule": "step", "step_every": 10, "step_gamma": 0.5})
    assert [learning_rate(step, i) for i in (1, 10, 11, 21)] == [0.1, 0.1, 0.05, 0.025]


def test_config_validation():
    assert check_train_config()["momentum"] == 0.99
    with pytest.raises(ValueError, match="iteratoins"):
        check_train_config({"iteratoins": 5})
    with pytest.raises(ValueError, match="schedule"):
        check_train_config({"schedule": "cosine"})
    with pytest.raises(ValueError, match="unknown augmentation"):
        check_train_config({"augment": {"elastc": True}})


def test_tile_stream_depends_only_on_seed_and_iteration():
    samples = [discs(s) for s in range(3)]
    a = TileStream(samples, 60, 20, None, seed=1, length=10)
    b = TileStream(samples, 60, 20, None, seed=1, length=10)
    for i in (7, 2, 7):
        for u, v in zip(a[i], b[i], strict=True):
            assert torch.equal(u, v)
    assert not torch.equal(a[2][0], a[3][0])
    x, y, w = a[5]
    assert x.shape == (1, 60, 60) and y.shape == (20, 20) and w.shape == (20, 20)
    assert y.dtype == torch.int64 and w.dtype == torch.float32


def test_save_atomic_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_atomic({"v": torch.tensor([1.0])}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_atomic({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"].item() == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("checkpoint_every", "optimizer"), [(1, "sgd"), (2, "sgd"), (2, "adam")])
def test_resume_is_bit_identical(tmp_path, checkpoint_every, optimizer):
    cfg = {**TINY, "checkpoint_every": checkpoint_every, "optimizer": optimizer}
    full = run(tmp_path / "full", cfg)
    log_full = read_log(tmp_path / "full" / "loss.csv")

    part = tmp_path / "part"
    run(part, cfg, stop_after=3)  # "killed" after iteration 3
    assert not (part / "m.pt").exists()
    assert torch.load(part / "c.pt")["iteration"] == 3 // checkpoint_every * checkpoint_every
    resumed = run(part, cfg, model=tiny_net(seed=99))  # another init: all state comes from disk

    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    final = torch.load(part / "m.pt")["state_dict"]
    assert all(torch.equal(final[k], a[k]) for k in a)
    log = read_log(part / "loss.csv")
    assert [r[0] for r in log] == list(range(1, 9))  # no duplicates, no gaps
    assert log == log_full


def test_resume_rebuilds_a_deleted_loss_log(tmp_path):
    """Snakemake deletes the outputs of a job that stopped: the loss CSV comes back from the
    checkpoint, also when the training had already reached its last iteration."""
    cfg = {**TINY, "checkpoint_every": 2}
    run(tmp_path / "full", cfg)
    log_full = read_log(tmp_path / "full" / "loss.csv")
    model_full = torch.load(tmp_path / "full" / "m.pt")["state_dict"]
    part = tmp_path / "part"
    run(part, cfg, stop_after=5)
    (part / "loss.csv").unlink()
    run(part, cfg, model=tiny_net(seed=99))
    assert read_log(part / "loss.csv") == log_full
    for name in ("loss.csv", "m.pt"):  # killed after the last checkpoint, outputs deleted
        (part / name).unlink()
    run(part, cfg, model=tiny_net(seed=99))
    assert read_log(part / "loss.csv") == log_full
    final = torch.load(part / "m.pt")["state_dict"]
    assert all(torch.equal(final[k], model_full[k]) for k in model_full)


def test_workers_do_not_change_the_result(tmp_path):
    cfg = {**TINY, "iterations": 4}
    a = run(tmp_path / "a", cfg).state_dict()
    b = run(tmp_path / "b", {**cfg, "workers": 1}).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gpu_settings_do_not_change_the_cpu_result(tmp_path):
    """float32 on the CPU: channels_last auto keeps NCHW; prefetch_factor only schedules."""
    cfg = {**TINY, "iterations": 4, "amp": False, "channels_last": False}
    a = run(tmp_path / "a", cfg).state_dict()
    gpu = {"channels_last": "auto", "workers": 1, "prefetch_factor": 1}
    b = run(tmp_path / "b", {**cfg, **gpu}).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_autocast_trains_on_the_cpu(tmp_path):
    """amp true acts on the CPU too: other last bits than float32, the same training."""
    cfg = {**TINY, "iterations": 4, "amp": False, "channels_last": False}
    a = run(tmp_path / "a", cfg).state_dict()
    run(tmp_path / "b", {**cfg, "amp": True, "channels_last": "auto"})
    saved = torch.load(tmp_path / "b" / "m.pt", weights_only=True)
    b = saved["state_dict"]
    assert saved["provenance"]["precision"] == "bfloat16 autocast, NHWC"
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert all(b[k].dtype == torch.float32 and b[k].is_contiguous() for k in b)  # float32 NCHW
    flat_a, flat_b = (torch.cat([t[k].flatten() for k in sorted(a)]) for t in (a, b))
    assert torch.linalg.norm(flat_b - flat_a) <= 0.05 * torch.linalg.norm(flat_a)


@pytest.mark.parametrize("bad", ["yes", 1])
def test_amp_setting_must_be_true_false_or_auto(tmp_path, bad):
    with pytest.raises(ValueError, match="amp must be true, false or 'auto'"):
        run(tmp_path, {**TINY, "amp": bad})


def test_failed_checkpoint_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    cfg = {**TINY, "checkpoint_every": 1}
    run(tmp_path, cfg, stop_after=2)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save({"garbage": 1}, f)
        raise OSError("killed while writing")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="killed"):
        run(tmp_path, cfg)
    monkeypatch.undo()
    assert torch.load(tmp_path / "c.pt")["iteration"] == 2
    assert torch.load(tmp_path / "c.prev.pt")["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.prev.pt", "c.pt", "loss.csv"]
    run(tmp_path, cfg)  # resumes from iteration 2 and finishes
    assert [r[0] for r in read_log(tmp_path / "loss.csv")] == list(range(1, 9))


def test_resume_with_more_iterations_equals_a_fresh_run(tmp_path):
    """Constant learning rate: a checkpoint continued to a longer run = that run from scratch."""
    cfg = {**TINY, "checkpoint_every": 2}
    longer = {**cfg, "iterations": 12}
    fresh = run(tmp_path / "fresh", longer).state_dict()
    run(tmp_path / "part", cfg, stop_after=5)  # checkpoint at iteration 4 of 8
    resumed = run(tmp_path / "part", longer, model=tiny_net(seed=99)).state_dict()
    assert all(torch.equal(fresh[k], resumed[k]) for k in fresh)
    assert torch.load(tmp_path / "part" / "m.pt")["iterations"] == 12


@pytest.mark.parametrize(
    ("first", "stop_after", "second", "why"),
    [
        # a checkpoint past the new end would be a longer training written as a shorter one
        ({}, None, {"iterations": 4}, "it has trained 8 iterations, more than the 4 asked for"),
        # poly decays to 0 at `iterations`: a run of 8 continued to 12 is no run of 12
        (
            {"schedule": "poly"},
            5,  # checkpoint at iteration 4
            {"schedule": "poly", "iterations": 12},
            "it was written by a run of 8 iterations and the poly schedule's learning rate "
            "depends on the length (12 asked for)",
        ),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_length(tmp_path, first, stop_after, second, why):
    cfg = {**TINY, "checkpoint_every": 2}
    run(tmp_path, {**cfg, **first}, stop_after=stop_after)
    before = (tmp_path / "c.pt").read_bytes()
    with pytest.raises(ValueError) as err:
        run(tmp_path, {**cfg, **second})
    msg = str(err.value)
    assert msg.startswith(f"cannot resume {tmp_path / 'c.pt'}: {why}. Delete the checkpoints")
    assert f"rm -f {tmp_path / 'c.pt'} {tmp_path / 'c.prev.pt'}" in msg
    assert (tmp_path / "c.pt").read_bytes() == before  # nothing lost


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    """A changed setting (here the learning rate) makes the checkpoint another training's: it
    is refused, kept, and the message says how to start afresh."""
    cfg = {**TINY, "checkpoint_every": 2}
    run(tmp_path, cfg, stop_after=5)
    before = (tmp_path / "c.pt").read_bytes()
    with pytest.raises(ValueError) as err:
        run(tmp_path, {**cfg, "lr": cfg["lr"] / 2})
    msg = str(err.value)
    assert msg.startswith(f"cannot resume {tmp_path / 'c.pt'}: settings ['lr'] differ from it")
    assert f"rm -f {tmp_path / 'c.pt'} {tmp_path / 'c.prev.pt'}" in msg
    assert (tmp_path / "c.pt").read_bytes() == before  # nothing lost


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_checkpoint_resumes_from_the_previous_one(tmp_path, caplog):
    """A damaged checkpoint.pt: resumed from checkpoint.prev.pt, still bit-identical."""
    cfg = {**TINY, "checkpoint_every": 2}
    full = run(tmp_path / "full", cfg).state_dict()
    part = tmp_path / "part"
    run(part, cfg, stop_after=5)  # checkpoints at iterations 2 and 4
    assert previous_checkpoint(part / "c.pt") == part / "c.prev.pt"
    assert torch.load(part / "c.pt")["iteration"] == 4
    assert torch.load(part / "c.prev.pt")["iteration"] == 2
    _truncate(part / "c.pt")
    with caplog.at_level(logging.INFO, logger="unet_repro.train"):
        resumed = run(part, cfg, model=tiny_net(seed=99)).state_dict()
    assert f"checkpoint {part / 'c.pt'} does not load (" in caplog.text
    assert f"resuming from the previous checkpoint {part / 'c.prev.pt'} (iteration 2)" in (
        caplog.text
    )
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert [r[0] for r in read_log(part / "loss.csv")] == list(range(1, 9))
    # the damaged file was replaced: both files load again, the newest is the last iteration
    assert torch.load(part / "c.pt")["iteration"] == 8
    assert torch.load(part / "c.prev.pt")["iteration"] == 6


def test_resume_logs_the_checkpoint(tmp_path, caplog):
    run(tmp_path, {**TINY, "checkpoint_every": 2}, stop_after=3)
    with caplog.at_level(logging.INFO, logger="unet_repro.train"):
        state, path = load_checkpoint(tmp_path / "c.pt")
    assert path == tmp_path / "c.pt" and state["iteration"] == 2
    assert f"resuming from {tmp_path / 'c.pt'} (iteration 2)" in caplog.text
    assert load_checkpoint(tmp_path / "none.pt") is None


@pytest.mark.parametrize("damage", ["truncate", "empty", "foreign"])
def test_no_readable_checkpoint_stops_naming_the_files(tmp_path, damage):
    cfg = {**TINY, "checkpoint_every": 2}
    run(tmp_path, cfg, stop_after=5)
    for name in ("c.pt", "c.prev.pt"):
        if damage == "truncate":
            _truncate(tmp_path / name, keep=0.3)
        elif damage == "empty":
            (tmp_path / name).write_bytes(b"")
        else:
            torch.save({"garbage": 1}, tmp_path / name)
    with pytest.raises(DataError) as err:
        run(tmp_path, cfg)
    msg = str(err.value)
    assert msg.startswith("cannot resume the training: no checkpoint loads")
    assert f"{tmp_path / 'c.pt'} (" in msg and f"{tmp_path / 'c.prev.pt'} (" in msg
    assert "Delete them to restart this training from iteration 0" in msg
    assert f"rm {tmp_path / 'c.pt'} {tmp_path / 'c.prev.pt'}" in msg
    assert (tmp_path / "c.pt").exists() and (tmp_path / "c.prev.pt").exists()  # kept


def test_single_unreadable_checkpoint_is_named(tmp_path):
    cfg = {**TINY, "checkpoint_every": 2}
    run(tmp_path, cfg, stop_after=3)  # one checkpoint (iteration 2), no previous one yet
    assert not (tmp_path / "c.prev.pt").exists()
    _truncate(tmp_path / "c.pt")
    with pytest.raises(DataError, match=r"Delete it to restart this training from iteration 0"):
        run(tmp_path, cfg)


def test_resume_refuses_changed_settings(tmp_path):
    run(tmp_path, {**TINY, "checkpoint_every": 1}, stop_after=1)
    with pytest.raises(ValueError, match="seed"):
        run(tmp_path, {**TINY, "checkpoint_every": 1, "seed": 4})


def test_loss_decreases_on_discs(tmp_path):
    """A tiny net learns bright discs: far below the loss of the best constant prediction."""
    samples = [discs(s) for s in range(3)]
    held_out = TileStream([discs(s) for s in (10, 11)], 92, 52, NO_AUG, seed=5, length=8)
    tiles = [held_out[i] for i in range(1, 9)]

    def loss(model):
        model.eval()
        with torch.no_grad():
            return np.mean(
                [
                    weighted_cross_entropy(model(x[None]), y[None], w[None]).item()
                    for x, y, w in tiles
                ]
            )

    def constant_loss():  # best constant prediction under the weights: weighted class frequency
        y = torch.cat([t[1].ravel() for t in tiles]).double()
        w = torch.cat([t[2].ravel() for t in tiles]).double()
        p = (w * y).sum() / w.sum()
        return float(-(w * (y * p.log() + (1 - y) * (1 - p).log())).mean())

    torch.manual_seed(0)
    model = UNet(base_channels=8, depth=2, dropout=0.0)
    before = loss(model)
    cfg = {"input_size": 92, "iterations": 100, "lr": 0.01, "log_every": 10, "seed": 0}
    train(
        model,
        samples,
        cfg,
        out_model=tmp_path / "m.pt",
        checkpoint=tmp_path / "c.pt",
        log_csv=tmp_path / "loss.csv",
        device="cpu",
        progress=False,
    )
    after = loss(model)
    assert after < 0.3 * constant_loss() < before
    logged = [r[1] for r in read_log(tmp_path / "loss.csv")]
    assert len(logged) == 10 and np.mean(logged[-3:]) < 0.5 * logged[0]

    reloaded = load_model(tmp_path / "m.pt")
    x = tiles[0][0][None]
    with torch.no_grad():
        assert torch.equal(reloaded(x), model.eval()(x))

    png = tmp_path / "loss.png"
    plot_loss(tmp_path / "loss.csv", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_divergence_is_reported(tmp_path, monkeypatch):
    def nan_loss(logits, target, weights):
        return weighted_cross_entropy(logits, target, weights) * float("nan")

    monkeypatch.setattr("unet_repro.train.weighted_cross_entropy", nan_loss)
    with pytest.raises(FloatingPointError, match="iteration 1"):
        run(tmp_path, TINY)


def test_batch_norm_network_resumes_bit_identically_and_reloads(tmp_path):
    """The running statistics are part of the model's state: a resumed training ends with
    the same ones, and the model file predicts as the trained network does."""
    cfg = {**TINY, "checkpoint_every": 2}

    def bn_net(seed=0):
        return UNet(base_channels=4, depth=2, dropout=0.5, norm="batch", seed=seed)

    full = run(tmp_path / "full", cfg, model=bn_net())
    part = tmp_path / "part"
    run(part, cfg, model=bn_net(), stop_after=3)
    resumed = run(part, cfg, model=bn_net(seed=99))
    a, b = full.state_dict(), resumed.state_dict()
    assert any(k.endswith("running_var") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    reloaded = load_model(part / "m.pt")
    assert reloaded.config["norm"] == "batch" and not reloaded.training
    x = torch.from_numpy(discs(7)[0][None, None, :60, :60].copy()).float()
    with torch.no_grad():
        assert torch.equal(reloaded(x), resumed.eval()(x))
