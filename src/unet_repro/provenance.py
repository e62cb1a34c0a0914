"""What produced a number: the provenance record written into every model, prediction, scores
file and table.

A record holds only what decides the computed values, never wall-clock times or dates (those
belong in ``logs/``), so a repeated run writes identical files:

``commit``
    The workflow's git commit; ``tree`` says ``"clean"`` or ``"uncommitted changes"``.
``config_digest``
    SHA-256 (first 16 hex digits) of the effective configuration as canonical JSON (sorted
    keys), without the settings that choose where the data come from, how jobs are scheduled
    or which ablation variants exist (:data:`DIGEST_EXCLUDES`): a mirror path, a memory
    request or a new variant changes no number of the full method. The
    workflow computes it when it parses the configuration and hands it to its jobs in the
    environment variable :data:`ENV` (a mapping from the variant, ``"full"`` or an ablation
    variant, to its digest); a script run by hand records ``None``.
``device``, ``threads``
    ``"cpu: <CPU model>"`` or ``"cuda: <GPU name>"``, and torch's intra-op thread count
    (``None`` for steps that run no torch).
``versions``
    python, torch, numpy, scipy and scikit-image (``None`` where not installed).

The seed is recorded beside the record, by the caller.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DIGEST_EXCLUDES",
    "ENV",
    "FIELDS",
    "PACKAGES",
    "THREADS_ENV",
    "config_digest",
    "cpu_model",
    "device_name",
    "flatten",
    "from_prediction",
    "git_state",
    "record",
    "score_provenance",
    "steps_of",
    "versions",
]

#: Environment variable through which the workflow passes its configuration digests to jobs.
ENV = "UNET_REPRO_CONFIG_DIGESTS"
#: Environment variable holding the training thread count the configuration asks for.
THREADS_ENV = "UNET_REPRO_CONFIGURED_THREADS"
#: Top-level configuration keys left out of the digest, settings that change no number of a
#: run: where the data come from, how jobs are scheduled, and which ablation variants are
#: defined or tabled (each variant's digest is that of its merged configuration, so what an
#: overlay changes is in it).
DIGEST_EXCLUDES = ("mirror", "download", "resources", "ablations", "ablation_variants")
#: Packages whose versions a record holds (distribution names), after python.
PACKAGES = ("torch", "numpy", "scipy", "scikit-image")
REPO = Path(__file__).resolve().parents[2]


def config_digest(config: Mapping[str, Any]) -> str:
    """Digest of a configuration without :data:`DIGEST_EXCLUDES` (16 hex digits of SHA-256)."""
    kept = {k: v for k, v in config.items() if k not in DIGEST_EXCLUDES}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _git(repo: str | os.PathLike, *args: str, timeout: float = 60) -> str:
    """Standard output of ``git -C repo ARGS`` (raises OSError / SubprocessError on failure)."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    ).stdout


@cache
def git_state(repo: str | os.PathLike = REPO) -> tuple[str | None, str | None]:
    """``(commit, tree)`` of the checkout at ``repo``; ``(None, None)`` without git.

    ``tree`` is ``"clean"`` or ``"uncommitted changes"`` (tracked files changed, or untracked
    files that git does not ignore).
    """
    try:
        commit = _git(repo, "rev-parse", "HEAD", timeout=30).strip()
        status = _git(repo, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, ("uncommitted changes" if status.strip() else "clean")


@cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "cpu model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: Any = "cpu") -> str:
    """``"cpu: <model>"`` or ``"cuda: <GPU name>"`` for a torch device (or its name)."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    return f"{kind}: {cpu_model()}"


@cache
def versions() -> dict[str, str | None]:
    """python and :data:`PACKAGES` versions (``None`` for a package that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _digest_from_env(variant: str) -> str | None:
    try:
        return json.loads(os.environ.get(ENV, "{}")).get(variant)
    except (json.JSONDecodeError, AttributeError):
        return None


def record(variant: str = "full", device: Any = None, threads: int | None = None) -> dict[str, Any]:
    """The provenance record of one step (training, prediction, evaluation) of this process.

    ``device`` is the torch device the step ran on (``None``: no torch computation, e.g. an
    evaluation); ``threads`` torch's intra-op thread count it ran with.
    """
    commit, tree = git_state()
    return {
        "commit": commit,
        "tree": tree,
        "config_digest": _digest_from_env(variant),
        "device": None if device is None else device_name(device),
        "threads": threads,
        "versions": versions(),
    }


#: The fields of a record that tables show (the seed has a column of its own).
FIELDS = ("commit", "config_digest", "device", "precision", "threads", "versions")


def _field_text(rec: Mapping[str, Any], key: str) -> str | None:
    value = rec.get(key)
    if value is None or value == {}:
        return None
    if key == "commit":
        dirty = rec.get("tree") not in (None, "clean")
        return f"{value[:12]}{' (+ uncommitted changes)' if dirty else ''}"
    if key == "versions":
        return ", ".join(f"{k} {v}" for k, v in value.items() if v)
    return str(value)


def flatten(steps: Sequence[tuple[str, Mapping[str, Any] | None]]) -> dict[str, str]:
    """One text per field (:data:`FIELDS`) over the records of several steps, for tables.

    ``steps``: ``(step name, record)`` pairs (``"train"``, ``"predict"``, ``"evaluate"``; a
    table row over several scores files has several of each). A field with one value over all
    steps that have it is shown once; otherwise per step (``"train: 2; predict: 1"``, values of
    one step joined by ``" | "``). Fields no step has are left out.
    """
    out = {}
    for key in FIELDS:
        by_step: dict[str, list[str]] = {}
        for step, rec in steps:
            text = _field_text(rec or {}, key)
            if text is not None and text not in by_step.setdefault(step, []):
                by_step[step].append(text)
        by_step = {k: v for k, v in by_step.items() if v}
        distinct = {t for texts in by_step.values() for t in texts}
        if len(distinct) == 1:
            out[key] = distinct.pop()
        elif distinct:
            out[key] = "; ".join(f"{step}: {' | '.join(t)}" for step, t in by_step.items())
    return out


def steps_of(score: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """The ``(step, record)`` pairs of a scores file's ``provenance`` (none for old files)."""
    prov = score.get("provenance") or {}
    return [(step, prov.get(step)) for step in ("train", "predict", "evaluate") if prov.get(step)]


def from_prediction(path: str | os.PathLike) -> dict[str, Any]:
    """``{"seed", "train", "predict"}`` written into a prediction TIFF by ``predict.py``.

    A prediction written before provenance existed gives ``None`` values.
    """
    from .io import tiff_description

    text = tiff_description(path)
    try:
        found = json.loads(text or "")["provenance"]
    except (json.JSONDecodeError, KeyError, TypeError):
        found = {}
    return {key: found.get(key) for key in ("seed", "train", "predict")}


def score_provenance(prediction: str | os.PathLike, variant: str = "full") -> dict[str, Any]:
    """The record of a scores file: the prediction's (seed, train, predict) and this step's."""
    return {**from_prediction(prediction), "evaluate": record(variant)}
