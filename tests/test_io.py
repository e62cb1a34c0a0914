"""Atomic writes: a failed write leaves the old content and no temporary file."""

import pytest

from unet_repro.io import atomic_path, write_text


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "RES"
    target.mkdir()
    (target / "stale.tif").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "mask000.tif").write_text("y")
    assert [p.name for p in target.iterdir()] == ["mask000.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["RES"]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["mask000.tif"]
    assert [p.name for p in tmp_path.iterdir()] == ["RES"]
