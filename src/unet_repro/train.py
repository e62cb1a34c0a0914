"""Training as in section 3 of the paper, resumable.

"The input images and their corresponding segmentation maps are used to train the network with
the stochastic gradient descent implementation of Caffe. [...] we favor large input tiles over a
large batch size and hence reduce the batch to a single image. Accordingly we use a high
momentum (0.99) [...]. The energy function is computed by a pixel-wise soft-max over the final
feature map combined with the cross entropy loss function", weighted by a precomputed map
``w(x)`` (eq. 1-2).

So one iteration = one randomly placed, augmented tile (:func:`unet_repro.augment.sample_tile`),
SGD with momentum 0.99, loss = ``mean_x w(x) * -log p_{l(x)}(x)`` over the output tile.

Reproducibility and resuming
----------------------------
Every random draw follows the seed. The initial weights come from a generator seeded from the
seed alone (``UNet(seed=...)``, :func:`unet_repro.model.init_generator`), never from torch's
global generator, which torch seeds randomly in every new process. The tile of iteration ``i``
is drawn from ``numpy.random.default_rng([seed, i])``: it is a pure function of ``(seed, i)``,
independent of what ran before, of restarts and of data-loader worker processes. The only other
randomness (dropout) uses torch's global generator, seeded from the seed when training starts
and saved in the checkpoint together with the model, the optimizer (momentum buffers), the
Python and numpy global generator states, the logged-loss accumulator and the elapsed time. The
learning rate is a function of the iteration (:func:`learning_rate`), so there is no scheduler
state. A run that is killed and resumed from its last checkpoint therefore ends with exactly the
same weights, on the same device and software, as an uninterrupted run.

On the CPU, two runs with one seed and one torch thread count are bit-identical; a different
thread count changes the order of floating-point sums inside the convolutions, and with it the
last bits from the second iteration on. The model file records the thread count (and the rest
of :mod:`unet_repro.provenance`). On CUDA, ``deterministic`` (default true) selects
deterministic algorithms (``torch.use_deterministic_algorithms``, warning rather than failing
for an operation that has none), ``cudnn.deterministic`` without autotuning, and cuBLAS's
fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, unless set already); ``false`` autotunes
the kernels instead (``cudnn.benchmark``), faster, not bit-identical between runs.

Every file is written atomically (temporary file in the same folder, then ``os.replace``), so a
kill never leaves a truncated checkpoint or model. A file can still be damaged later (a full
disk, an interrupted copy): the checkpoint a new one replaces is kept beside it
(:func:`previous_checkpoint`), and resuming reads the newest of the two that loads
(:func:`load_checkpoint`).

GPU and CPU efficiency
----------------------
None of these settings changes the loss, the tiles or the update rule. ``amp`` runs the
forward pass under bfloat16 autocast (convolutions with bfloat16 operands and float32
accumulation, about 3 significant digits per operand; the loss, the weights, the gradients'
accumulation and the optimizer stay float32); ``channels_last`` stores the model and its input
in the NHWC layout native to cuDNN's tensor-core and oneDNN's bfloat16 kernels. Both take
``true``, ``false`` or ``"auto"`` (:mod:`unet_repro.precision`): ``"auto"`` turns bfloat16 on
where the hardware computes it natively (CUDA GPUs; CPUs with AMX-BF16 or AVX512-BF16, where
with NHWC a base-16 step ran 2.1x and a base-32 step 2.9x faster than float32 on an Intel
Xeon with AMX, docs/cpu-configuration.md) and
NHWC on CUDA and with CPU bfloat16; float32 NCHW elsewhere, so a CPU without those
instructions keeps the default path. On CUDA, tiles are prepared by ``workers`` data-loader
processes (each ``prefetch_factor`` tiles ahead, persistent), in page-locked memory and copied
asynchronously; with ``deterministic: false`` cuDNN autotunes its kernels for the fixed tile
size (``cudnn.benchmark``). PyTorch's default ``torch.backends.cudnn.allow_tf32 = True``
already runs float32 convolutions on TF32 tensor cores. Results are not bit-identical across
these settings (rounding and kernel choice change); on one machine each repeats itself, and
resuming with different values is allowed.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .augment import check_aug, sample_tile
from .config import merge_settings
from .datasets import parse_indices
from .io import DataError, atomic_path, read_npz, read_tiff
from .model import UNet, output_size
from .precision import describe as describe_precision
from .precision import resolve as resolve_precision
from .provenance import record

__all__ = [
    "DEFAULT_TRAIN",
    "TileStream",
    "check_train_config",
    "configure_cuda",
    "learning_rate",
    "load_checkpoint",
    "load_samples",
    "make_optimizer",
    "load_model",
    "normalize",
    "plot_loss",
    "previous_checkpoint",
    "save_atomic",
    "train",
    "weighted_cross_entropy",
]

log = logging.getLogger(__name__)

#: Default training settings. The paper gives batch 1 (one large tile) and momentum 0.99 only;
#: learning rate, iterations, schedule and weight decay are this reproduction's choices.
DEFAULT_TRAIN: dict[str, Any] = {
    "iterations": 20000,  # one tile each
    "input_size": 572,  # paper's Fig. 1 tile (output 388)
    "lr": 0.002,
    "momentum": 0.99,  # paper
    "optimizer": "sgd",  # paper; "adam" (beta1 = 0.9, beta2 = 0.999) learns faster on a CPU budget
    "weight_decay": 0.0,
    "schedule": "constant",  # "constant" | "poly" | "step"
    "poly_power": 0.9,  # poly: lr * (1 - (i - 1) / iterations) ** power
    "step_every": 10000,  # step: lr * step_gamma ** ((i - 1) // step_every)
    "step_gamma": 0.1,
    "seed": 0,
    "checkpoint_every": 500,
    "log_every": 10,  # CSV row = mean loss over the last log_every iterations
    "amp": False,  # bfloat16 autocast: true, false or "auto" (unet_repro.precision)
    "channels_last": "auto",  # NHWC model and inputs: true, false or "auto" (CUDA, CPU bf16)
    "deterministic": True,  # CUDA only: deterministic kernels, no autotuning (bit-identical runs)
    "workers": 0,  # data-loader worker processes for tile sampling (0: in the main process)
    "prefetch_factor": 4,  # tiles each worker prepares ahead (workers > 0 only)
    "augment": {},  # merged into unet_repro.augment.DEFAULT_AUG
}

SCHEDULES = ("constant", "poly", "step")
OPTIMIZERS = ("sgd", "adam")
CSV_HEADER = ("iteration", "loss", "lr", "seconds")
#: Settings that may differ between a checkpoint and the run that resumes it (``iterations``
#: only within :func:`_resume_iterations_problem`'s limits).
RESUME_MAY_CHANGE = (
    "iterations",
    "checkpoint_every",
    "log_every",
    "workers",
    "prefetch_factor",
    "amp",
    "channels_last",
    "deterministic",
)


def _resume_iterations_problem(state: Mapping[str, Any], cfg: Mapping[str, Any]) -> str:
    """Why a checkpoint cannot continue to ``cfg["iterations"]`` (empty when it can).

    A checkpoint may be resumed with another ``iterations`` (to train longer) only where the
    result equals a fresh run of that length: its iteration is not past the new end, and the
    learning rate does not depend on the length (``poly`` decays to 0 at ``iterations``).
    """
    done, old, new = (
        int(state["iteration"]),
        int(state["train_config"]["iterations"]),
        int(cfg["iterations"]),
    )
    if done > new:
        return f"it has trained {done} iterations, more than the {new} asked for"
    if new != old and cfg["schedule"] == "poly":
        return (
            f"it was written by a run of {old} iterations and the poly schedule's learning "
            f"rate depends on the length ({new} asked for)"
        )
    return ""


def check_train_config(cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``cfg`` into :data:`DEFAULT_TRAIN` and validate it (ValueError on problems)."""
    out = merge_settings(DEFAULT_TRAIN, cfg, "training")
    out["augment"] = check_aug(out["augment"])
    if out["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {out['optimizer']!r}; valid: {', '.join(OPTIMIZERS)}")
    if out["schedule"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {out['schedule']!r}; valid: {', '.join(SCHEDULES)}")
    for key in ("iterations", "checkpoint_every", "log_every", "step_every", "prefetch_factor"):
        if int(out[key]) < 1:
            raise ValueError(f"{key} must be >= 1, got {out[key]}")
    if out["lr"] <= 0 or not 0 <= out["momentum"] < 1 or out["weight_decay"] < 0:
        raise ValueError("need lr > 0, 0 <= momentum < 1 and weight_decay >= 0")
    return out


def normalize(image: np.ndarray) -> np.ndarray:
    """Per-image standardisation: zero mean, unit standard deviation, float32.

    Works for any input dtype and makes the grey-value augmentation's ranges comparable between
    data sets. A constant image becomes all zeros.
    """
    x = np.asarray(image, dtype=np.float64)
    std = x.std()
    return ((x - x.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def load_samples(
    prepared, weights, targets, indices=None, frames=None
) -> list[tuple[np.ndarray, ...]]:
    """(image, target, weights) training triples of one prepared sequence, images normalised.

    ``prepared``: the workflow's ``.npz`` (images, and for CTC data the annotated ``frames``);
    ``weights``, ``targets``: its weight-map and target TIFFs (one page per training image);
    ``frames``: the frame of each page (the weights rule's CSV, :func:`read_frames`; default:
    the annotated ``frames``, or every image); ``indices``: an index list like ``"0-24"``
    choosing among the pages (all if None).
    """
    data = read_npz(prepared)
    w, t = read_tiff(weights), read_tiff(targets)
    w, t = (w[None], t[None]) if w.ndim == 2 else (w, t)
    if frames is None:
        frames = data["frames"] if "frames" in data else np.arange(len(data["images"]))
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) != len(w) or len(w) != len(t):
        raise DataError(
            f"{weights}: {len(w)} weight pages, {len(t)} target pages, {len(frames)} frames"
            " for them: they must agree"
        )
    images = data["images"][frames]
    picks = range(len(images)) if indices is None else parse_indices(indices, len(images))
    return [(normalize(images[i]), t[i], w[i]) for i in picks]


def load_composites(path) -> list[tuple[np.ndarray, ...]]:
    """(image, target, weights) training triples of the composites at ``path``, normalised.

    ``path``: the paste rule's ``.npz`` (``images``, ``targets``, ``weights``; frames with
    pasted touching cells, :mod:`unet_repro.paste`).
    """
    data = read_npz(path)
    missing = {"images", "targets", "weights"} - set(data)
    if missing:
        raise DataError(f"{path}: lacks {sorted(missing)} (not a composites file)")
    images, targets, weights = data["images"], data["targets"], data["weights"]
    if not images.shape == targets.shape == weights.shape or images.ndim != 3:
        raise DataError(
            f"{path}: images {images.shape}, targets {targets.shape} and weights"
            f" {weights.shape} must be equal stacks"
        )
    return [(normalize(x), y, w) for x, y, w in zip(images, targets, weights, strict=True)]


def learning_rate(cfg: Mapping[str, Any], iteration: int) -> float:
    """Learning rate of iteration ``iteration`` (1-based) under ``cfg["schedule"]``."""
    lr, i = float(cfg["lr"]), int(iteration) - 1
    if cfg["schedule"] == "poly":
        return lr * (1.0 - i / int(cfg["iterations"])) ** float(cfg["poly_power"])
    if cfg["schedule"] == "step":
        return lr * float(cfg["step_gamma"]) ** (i // int(cfg["step_every"]))
    return lr


def make_optimizer(model: torch.nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The paper's SGD with momentum, or Adam (``cfg["optimizer"]``)."""
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Eq. (1): ``E = -mean_x w(x) log p_{l(x)}(x)``, p = pixel-wise soft-max of the logits.

    Parameters
    ----------
    logits : (B, K, H, W) float
    target : (B, H, W) integer class labels l(x)
    weights : (B, H, W) float weight map w(x)

    Returns
    -------
    Scalar tensor: the mean over all B*H*W pixels (the paper writes a sum; the mean only rescales
    the learning rate and keeps it independent of the tile size).
    """
    if logits.shape[-2:] != target.shape[-2:] or target.shape != weights.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, target {tuple(target.shape)} and weights "
            f"{tuple(weights.shape)} do not match"
        )
    ce = F.cross_entropy(logits.float(), target.long(), reduction="none")
    return (weights.float() * ce).mean()


class TileStream(Dataset):
    """Training tiles by iteration: item ``i`` is the augmented tile of iteration ``i``.

    The random sample index, tile position and augmentation come from
    ``numpy.random.default_rng([seed, i])``, so item ``i`` does not depend on other items.
    """

    def __init__(
        self,
        samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
        input_size: int,
        output_size: int,
        aug: Mapping[str, Any] | None,
        seed: int,
        length: int,
    ) -> None:
        self.samples, self.aug, self.seed, self.length = samples, check_aug(aug), seed, length
        self.input_size, self.output_size = input_size, output_size

    def __len__(self) -> int:
        return self.length  # items are the iterations 1 .. length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(i)])
        image, target, weights = self.samples[int(rng.integers(len(self.samples)))]
        x, y, w = sample_tile(
            image, target, weights, rng, self.input_size, self.output_size, self.aug
        )
        return torch.from_numpy(x)[None], torch.from_numpy(y), torch.from_numpy(w)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def save_atomic(obj: Any, path: Path, previous: Path | None = None) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename it into place.

    If anything fails the temporary file is removed and ``path`` keeps its old content. With
    ``previous``, the file that ``path`` held is renamed to ``previous`` once the new content
    is on disk (so a failed write leaves both as they were).
    """
    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
        if previous is not None and Path(path).exists():
            os.replace(path, previous)


#: What a checkpoint of :func:`train` holds.
CHECKPOINT_KEYS = ("model", "optimizer", "iteration", "seconds", "log", "rng", "train_config")


def previous_checkpoint(checkpoint: Path) -> Path:
    """Where the checkpoint before ``checkpoint`` is kept (``c.pt`` -> ``c.prev.pt``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.prev{checkpoint.suffix}")


def load_checkpoint(
    checkpoint: Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint: ``checkpoint``, else :func:`previous_checkpoint`.

    Returns ``(state, file)``, or None when neither file exists (a fresh start). A file that
    does not load, or is not a checkpoint of :func:`train`, is logged and the older one is
    tried; when the older one is used, the unreadable newer file is removed (else the next
    checkpoint would rename it over the good one). Raises :class:`~unet_repro.io.DataError`
    naming every file and its error when none loads.
    """
    checkpoint = Path(checkpoint)
    files = [p for p in (checkpoint, previous_checkpoint(checkpoint)) if p.exists()]
    failures = []
    for path in files:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
            if not isinstance(state, dict) or not set(CHECKPOINT_KEYS) <= state.keys():
                raise ValueError(f"not a training checkpoint (needs {', '.join(CHECKPOINT_KEYS)})")
        except Exception as err:  # torch.load raises OSError, RuntimeError, EOFError, ...
            error = f"{type(err).__name__}: {err}".rstrip(": ")
            failures.append(f"{path} ({path.stat().st_size} bytes): {error}")
            log.warning("checkpoint %s does not load (%s)", path, error)
            continue
        for broken in files[: len(failures)]:
            broken.unlink()
            log.warning("removed the unreadable checkpoint %s", broken)
        log.info(
            "resuming from %s%s (iteration %d)",
            "the previous checkpoint " if path != checkpoint else "",
            path,
            state["iteration"],
        )
        return state, path
    if not failures:
        return None
    they, them = ("They are", "them") if len(files) > 1 else ("It is", "it")
    raise DataError(
        "cannot resume the training: no checkpoint loads\n  "
        + "\n  ".join(failures)
        + f"\n  {they} truncated or corrupt (e.g. a full disk, an interrupted copy). Delete "
        f"{them} to restart this training from iteration 0: rm {' '.join(map(str, files))}"
    )


def _write_csv_atomic(path: Path, rows: list[list[str]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([list(CSV_HEADER), *rows])


def _truncate_log(path: Path, iteration: int) -> list[list[str]]:
    """Keep the CSV rows up to ``iteration`` (rows after the checkpoint are redone on resume);
    returns them."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= iteration]
    _write_csv_atomic(path, rows)
    return rows


def load_model(path: Path, map_location: str | torch.device = "cpu") -> UNet:
    """Rebuild the :class:`~unet_repro.model.UNet` written by :func:`train` (in eval mode).

    Its ``provenance`` attribute holds the record the training wrote (see :func:`train`).
    """
    state = torch.load(path, map_location=map_location, weights_only=True)
    model = UNet(**state["model_config"])
    model.load_state_dict(state["state_dict"])
    model.provenance = state.get("provenance")  # None for models written before it existed
    return model.eval()


# --------------------------------------------------------------------------------------------
# random generator states
# --------------------------------------------------------------------------------------------


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global state other code may use
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))
    return {
        "python": random.getstate(),
        "numpy": np_state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np_state = dict(state["numpy"])
    np_state["state"] = dict(np_state["state"])
    np_state["state"]["key"] = np_state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(np_state)  # noqa: NPY002
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------


def configure_cuda(deterministic: bool) -> None:
    """CUDA kernels: deterministic (bit-identical runs) or autotuned (faster, not repeatable).

    ``True``: ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an operation
    without a deterministic implementation warns instead of failing), ``cudnn.deterministic``
    and no autotuning, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS's fixed workspace; it
    must be set before the first cuBLAS call of the process, so an existing value is kept).
    ``False``: cuDNN autotunes its kernels for the (fixed) tile size.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _check_samples(samples, n_classes: int) -> None:
    if len(samples) == 0:
        raise ValueError("no training samples")
    for k, (image, target, weights) in enumerate(samples):
        shapes = {np.shape(image), np.shape(target)} | (
            {np.shape(weights)} if weights is not None else set()
        )
        if len(shapes) != 1 or np.ndim(image) != 2:
            raise ValueError(f"sample {k}: image, target, weights must be 2-D of one shape")
        if np.min(target) < 0 or np.max(target) >= n_classes:
            raise ValueError(f"sample {k}: target values must be in [0, {n_classes - 1}]")


def train(
    model: torch.nn.Module,
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    cfg: Mapping[str, Any] | None,
    *,
    out_model: Path,
    checkpoint: Path,
    log_csv: Path,
    device: str | torch.device | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    variant: str = "full",
) -> torch.nn.Module:
    """Train ``model`` on random tiles of ``samples``; resume from ``checkpoint`` if it exists.

    Parameters
    ----------
    model : UNet
        Freshly initialised network (its weights are replaced when resuming).
    samples : sequence of (image, target, weights)
        ``image`` float (H, W), normalised (see :func:`normalize`); ``target`` integer (H, W)
        class labels; ``weights`` float (H, W) loss weight map w(x) or None (all ones).
    cfg : mapping
        Settings merged into :data:`DEFAULT_TRAIN`.
    out_model : Path
        Final ``{"state_dict", "model_config", "train_config", "iterations", "provenance"}``,
        written atomically at the end (see :func:`load_model`); ``provenance`` is the seed and
        :func:`unet_repro.provenance.record` of this run (device, thread count, versions,
        commit, configuration digest), without times, so a repeated run writes the same bytes.
    checkpoint : Path
        Written atomically every ``checkpoint_every`` iterations and at the end; the one it
        replaces is kept as :func:`previous_checkpoint`, and resuming falls back to it when
        ``checkpoint`` does not load (:func:`load_checkpoint`).
    log_csv : Path
        ``iteration,loss,lr,seconds`` rows, one per ``log_every`` iterations (mean loss of those
        iterations, learning rate of the last one, training seconds so far).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    progress : bool
        Show a tqdm progress bar on stderr.
    stop_after : int, optional
        Return after this many iterations of this call without writing ``out_model`` (simulates
        a kill, for tests).
    variant : str
        The configuration variant (``"full"`` or an ablation's name) whose configuration digest
        the provenance records.

    Returns
    -------
    The trained model (on ``device``, in train mode).
    """
    cfg = check_train_config(cfg)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    checkpoint, log_csv, out_model = Path(checkpoint), Path(log_csv), Path(out_model)
    n_iter, in_size = int(cfg["iterations"]), int(cfg["input_size"])
    out_size = output_size(in_size, model.depth)
    _check_samples(samples, model.config["n_classes"])
    cuda = device.type == "cuda"
    # bfloat16 autocast and NHWC where the settings (and, for "auto", the hardware) say so:
    # cuDNN's tensor cores and oneDNN's AMX / AVX512-BF16 kernels (unet_repro.precision)
    amp, nhwc = resolve_precision(cfg["amp"], cfg["channels_last"], device)
    memory_format = torch.channels_last if nhwc else None
    if cuda:
        configure_cuda(bool(cfg["deterministic"]))
    model.to(device)
    if memory_format is not None:
        model.to(memory_format=memory_format)
    opt = make_optimizer(model, cfg)

    loaded = load_checkpoint(checkpoint, device)
    if loaded is not None:
        state, resumed = loaded
        changed = sorted(
            k for k in cfg if k not in RESUME_MAY_CHANGE and cfg[k] != state["train_config"][k]
        )
        if changed:
            raise ValueError(
                f"cannot resume {resumed}: settings {changed} differ from it (it is another"
                f" training's). Delete the checkpoints to train from iteration 0: rm -f"
                f" {checkpoint} {previous_checkpoint(checkpoint)}"
            )
        stale = _resume_iterations_problem(state, cfg)
        if stale:
            raise ValueError(
                f"cannot resume {resumed}: {stale}. Delete the checkpoints to train from "
                f"iteration 0: rm -f {checkpoint} {previous_checkpoint(checkpoint)}"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, elapsed, (loss_sum, loss_n) = state["iteration"], state["seconds"], state["log"]
        _set_rng_state(state["rng"])
        rows = state.get("loss_rows")
        if rows is None:  # a checkpoint written before it kept the rows: the CSV's
            rows = _truncate_log(log_csv, start)
        else:  # the CSV may be gone (Snakemake deletes the outputs of a failed job)
            rows = [list(r) for r in rows]
            _write_csv_atomic(log_csv, rows)
    else:
        start, elapsed, loss_sum, loss_n = 0, 0.0, 0.0, 0
        _seed_all(cfg["seed"])
        rows = []
        _write_csv_atomic(log_csv, rows)
    loss_sum = torch.tensor(loss_sum, dtype=torch.float64, device=device)

    tiles = TileStream(samples, in_size, out_size, cfg["augment"], cfg["seed"], n_iter)
    workers = int(cfg["workers"])
    loader = DataLoader(
        tiles,
        sampler=range(start + 1, n_iter + 1),
        batch_size=None,
        num_workers=workers,
        pin_memory=cuda,  # page-locked tiles: the non_blocking copies below are asynchronous
        generator=torch.Generator(),  # keeps the global torch generator (dropout) untouched
        # workers > 0: keep prefetch_factor tiles per worker ready; persistent workers survive
        # a re-iteration of the loader instead of being re-spawned
        **(
            {"prefetch_factor": int(cfg["prefetch_factor"]), "persistent_workers": True}
            if workers > 0
            else {}
        ),
    )
    bar = tqdm(total=n_iter, initial=start, disable=not progress, file=sys.stderr, unit="it")
    t0 = time.perf_counter() - elapsed
    model.train()
    for it, (x, y, w) in enumerate(loader, start=start + 1):
        lr = learning_rate(cfg, it)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y, w = (t[None].to(device, non_blocking=True) for t in (x, y, w))
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = weighted_cross_entropy(logits, y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        loss_n += 1
        bar.update()

        if it % cfg["log_every"] == 0 or it == n_iter:
            mean = loss_sum.item() / loss_n
            if not math.isfinite(mean):
                raise FloatingPointError(f"training diverged: loss {mean} at iteration {it}")
            rows.append([str(it), repr(mean), repr(lr), f"{time.perf_counter() - t0:.3f}"])
            with open(log_csv, "a", newline="") as f:
                csv.writer(f).writerow(rows[-1])
            bar.set_postfix(loss=f"{mean:.4f}")
            loss_sum.zero_()
            loss_n = 0
        if it % cfg["checkpoint_every"] == 0 or it == n_iter:
            save_atomic(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "iteration": it,
                    "seconds": time.perf_counter() - t0,
                    "log": (loss_sum.item(), loss_n),
                    "loss_rows": list(rows),  # the CSV up to here, rebuilt from it on resume
                    "rng": _rng_state(),
                    "train_config": cfg,
                },
                checkpoint,
                previous=previous_checkpoint(checkpoint),
            )
        if stop_after is not None and it - start >= stop_after:
            bar.close()
            return model
    bar.close()
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_atomic(
        {
            "state_dict": state_dict,
            "model_config": dict(getattr(model, "config", {})),
            "train_config": cfg,
            "iterations": n_iter,
            "provenance": {
                "seed": int(cfg["seed"]),
                **record(variant, device, torch.get_num_threads()),
                "precision": describe_precision(amp, nhwc),
            },
        },
        out_model,
    )
    return model


def plot_loss(log_csv: Path, out_png: Path, smooth: int = 20) -> None:
    """Plot the training-loss CSV of :func:`train` (log scale, with a moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{log_csv} has no loss rows")
    it = np.array([int(r["iteration"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    ax.plot(it, loss, lw=0.6, alpha=0.5, label="loss (mean per log interval)")
    k = min(smooth, len(loss))
    if k > 1:
        avg = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(it[k - 1 :], avg, lw=1.5, label=f"moving average ({k})")
    ax.set(xlabel="iteration", ylabel="weighted cross-entropy", yscale="log")
    ax.legend(frameon=False)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
