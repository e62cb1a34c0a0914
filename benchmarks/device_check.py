#!/usr/bin/env python
"""GPU check of the paper-scale runs (issue 9): speed of the paper network, and one ISBI fold.

Run by ``benchmarks/device_check.sh`` from the repository root with ``PYTHONPATH=src`` (the
package need not be installed) on a machine with torch, numpy, scipy, tifffile, numba and PyYAML;
no Snakemake, no image codecs, no network. Each part is a subcommand, so the shell script can
give each its own ``timeout``; the parts hand over through ``--out`` (files that come back) and
``--work`` (large intermediate files that do not).

Parts
-----
``pack``   (here, once) the workflow's prepared ISBI training volume, labels, training targets
           and weight maps (``results/prepared/isbi2012/train.npz``,
           ``results/weights/isbi2012/train.{weights,target}.tif``) and a split's slice indices
           as one compressed ``device_data/isbi2012.npz`` (about 11 MiB, git-ignored), to carry.
``synth``  a small synthetic ISBI-like volume in the same format (for ``--smoke``: no data).
``bench``  (a) the paper network's training step on one 572 tile (forward, weighted
           cross-entropy of :func:`unet_repro.train.weighted_cross_entropy`, backward, SGD
           momentum step) in fp32 (TF32 convolutions) and bf16 autocast, NCHW and channels-last;
           the CPU cost of one augmented tile; the prediction of all slices with the 7-transform
           averaging (:func:`unet_repro.inference.predict_volume`). Each with its FLOPs
           (:func:`unet_repro.model.forward_flops`; a training step counts 3 forward passes)
           and the achieved TFLOP/s, next to the chip's peak.
``train``  (b) the split's training slices (fold4: 0-23) with ``config/config.yaml``'s ``model``
           and ``train`` settings through :func:`unet_repro.train.train`: SGD, momentum 0.99, the
           config's learning rate and schedule with ``iterations`` = what fits in ``--seconds``
           (a pilot run measures the step time first), at most the config's ``iterations``
           (then it is the config's whole run). So a poly schedule decays to 0 over the
           iterations actually run, not over the config's 20000. Then the held-out slices
           (fold4: 24-29) are predicted with the config's ``predict`` settings and ISBI
           transforms (fp32), and on CUDA once more with bf16 autocast.
``score``  (b) warping, Rand and pixel error of those predictions with
           :func:`unet_repro.metrics.isbi.isbi_scores`, best over the challenge's thresholds,
           as ``scripts/evaluate_isbi.py`` computes them for Table 1.
``determinism`` (d) what GPU determinism costs: a short training (``Profile.repeat_iterations``
           iterations of the config's ``train`` settings) run twice with ``deterministic: true``
           and twice with ``false``; per mode, whether the two runs give bit-identical weights and
           losses, and the step time of each run (second half of its iterations).
``report`` (c) one table of everything, ``device_check.csv`` and ``device_check.md``.
``smoke``  synth, bench, train, score and report in one process at tiny sizes (for the tests).

``--smoke`` shrinks every part (a base-8, depth-3 network on 188 tiles, 160 x 160 synthetic
slices, a few iterations) so that the whole chain runs on a CPU in well under a minute.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unet_repro.config import tile_size_for
from unet_repro.inference import predict_volume, resolve_transforms, tile_stride
from unet_repro.model import UNet, forward_flops, output_size
from unet_repro.precision import resolve as resolve_precision
from unet_repro.train import (
    DEFAULT_TRAIN,
    TileStream,
    check_train_config,
    make_optimizer,
    normalize,
    train,
    weighted_cross_entropy,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"
DATA_FILE = "isbi2012.npz"
#: Dense bf16 rate of the lent H200: an 8192^3 bf16 matrix product ran at 769-798 TFLOP/s
#: (/work/.library/device/KINDS.md). TF32 is half of it (NVIDIA's dense H200 figures: 989 bf16,
#: 495 TF32 TFLOP/s).
PEAK_BF16 = 790.0
PEAK_TF32 = PEAK_BF16 / 2
#: The paper's Table 1 (ISBI challenge test set, u-net row), for orientation only: the check
#: scores 6 held-out training slices after a few minutes of training.
PAPER_TABLE1 = {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611}
METRICS = ("warping_error", "rand_error", "pixel_error")
ISBI_TRANSFORMS = ["identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose"]
COLUMNS = (
    "part",
    "measurement",
    "setting",
    "seconds",
    "tflop",
    "tflop_per_s",
    "peak_tflop_per_s",
    "fraction_of_peak",
    "value",
    "note",
)


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes of one run: the paper's (None = the config's) or the CPU smoke's."""

    model: Mapping[str, Any] | None = None  # None: config's `model`
    tile: int | None = None  # None: config's train.input_size / predict.tile_size
    warmup: int = 5  # untimed training steps before the timed ones
    reps: int = 20  # timed training steps
    pilot: int = 40  # iterations of the pilot that measures train()'s step time
    min_iterations: int = 50
    max_iterations: int = 1_000_000
    bench_slices: int | None = None  # slices predicted in `bench` (None: all)
    tile_samples: int = 8  # augmented tiles timed on the CPU
    predict_batches: tuple[int, ...] = (16,)  # batch sizes timed besides the config's
    repeat_iterations: int = 40  # determinism: iterations of each of the four runs
    image_size: int = 160  # synth only
    n_slices: int = 8  # synth only


