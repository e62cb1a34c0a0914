"""Before training on a CPU that nobody asked for: how long it would take, and a stop if too long.

With ``device: auto`` a machine without CUDA trains on its CPU. At the paper's scale (31 M
parameters, 572 x 572 tiles, 20000 iterations) that is about 6.3 s per iteration on 2 cores, 35
hours per model, and the paper configuration trains 27 models. So before a training whose
device was not set explicitly, :func:`auto_device_check` times one training step of the network
on this CPU (:func:`time_training_step`) and, when the whole training would take longer than
:data:`CPU_HOURS_LIMIT`, returns a message with the estimate and the choices
(:func:`cpu_training_message`): the CPU configuration, or ``--config device=cpu`` to insist.
An explicit ``device: cpu`` or ``device: cuda`` is never second-guessed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

import torch

#: Longest training (hours) that ``device: auto`` may start on a CPU without being asked.
CPU_HOURS_LIMIT = 12.0


def time_training_step(
    model: torch.nn.Module, input_size: int, repeats: int = 2, fast_enough: float | None = None
) -> float:
    """Seconds of one training step of ``model`` on one ``input_size`` tile, on the CPU.

    A step is the forward pass, the weighted cross-entropy and the backward pass (the
    optimizer's update is a small fraction of it). It runs on a copy of ``model`` under
    :func:`torch.random.fork_rng`, so neither the model nor any random generator changes: the
    training that follows is the same as without the timing. The first step carries one-time
    set-up costs, so up to ``repeats`` steps are timed and the fastest is returned; timing stops
    early once a step took at most ``fast_enough`` seconds.
    """
    from .model import output_size
    from .train import weighted_cross_entropy

    net = copy.deepcopy(model).cpu().train()
    out = output_size(int(input_size), net.depth)
    x = torch.zeros(1, net.config["in_channels"], input_size, input_size)
    y = torch.zeros(1, out, out, dtype=torch.long)
    w = torch.ones(1, out, out)
    best = float("inf")
    with torch.random.fork_rng(devices=[]):
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            weighted_cross_entropy(net(x), y, w).backward()
            best = min(best, time.perf_counter() - t0)
            net.zero_grad(set_to_none=True)
            if fast_enough is not None and best <= fast_enough:
                break
    return best


def format_duration(seconds: float) -> str:
    """``"45 minutes"``, ``"35 hours"``, ``"58 days"``: a duration for people, rounded."""
    minutes = seconds / 60
    if minutes < 90:
        return f"{max(1, round(minutes))} minutes"
    if minutes < 72 * 60:
        return f"{round(minutes / 60)} hours"
    return f"{round(minutes / 1440)} days"


def cpu_training_message(
    iterations: int,
    seconds_per_step: float,
    threads: int,
    limit_hours: float = CPU_HOURS_LIMIT,
) -> str | None:
    """The stop message for a CPU training that would exceed ``limit_hours``, else None."""
    total = int(iterations) * float(seconds_per_step)
    if total <= limit_hours * 3600:
        return None
    return (
        "no GPU here (CUDA is not available) and `device: auto`, so this training would run on "
        f"the CPU: {int(iterations)} iterations x {seconds_per_step:.2g} s per step (timed here, "
        f"{threads} thread{'' if threads == 1 else 's'}) = about {format_duration(total)}, more "
        f"than the {limit_hours:g} hours an unrequested CPU training may take. Stopped before "
        "training. Choose one:\n"
        "  - the CPU configuration (10 to 20 minutes per model on 2 cores): "
        "snakemake --cores 2 --configfile config/quick.yaml\n"
        "  - this configuration on the CPU anyway: add --config device=cpu (about "
        f"{format_duration(total)} for each of its trainings)\n"
        '  - a machine or cluster node with a CUDA GPU (README, "On a cluster")'
    )


def auto_device_check(
    model: torch.nn.Module,
    cfg: Mapping[str, Any],
    cuda_available: bool | None = None,
    limit_hours: float = CPU_HOURS_LIMIT,
) -> str | None:
    """For ``device: auto``: the stop message when the training would be a long CPU run, else None.

    ``cfg`` holds the training settings (``iterations``, ``input_size``; see
    :func:`unet_repro.train.check_train_config`). With CUDA available nothing is timed.
    """
    if torch.cuda.is_available() if cuda_available is None else cuda_available:
        return None
    iterations, size = int(cfg["iterations"]), int(cfg["input_size"])
    # stop timing as soon as one step shows the training fits in the limit
    fast = limit_hours * 3600 / iterations
    step = time_training_step(model, size, fast_enough=fast)
    return cpu_training_message(iterations, step, torch.get_num_threads(), limit_hours)
