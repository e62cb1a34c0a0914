"""Where the network runs in bfloat16 and in the NHWC layout: ``amp`` and ``channels_last``.

Both settings of training and prediction take ``true``, ``false`` or ``"auto"``:

``amp``
    bfloat16 autocast of the forward pass: convolutions with bfloat16 operands (8 significant
    bits, about 3 digits) and float32 accumulation; the softmax, the loss, the weights, the
    gradients' accumulation and the optimizer stay float32. ``true``: on any device (on a CPU
    without bfloat16 instructions it is emulated, tens of times slower). ``"auto"``: where the
    hardware computes bfloat16 natively, on a CUDA GPU that supports it
    (``torch.cuda.is_bf16_supported()``) and on a CPU with AMX-BF16 or AVX512-BF16
    instructions (``/proc/cpuinfo`` flags ``amx_bf16``, ``avx512_bf16``); float32 elsewhere.
``channels_last``
    the model and its input tiles in the NHWC memory format, the native layout of cuDNN's
    tensor-core convolutions and of oneDNN's bfloat16 CPU kernels. Same arithmetic up to the
    order of float32 sums. ``"auto"``: on CUDA, and on the CPU where bfloat16 autocast is on
    (float32 NCHW on a CPU is the default path, faster than NHWC on some CPUs).

:func:`resolve` turns the two settings into what one process does; the training and the
prediction records (provenance ``precision``) name the result, since bfloat16 changes every
trained weight's last bits against float32 (a run repeats itself on one machine either way).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

#: The values ``amp`` and ``channels_last`` take, by their text (YAML, command line).
CHOICES = {"true": True, "false": False, "auto": "auto"}
#: ``/proc/cpuinfo`` flags of native bfloat16 arithmetic on x86 CPUs.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@lru_cache(maxsize=1)
def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16); False if unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.split(":")[0].strip() == "flags":
            flags = set(line.split(":", 1)[1].split())
            return any(flag in flags for flag in CPU_BF16_FLAGS)
    return False


def parse(text: str) -> bool | str:
    """A setting's text (``"true"``, ``"false"``, ``"auto"``, any case) as its value."""
    value = CHOICES.get(text.strip().lower())
    if value is None:
        raise ValueError(f"expected true, false or auto, got {text!r}")
    return value


def text(value: bool | str) -> str:
    """The inverse of :func:`parse`: ``True`` -> ``"true"``, ``"auto"`` -> ``"auto"``."""
    _check("setting", value)
    return value if isinstance(value, str) else str(value).lower()


def _check(name: str, value: Any) -> None:
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"{name} must be true, false or 'auto', got {value!r}")


def resolve(amp: Any, channels_last: Any, device: Any) -> tuple[bool, bool]:
    """``(bfloat16 autocast on, NHWC on)`` for ``amp`` and ``channels_last`` on ``device``.

    Parameters
    ----------
    amp, channels_last : bool or "auto"
        The settings (module docstring).
    device : str or torch.device
        Where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    """
    _check("amp", amp)
    _check("channels_last", channels_last)
    cuda = str(device).split(":")[0] == "cuda"
    if amp == "auto":
        if cuda:
            import torch

            amp = bool(torch.cuda.is_bf16_supported())
        else:
            amp = cpu_has_bf16()
    if channels_last == "auto":
        channels_last = cuda or amp
    return bool(amp), bool(channels_last)


def describe(amp: bool, channels_last: bool) -> str:
    """The provenance text of a resolved pair, e.g. ``"bfloat16 autocast, NHWC"``."""
    return f"{'bfloat16 autocast' if amp else 'float32'}, {'NHWC' if channels_last else 'NCHW'}"