PAPER = Profile()
SMOKE = Profile(
    model={"variant": "paper", "base_channels": 8, "depth": 3, "dropout": 0.5},
    tile=188,
    warmup=1,
    reps=2,
    pilot=3,
    min_iterations=4,
    max_iterations=12,
    bench_slices=2,
    tile_samples=2,
    predict_batches=(),
    repeat_iterations=4,
)


# --------------------------------------------------------------------------------------------
# settings, data, output
# --------------------------------------------------------------------------------------------


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def model_settings(cfg: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    model = dict(profile.model if profile.model is not None else cfg["model"])
    return {"in_channels": 1, "n_classes": 2, **model}


def train_settings(cfg: Mapping[str, Any], profile: Profile, **changes: Any) -> dict[str, Any]:
    """The config's ``train`` section (keys of DEFAULT_TRAIN), with its first seed."""
    given = {k: v for k, v in (cfg.get("train") or {}).items() if k in DEFAULT_TRAIN}
    seeds = cfg.get("seeds")
    if "seed" not in given and isinstance(seeds, list) and seeds:
        given["seed"] = int(seeds[0])
    if profile.tile is not None:
        given["input_size"] = profile.tile
    given.update(changes)
    return check_train_config(given)


def predict_settings(
    cfg: Mapping[str, Any], profile: Profile, device: torch.device
) -> dict[str, Any]:
    """The configuration's prediction settings, amp and channels_last resolved on device."""
    p = cfg.get("predict") or {}
    amp, nhwc = resolve_precision(p.get("amp", False), p.get("channels_last", "auto"), device)
    return {
        "tile_size": profile.tile or tile_size_for(p, "isbi2012"),
        "batch_size": int(p.get("batch_size", 4)),
        "amp": amp,
        "channels_last": nhwc,
        "transforms": resolve_transforms(
            (p.get("transforms") or {}).get("isbi2012", ISBI_TRANSFORMS)
        ),
    }


def load_data(folder: Path) -> dict[str, np.ndarray]:
    path = Path(folder) / DATA_FILE
    if not path.is_file():
        raise SystemExit(
            f"{path} not found: run `python benchmarks/device_check.py pack` here and carry "
            "the folder (or `synth` for a synthetic volume)"
        )
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def training_samples(data: Mapping[str, np.ndarray]) -> list[tuple]:
    """(image, target, weights) of the training slices, as scripts/train.py builds them."""
    return [
        (normalize(data["images"][i]), data["target"][i], data["weights"][i]) for i in data["train"]
    ]


def device_and_flags() -> torch.device:
    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for convolutions
    torch.backends.cuda.matmul.allow_tf32 = True
    return torch.device("cuda")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_rate(device: torch.device, bf16: bool) -> float:
    if device.type != "cuda":
        return math.nan  # no reference for a CPU
    return PEAK_BF16 if bf16 else PEAK_TF32


def make_row(
    part,
    measurement,
    setting,
    seconds=math.nan,
    tflop=math.nan,
    peak=math.nan,
    value=math.nan,
    note="",
) -> dict[str, Any]:
    rate = tflop / seconds if seconds and seconds > 0 else math.nan
    return {
        "part": part,
        "measurement": measurement,
        "setting": setting,
        "seconds": seconds,
        "tflop": tflop,
        "tflop_per_s": rate,
        "peak_tflop_per_s": peak,
        "fraction_of_peak": rate / peak if peak and peak > 0 else math.nan,
        "value": value,
        "note": note,
    }


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row (header first), flushed at once: a later timeout keeps it."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(
        f"  {row['measurement']} [{row['setting']}]: "
        + ", ".join(
            f"{k} {row[k]:.4g}"
            for k in ("seconds", "tflop_per_s", "value")
            if isinstance(row[k], float) and math.isfinite(row[k])
        )
        + (f"; {row['note']}" if row["note"] else ""),
        flush=True,
    )


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in COLUMNS[3:9]:
            row[key] = float(row[key]) if row[key] not in ("", None) else math.nan
    return rows


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# pack / synth
# --------------------------------------------------------------------------------------------


