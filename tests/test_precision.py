"""amp / channels_last: true, false or auto, resolved per device (unet_repro.precision)."""

import numpy as np
import pytest

from unet_repro import precision
from unet_repro.precision import cpu_has_bf16, describe, parse, resolve, text


def _cpuinfo(tmp_path, flags):
    path = tmp_path / f"cpuinfo{len(list(tmp_path.iterdir()))}"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n")
    return str(path)


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    cpu_has_bf16.cache_clear()
    try:
        assert cpu_has_bf16(_cpuinfo(tmp_path, "fpu sse2 avx2 avx512f amx_bf16 amx_tile"))
        assert cpu_has_bf16(_cpuinfo(tmp_path, "fpu avx512f avx512_bf16"))
        assert not cpu_has_bf16(_cpuinfo(tmp_path, "fpu sse2 avx2 avx512f avx512_vnni"))
        assert not cpu_has_bf16(str(tmp_path / "missing"))
    finally:
        cpu_has_bf16.cache_clear()


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    assert resolve("auto", "auto", "cpu") == (native, native)
    assert resolve(False, "auto", "cpu") == (False, False)  # float32 NCHW: the default path
    assert resolve(True, "auto", "cpu") == (True, True)  # asked for: on, even emulated
    assert resolve("auto", False, "cpu") == (native, False)
    assert resolve(False, True, "cpu") == (False, True)


def test_cuda_keeps_nhwc_by_default():
    assert resolve(False, "auto", "cuda") == (False, True)
    assert resolve(True, "auto", "cuda:1") == (True, True)
    assert resolve(False, False, "cuda") == (False, False)


@pytest.mark.parametrize("bad", ["yes", 1, 0, None, "AUTO", np.bool_(True)])
def test_other_values_are_refused(bad):
    with pytest.raises(ValueError, match="amp must be true, false or 'auto'"):
        resolve(bad, "auto", "cpu")
    with pytest.raises(ValueError, match="channels_last must be"):
        resolve(False, bad, "cpu")


def test_describe():
    assert describe(False, False) == "float32, NCHW"
    assert describe(True, True) == "bfloat16 autocast, NHWC"


def test_text_and_parse_are_inverse():
    assert [parse(text(v)) for v in (True, False, "auto")] == [True, False, "auto"]
    assert parse(text(True)) is True and parse(text(False)) is False
    assert parse(" TRUE ") is True and parse("Auto") == "auto"
    with pytest.raises(ValueError, match="expected true, false or auto"):
        parse("bf16")
    with pytest.raises(ValueError, match="must be true, false or 'auto'"):
        text(1)