def pack(results: Path, out: Path, split: str = "fold4") -> Path:
    """Write the prepared ISBI training data and ``split``'s indices to ``out/isbi2012.npz``."""
    from unet_repro.datasets import parse_indices
    from unet_repro.io import read_npz, read_tiff

    prepared = read_npz(results / "prepared" / "isbi2012" / "train.npz")
    weights = read_tiff(results / "weights" / "isbi2012" / "train.weights.tif")
    target = read_tiff(results / "weights" / "isbi2012" / "train.target.tif")
    images, labels = prepared["images"], prepared["labels"]
    if not images.shape == labels.shape == weights.shape == target.shape:
        raise SystemExit(f"shapes differ: {images.shape} {labels.shape} {weights.shape}")
    spec = load_config()["splits"]["isbi2012"][split]
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE
    np.savez_compressed(
        path,
        images=images.astype(np.uint8),
        labels=(labels > 0).astype(np.uint8),  # 1 = cell (non-membrane), as isbi_scores wants
        target=target.astype(np.uint8),
        weights=weights.astype(np.float32),
        train=np.array(parse_indices(spec["train"], len(images))),
        test=np.array(parse_indices(spec["test"], len(images))),
    )
    size = path.stat().st_size / 2**20
    print(f"wrote {path}: {len(images)} slices {images.shape[1:]}, {split}, {size:.1f} MiB")
    if size > 20:
        raise SystemExit(f"{path} is {size:.1f} MiB, more than the 20 MiB planned")
    return path


def synth(out: Path, profile: Profile = SMOKE, seed: int = 0) -> Path:
    """A small ISBI-like volume (dark membranes between touching cells) with its weight maps."""
    from unet_repro.synthetic import render_membranes, touching_cells
    from unet_repro.weights import isbi_instances, training_target, weight_map

    wcfg = load_config().get("weights") or {}
    rng = np.random.default_rng(seed)
    size, n = profile.image_size, profile.n_slices
    n_cells = max(4, round(20 * (size / 96) ** 2))  # the density of synthetic.write_isbi
    images, labels = zip(
        *(
            render_membranes(touching_cells((size, size), n_cells, rng, fill=True), rng)
            for _ in range(n)
        ),
        strict=True,
    )
    instances = [isbi_instances(lab) for lab in labels]
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE
    np.savez_compressed(
        path,
        images=np.stack(images),
        labels=(np.stack(labels) > 0).astype(np.uint8),
        target=np.stack([training_target(i) for i in instances]),
        weights=np.stack(
            [
                weight_map(
                    i,
                    w0=float(wcfg.get("w0", 10)),
                    sigma=float(wcfg.get("sigma", 5)),
                    class_balance=wcfg.get("class_balance", "inverse_frequency"),
                )
                for i in instances
            ]
        ),
        train=np.arange(n - 2),
        test=np.arange(n - 2, n),
    )
    print(f"wrote {path}: {n} synthetic slices {size} x {size}")
    return path


# --------------------------------------------------------------------------------------------
# (a) speed
# --------------------------------------------------------------------------------------------


def bench(data_dir: Path, out: Path, profile: Profile = PAPER) -> list[dict[str, Any]]:
    """Training-step, tile-sampling and prediction timings, appended to ``out/bench.csv``."""
    device = device_and_flags()
    cfg = load_config()
    model_cfg, tcfg, pcfg = (
        model_settings(cfg, profile),
        train_settings(cfg, profile),
        predict_settings(cfg, profile, device),
    )
    data = load_data(data_dir)
    csv_path, rows = out / "bench.csv", []

    def add(row):
        rows.append(row)
        append_row(csv_path, row)

    n = int(tcfg["input_size"])
    depth = int(model_cfg["depth"])
    fwd = forward_flops(model_cfg, n) / 1e12
    name = f"base {model_cfg['base_channels']}, depth {depth}, {n} tile"
    print(f"== bench on {device}: {name}, forward {fwd * 1e3:.1f} GFLOP", flush=True)

    # CPU cost of one augmented training tile (what the data-loader workers do)
    stream = TileStream(
        training_samples(data), n, output_size(n, depth), tcfg["augment"], int(tcfg["seed"]), 10**9
    )
    stream[1]  # first call: imports and caches
    t0 = time.perf_counter()
    tiles = [stream[i] for i in range(2, 2 + profile.tile_samples)]
    per_tile = (time.perf_counter() - t0) / profile.tile_samples
    add(
        make_row(
            "a",
            "tile sampling (augmentation)",
            f"1 CPU process, {n} tile",
            per_tile,
            note=f"config workers {tcfg['workers']}: <= {tcfg['workers'] / per_tile:.0f}"
            " tiles/s if tiles are the bottleneck"
            if tcfg["workers"]
            else "",
        )
    )

    # (a) one training step: forward, weighted cross-entropy, backward, SGD momentum step
    x, y, w = (t[None].to(device) for t in tiles[0])
    for amp, channels_last in ((False, True), (True, True), (False, False), (True, False)):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        torch.manual_seed(0)
        model = UNet(**model_cfg).to(device).to(memory_format=fmt).train()
        opt = make_optimizer(model, tcfg)
        xb = x.contiguous(memory_format=fmt)

        def step(model=model, opt=opt, xb=xb, amp=amp):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(xb)
            loss = weighted_cross_entropy(logits, y, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        for _ in range(profile.warmup):
            step()
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(profile.reps):
            loss = step()
        sync(device)
        seconds = (time.perf_counter() - t0) / profile.reps
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training step: loss {loss.item()}")
        mem = (
            f", peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
            if device.type == "cuda"
            else ""
        )
        precision = (
            "bf16 autocast" if amp else ("fp32 (TF32 conv)" if device.type == "cuda" else "fp32")
        )
        add(
            make_row(
                "a",
                "train step, batch 1",
                f"{precision}, {'channels_last' if channels_last else 'NCHW'}, {name}",
                seconds,
                3 * fwd,
                peak_rate(device, amp),
                note=f"mean of {profile.reps} after {profile.warmup} warm-up;"
                f" 3x forward FLOPs{mem}",
            )
        )
        del model, opt, xb, step
        if device.type == "cuda":
            torch.cuda.empty_cache()

    # (a) prediction of the slices with the test-time averaging
    images = data["images"][: profile.bench_slices]
    images = np.stack([normalize(i) for i in images])
    tile, names = pcfg["tile_size"], pcfg["transforms"]
    stride = tile_stride(tile, depth)
    per_image = math.ceil(images.shape[1] / stride) * math.ceil(images.shape[2] / stride)
    n_tiles = len(images) * len(names) * per_image
    tflop = n_tiles * forward_flops(model_cfg, tile) / 1e12
    torch.manual_seed(0)
    model = UNet(**model_cfg).eval()
    reference = None
    layout = "channels_last" if pcfg["channels_last"] else "NCHW"
    settings = [(False, pcfg["batch_size"])]
    if device.type == "cuda":
        settings.append((True, pcfg["batch_size"]))
        settings += [
            (amp, b)
            for b in profile.predict_batches
            if b != pcfg["batch_size"]
            for amp in (True, False)
        ]
    for amp, batch in settings:
        run = dict(
            tile_size=tile,
            transforms=names,
            batch_size=batch,
            device=device,
            amp=amp,
            channels_last=pcfg["channels_last"],
        )
        predict_volume(model, images[:1], **run)  # warm-up: autotunes this batch's kernels
        sync(device)
        t0 = time.perf_counter()
        probs = predict_volume(model, images, **run)
        sync(device)
        seconds = time.perf_counter() - t0
        note = f"{n_tiles} tiles of {tile}"
        if reference is None:
            reference = probs
        else:
            note += (
                f"; max |P - P(first row)| = {np.abs(probs - reference).max():.1e} (untrained net)"
            )
        precision = (
            "bf16 autocast" if amp else ("fp32 (TF32 conv)" if device.type == "cuda" else "fp32")
        )
        add(
            make_row(
                "a",
                f"predict {len(images)} slices x{len(names)} transforms",
                f"{precision}, {layout}, batch {batch}",
                seconds,
                tflop,
                peak_rate(device, amp),
                note=note,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# (b) training run, prediction, scores
# --------------------------------------------------------------------------------------------


def _log_seconds(path: Path) -> list[tuple[int, float, float]]:
    with open(path, newline="") as f:
        return [
            (int(r["iteration"]), float(r["loss"]), float(r["seconds"])) for r in csv.DictReader(f)
        ]


def train_part(
    data_dir: Path,
    out: Path,
    work: Path,
    profile: Profile = PAPER,
    seconds: float = 180.0,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train for about ``seconds``, predict the held-out slices; ``out/train.json``."""
    device = device_and_flags()
    cfg = load_config()
    model_cfg, pcfg = model_settings(cfg, profile), predict_settings(cfg, profile, device)
    if workers is None:
        workers = int((cfg.get("train") or {}).get("workers", 0))
    base = train_settings(cfg, profile, workers=workers)
    data = load_data(data_dir)
    samples = training_samples(data)
    work.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "-",
        "torch": torch.__version__,
        "model": model_cfg,
        "train_slices": data["train"].tolist(),
        "test_slices": data["test"].tolist(),
        "workers": workers,
        "budget_seconds": seconds,
    }

    def build() -> UNet:
        return UNet(**model_cfg, seed=int(base["seed"]))

    # pilot: train()'s own step time (data loading included), second half of the iterations
    pilot = {**base, "iterations": profile.pilot, "log_every": 1, "checkpoint_every": 10**9}
    t0 = time.perf_counter()
    train(
        build(),
        samples,
        pilot,
        out_model=work / "pilot.pt",
        checkpoint=work / "pilot.ckpt",
        log_csv=work / "pilot.csv",
        device=device,
        progress=False,
    )
    step = _step_seconds(_log_seconds(work / "pilot.csv"))
    cap = min(profile.max_iterations, int(base["iterations"]))  # at most the config's run
    iterations = int(min(max(seconds / step, profile.min_iterations), cap))
    info.update(
        pilot_iterations=profile.pilot,
        pilot_wall=time.perf_counter() - t0,
        step_seconds=step,
        iterations=iterations,
    )
    print(
        f"== train: pilot step {step:.4f} s -> {iterations} iterations in ~{seconds:.0f} s",
        flush=True,
    )

    run = {**base, "iterations": iterations, "checkpoint_every": iterations}
    info["train_config"] = run
    write_json(out / "train.json", info)  # what is known so far survives a timeout
    t0 = time.perf_counter()
    model = train(
        build(),
        samples,
        run,
        out_model=work / "model.pt",
        checkpoint=work / "checkpoint.ckpt",
        log_csv=out / "loss.csv",
        device=device,
        progress=False,
    )
    log = _log_seconds(out / "loss.csv")
    tail = [loss for _, loss, _ in log[-10:]]
    info.update(
        train_wall=time.perf_counter() - t0,
        train_seconds=log[-1][2],
        final_loss=float(np.mean(tail)),
        first_loss=log[0][1],
    )
    write_json(out / "train.json", info)

    images = np.stack([normalize(i) for i in data["images"][data["test"]]])
    stride = tile_stride(pcfg["tile_size"], int(model_cfg["depth"]))
    per_image = math.ceil(images.shape[1] / stride) * math.ceil(images.shape[2] / stride)
    info["predict_tiles"] = len(images) * len(pcfg["transforms"]) * per_image
    info["predict_tflop"] = (
        info["predict_tiles"] * forward_flops(model_cfg, pcfg["tile_size"]) / 1e12
    )
    info["predictions"] = {}
    variants = [("fp32" if not pcfg["amp"] else "bf16", pcfg["amp"])]
    if device.type == "cuda":
        variants.append(("bf16" if not pcfg["amp"] else "fp32", not pcfg["amp"]))
    for label, amp in variants:
        sync(device)
        t0 = time.perf_counter()
        probs = predict_volume(
            model,
            images,
            pcfg["tile_size"],
            pcfg["transforms"],
            pcfg["batch_size"],
            device,
            amp=amp,
            channels_last=pcfg["channels_last"],
        )
        sync(device)
        np.save(work / f"probs_{label}.npy", probs)
        info["predictions"][label] = {
            "file": f"probs_{label}.npy",
            "seconds": time.perf_counter() - t0,
            "batch_size": pcfg["batch_size"],
        }
        write_json(out / "train.json", info)
    if len(variants) == 2:
        a, b = (np.load(work / f"probs_{label}.npy") for label, _ in variants)
        info["bf16_max_abs_diff"] = float(np.abs(a - b).max())
        write_json(out / "train.json", info)
    return info


def _step_seconds(log: Sequence[tuple[int, float, float]]) -> float:
    """Seconds per iteration over the second half of a loss log (one row per iteration)."""
    half = len(log) // 2
    if half == 0:  # one row
        return log[-1][2] / max(log[-1][0], 1)
    return (log[-1][2] - log[half - 1][2]) / (log[-1][0] - log[half - 1][0])


def determinism_part(
    data_dir: Path,
    out: Path,
    work: Path,
    profile: Profile = PAPER,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train twice per ``deterministic`` mode; bit-identical or not, and the step times.

    ``out/determinism.json``: per mode, ``identical`` (every weight and every logged loss
    equal between the two runs), the largest weight difference and each run's step time.
    """
    device = device_and_flags()
    cfg = load_config()
    model_cfg = model_settings(cfg, profile)
    if workers is None:
        workers = int((cfg.get("train") or {}).get("workers", 0))
    n = profile.repeat_iterations
    base = train_settings(cfg, profile, workers=workers, iterations=n, log_every=1)
    base["checkpoint_every"] = n
    samples = training_samples(load_data(data_dir))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"device": str(device), "iterations": n, "modes": {}}
    for mode in (True, False):  # deterministic first: cuBLAS's workspace is set before use
        runs = []
        for k in (1, 2):
            stem = work / f"repeat_{'det' if mode else 'fast'}_{k}"
            for suffix in (".pt", ".ckpt", ".prev.ckpt", ".csv"):  # a fresh start
                stem.with_suffix(suffix).unlink(missing_ok=True)
            model = train(
                UNet(**model_cfg, seed=int(base["seed"])),
                samples,
                {**base, "deterministic": mode},
                out_model=stem.with_suffix(".pt"),
                checkpoint=stem.with_suffix(".ckpt"),
                log_csv=stem.with_suffix(".csv"),
                device=device,
                progress=False,
            )
            log = _log_seconds(stem.with_suffix(".csv"))
            state = {k2: v.detach().cpu().clone() for k2, v in model.state_dict().items()}
            runs.append((state, [loss for _, loss, _ in log], _step_seconds(log)))
        (w1, l1, t1), (w2, l2, t2) = runs
        diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1 if w1[k].is_floating_point())
        result["modes"]["true" if mode else "false"] = {
            "identical": bool(l1 == l2 and all(torch.equal(w1[k], w2[k]) for k in w1)),
            "max_abs_weight_diff": diff,
            "losses_equal": l1 == l2,
            "step_seconds": [t1, t2],
        }
        print(f"  deterministic {mode}: {result['modes']['true' if mode else 'false']}", flush=True)
        write_json(out / "determinism.json", result)
    return result


def score_part(data_dir: Path, out: Path, work: Path, radius: int = 20) -> dict[str, Any]:
    """Table-1 metrics of the held-out predictions; ``out/score.json``."""
    from unet_repro.metrics.isbi import isbi_scores

    data = load_data(data_dir)
    gt = data["labels"][data["test"]] > 0
    info = json.loads((out / "train.json").read_text())
    result: dict[str, Any] = {}
    for label, pred in info.get("predictions", {}).items():
        t0 = time.perf_counter()
        scores = isbi_scores(gt, np.load(work / pred["file"]), radius=radius)
        result[label] = {"seconds": time.perf_counter() - t0}
        for m in METRICS:
            result[label][m] = scores[m].best
            result[label][f"{m}_threshold"] = scores[m].best_threshold
        print(f"  {label}: " + ", ".join(f"{m} {scores[m].best:.5g}" for m in METRICS), flush=True)
        write_json(out / "score.json", result)
    return result


# --------------------------------------------------------------------------------------------
# (c) report
# --------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def report(out: Path, failed: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Merge the parts' outputs into ``device_check.csv`` and ``device_check.md``."""
    rows = read_rows(out / "bench.csv")
    cuda = torch.cuda.is_available()
    info = json.loads((out / "train.json").read_text()) if (out / "train.json").is_file() else {}
    if info:
        model_cfg, run = info["model"], info.get("train_config", {})
        fwd = forward_flops(model_cfg, int(run.get("input_size", 572))) / 1e12
        amp = bool(run.get("amp"))
        peak = (PEAK_BF16 if amp else PEAK_TF32) if info["device"] == "cuda" else math.nan
        setting = (
            f"base {model_cfg['base_channels']}, {run.get('input_size')} tile, "
            f"{run.get('optimizer')} lr {run.get('lr')} momentum {run.get('momentum')}, "
            f"{'bf16' if amp else 'fp32'}, {info['workers']} workers"
        )
        rows.append(
            make_row(
                "b",
                "pilot: train() step",
                setting,
                info["step_seconds"],
                3 * fwd,
                peak,
                note=f"{info['pilot_iterations']} iterations, 2nd half; data loading included",
            )
        )
        if "train_seconds" in info:
            schedule = run.get("schedule")
            if schedule == "poly":
                schedule = f"poly^{run.get('poly_power')} over the {run['iterations']} iterations"
            rows.append(
                make_row(
                    "b",
                    f"train slices {_span(info['train_slices'])}",
                    setting,
                    info["train_seconds"],
                    3 * fwd * run["iterations"],
                    peak,
                    value=run["iterations"],
                    note=f"value = iterations; schedule {schedule}; weighted CE"
                    f" {info['first_loss']:.3g} -> {info['final_loss']:.3g}"
                    " (mean of the last 10 logged)",
                )
            )
        elif (out / "loss.csv").is_file() and "iterations" in run:
            log = _log_seconds(out / "loss.csv")
            if log:  # the training run did not finish (timeout): what it logged
                rows.append(
                    make_row(
                        "b",
                        f"train slices {_span(info['train_slices'])} (unfinished)",
                        setting,
                        log[-1][2],
                        3 * fwd * log[-1][0],
                        peak,
                        value=log[-1][0],
                        note=f"value = iterations done of {run['iterations']}; weighted CE"
                        f" {log[0][1]:.3g} -> {log[-1][1]:.3g}",
                    )
                )
        for label, pred in info.get("predictions", {}).items():
            bf16 = label == "bf16"
            rows.append(
                make_row(
                    "b",
                    f"predict slices {_span(info['test_slices'])}",
                    f"{label}, batch {pred['batch_size']}, {info['predict_tiles']} tiles",
                    pred["seconds"],
                    info["predict_tflop"],
                    (PEAK_BF16 if bf16 else PEAK_TF32) if info["device"] == "cuda" else math.nan,
                    note=f"max |P(bf16) - P(fp32)| = {info['bf16_max_abs_diff']:.2e}"
                    if "bf16_max_abs_diff" in info and bf16
                    else "",
                )
            )
    det_path = out / "determinism.json"
    det = json.loads(det_path.read_text()) if det_path.is_file() else {}
    if det:
        model_cfg = info.get("model") or model_settings(load_config(), PAPER)
        tile = int((info.get("train_config") or {}).get("input_size", 572))
        fwd = forward_flops(model_cfg, tile) / 1e12
        peak = PEAK_TF32 if det["device"] == "cuda" else math.nan
    for mode, res in det.get("modes", {}).items():
        for k, step in enumerate(res["step_seconds"], start=1):
            rows.append(
                make_row(
                    "d",
                    f"repeat: train() twice, run {k}",
                    f"deterministic {mode}, {det['iterations']} iterations",
                    step,
                    3 * fwd,
                    peak,
                    value=1.0 if res["identical"] else 0.0,
                    note=f"value 1 = the two runs bit-identical (weights and losses); max |w1 - w2|"
                    f" = {res['max_abs_weight_diff']:.3g}; seconds = per step",
                )
            )
    scores_path = out / "score.json"
    scores = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    for label, result in scores.items():
        for m in METRICS:
            rows.append(
                make_row(
                    "b",
                    m.replace("_", " "),
                    f"slices {_span(info.get('test_slices', []))}, {label} prediction",
                    value=result[m],
                    note=f"best threshold {result[f'{m}_threshold']:.2f}; "
                    f"paper Table 1 (challenge test set): {PAPER_TABLE1[m]}",
                )
            )
    for part in failed:
        rows.append(make_row("-", "part failed or timed out", part, note="see device_check.log"))

    with open(out / "device_check.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    env = (
        f"torch {torch.__version__}, "
        + (
            f"{torch.cuda.get_device_name()}, CUDA {torch.version.cuda}, cuDNN "
            f"{torch.backends.cudnn.version()}, cudnn.allow_tf32 "
            f"{torch.backends.cudnn.allow_tf32}"
            if cuda
            else f"CPU ({os.cpu_count()} cores)"
        )
        + f", Python {platform.python_version()}"
    )
    lines = [
        "# Device check (issue 9)",
        "",
        env + ".",
        f"Peak reference: bf16 {PEAK_BF16:g} TFLOP/s (measured dense bf16 matrix product on the "
        f"lent H200), TF32 {PEAK_TF32:g} (half of it); FLOPs count convolutions, a training step "
        "3 forward passes.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    (out / "device_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return rows


def _span(indices: Sequence[int]) -> str:
    indices = list(indices)
    if indices and indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ",".join(map(str, indices))


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def smoke(out: Path, profile: Profile = SMOKE, seconds: float = 2.0) -> list[dict[str, Any]]:
    """Every part in one process at tiny sizes, on synthetic data."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    data = work / "data"
    synth(data, profile)
    bench(data, out, profile)
    train_part(data, out, work, profile, seconds=seconds, workers=0)
    score_part(data, out, work)
    determinism_part(data, out, work, profile, workers=0)
    return report(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "part",
        choices=["pack", "synth", "bench", "train", "score", "determinism", "report", "smoke"],
    )
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="pack: workflow results"
    )
    parser.add_argument("--split", default="fold4", help="pack: the ISBI split")
    parser.add_argument("--data", type=Path, default=Path("device_data"), help="packed data folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default $OUT, else device_out); pack: the data folder to write",
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="intermediate files (default OUT/work)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CPU)")
    parser.add_argument("--seconds", type=float, default=None, help="train: time budget")
    parser.add_argument("--workers", type=int, default=None, help="train: data-loader workers")
    parser.add_argument("--failed", nargs="*", default=[], help="report: parts that failed")
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else PAPER
    if args.part == "pack":
        pack(args.results, args.out or args.data, args.split)
        return
    args.out = args.out or Path(os.environ.get("OUT") or "device_out")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out / "work"
    if args.part == "synth":
        synth(args.data, profile)
    elif args.part == "bench":
        bench(args.data, args.out, profile)
    elif args.part == "train":
        seconds = args.seconds if args.seconds is not None else (3.0 if args.smoke else 180.0)
        train_part(args.data, args.out, work, profile, seconds, args.workers)
    elif args.part == "score":
        score_part(args.data, args.out, work)
    elif args.part == "determinism":
        determinism_part(args.data, args.out, work, profile, args.workers)
    elif args.part == "report":
        report(args.out, args.failed)
    else:
        smoke(args.out, profile, seconds=args.seconds or 2.0)


if __name__ == "__main__":
    sys.exit(main())
