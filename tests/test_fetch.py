"""Fetching: checksums, atomic downloads, mirrors, clear errors."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from unet_repro import fetch
from unet_repro.io import DataError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _opener(payload: bytes, failures: int = 0):
    calls = {"n": 0}

    def opener(url, timeout):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OSError("connection reset")
        return _Response(payload)

    opener.calls = calls
    return opener


def test_sha256sum_matches_hashlib(tmp_path):
    data = b"x" * 3_000_001
    (tmp_path / "f").write_bytes(data)
    assert fetch.sha256sum(tmp_path / "f", chunk=4096) == _sha(data)


def test_download_verifies_and_writes_atomically(tmp_path):
    payload = b"payload"
    dest = tmp_path / "sub" / "file.zip"
    fetch.download("http://x", dest, _sha(payload), opener=_opener(payload))
    assert dest.read_bytes() == payload
    assert list(dest.parent.iterdir()) == [dest]


def test_download_mismatch_names_both_hashes_and_leaves_nothing(tmp_path):
    dest = tmp_path / "file.zip"
    wrong = "0" * 64
    with pytest.raises(fetch.ChecksumError) as err:
        fetch.download("http://x", dest, wrong, opener=_opener(b"data"))
    msg = str(err.value)
    assert wrong in msg and _sha(b"data") in msg and "Delete it and run again" in msg
    assert list(tmp_path.iterdir()) == []


def test_download_retries_network_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.time, "sleep", lambda s: None)
    opener = _opener(b"ok", failures=2)
    fetch.download("http://x", tmp_path / "f", _sha(b"ok"), retries=3, opener=opener)
    assert opener.calls["n"] == 3
    opener = _opener(b"ok", failures=5)
    with pytest.raises(DataError, match="mirror"):
        fetch.download("http://x", tmp_path / "g", _sha(b"ok"), retries=2, opener=opener)
    assert not (tmp_path / "g").exists()


def _mirror(tmp_path: Path, listed: bool = True) -> Path:
    m = tmp_path / "mirror"
    (m / "isbi2012").mkdir(parents=True)
    (m / "isbi2012" / "train-volume.tif").write_bytes(b"volume")
    if listed:
        (m / "SHA256SUMS").write_text(f"{_sha(b'volume')}  isbi2012/train-volume.tif\n")
    return m


def test_mirror_checked_against_its_own_checksum_file(tmp_path):
    m = _mirror(tmp_path)
    line = fetch.copy_from_mirror(m, "isbi2012/train-volume.tif", tmp_path / "out.tif", "f" * 64)
    assert "mirror SHA256SUMS" in line
    assert (tmp_path / "out.tif").read_bytes() == b"volume"


def test_mirror_falls_back_to_official_checksum(tmp_path):
    m = _mirror(tmp_path, listed=False)
    line = fetch.copy_from_mirror(m, "isbi2012/train-volume.tif", tmp_path / "o", _sha(b"volume"))
    assert "official" in line
    with pytest.raises(fetch.ChecksumError, match="official"):
        fetch.copy_from_mirror(m, "isbi2012/train-volume.tif", tmp_path / "p", "a" * 64)
    assert not (tmp_path / "p").exists()


def test_mirror_without_any_checksum_is_refused_unless_allowed(tmp_path):
    m = _mirror(tmp_path, listed=False)
    with pytest.raises(DataError, match="no checksum"):
        fetch.copy_from_mirror(m, "isbi2012/train-volume.tif", tmp_path / "o")
    line = fetch.copy_from_mirror(
        m, "isbi2012/train-volume.tif", tmp_path / "o", allow_unverified=True
    )
    assert "NOT verified" in line


def test_mirror_missing_file_is_named(tmp_path):
    m = _mirror(tmp_path)
    with pytest.raises(DataError, match="lacks the file isbi2012/train-labels.tif"):
        fetch.copy_from_mirror(m, "isbi2012/train-labels.tif", tmp_path / "o")


def test_copy_tree_checks_every_listed_file(tmp_path):
    m = tmp_path / "m"
    files = {"ctc/X/01/t000.tif": b"a", "ctc/X/01_GT/SEG/man_seg000.tif": b"b"}
    for rel, data in files.items():
        (m / rel).parent.mkdir(parents=True, exist_ok=True)
        (m / rel).write_bytes(data)
    (m / "SHA256SUMS").write_text("".join(f"{_sha(d)}  {r}\n" for r, d in files.items()))
    line = fetch.copy_tree_from_mirror(m, "ctc/X", tmp_path / "out")
    assert "2 verified" in line
    assert (tmp_path / "out" / "01_GT" / "SEG" / "man_seg000.tif").read_bytes() == b"b"
    # a corrupted file stops the copy and leaves no output folder
    (m / "ctc/X/01/t000.tif").write_bytes(b"corrupt")
    with pytest.raises(fetch.ChecksumError):
        fetch.copy_tree_from_mirror(m, "ctc/X", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    # a listed file that is missing is named
    (m / "ctc/X/01/t000.tif").unlink()
    with pytest.raises(DataError, match="lacks 1 file"):
        fetch.copy_tree_from_mirror(m, "ctc/X", tmp_path / "out3")


def test_unpack_zip_takes_the_dataset_folder(tmp_path):
    archive = tmp_path / "X.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X/01/t000.tif", b"a")
        zf.writestr("X/01_GT/SEG/man_seg000.tif", b"b")
    fetch.unpack_zip(archive, "X", tmp_path / "X")
    assert (tmp_path / "X" / "01" / "t000.tif").read_bytes() == b"a"
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.zip: not a valid zip"):
        fetch.unpack_zip(tmp_path / "bad.zip", "X", tmp_path / "Y")


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("X/../../escaped.txt", "has a '..' component"),
        ("X/01/../../../escaped.txt", "has a '..' component"),
        ("../escaped.txt", "has a '..' component"),
        ("/tmp/escaped.txt", "is an absolute path"),
        ("//host/share/escaped.txt", "is an absolute path"),
        ("C:/escaped.txt", "names a drive"),
        ("C:escaped.txt", "names a drive"),
        ("X\\..\\..\\escaped.txt", "uses a backslash"),
    ],
)
def test_unpack_zip_refuses_members_leaving_the_destination(tmp_path, member, problem):
    """A crafted archive ("zip slip") is refused whole, naming it and the member."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    archive = work / "X.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X/01/t000.tif", b"a")  # a good member first: nothing of it is written
        zf.writestr(zipfile.ZipInfo(member), b"evil")  # ZipInfo keeps the name as given
        zf.writestr("X/01/t001.tif", b"b")
    assert member in zipfile.ZipFile(archive).namelist()
    dest = work / "X"
    with pytest.raises(DataError) as err:
        fetch.unpack_zip(archive, "X", dest)
    msg = str(err.value)
    assert msg.startswith(f"{archive}: refused, nothing unpacked")
    assert repr(member) in msg and problem in msg
    assert not dest.exists()
    assert sorted(p.name for p in work.iterdir()) == ["X.zip"]  # no temporary folder left
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["X.zip", "a", "b"]  # nothing escaped


def test_unpack_zip_keeps_an_existing_destination_when_refused(tmp_path):
    dest = tmp_path / "X"
    (dest / "01").mkdir(parents=True)
    (dest / "01" / "t000.tif").write_bytes(b"old")
    archive = tmp_path / "X.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X/01/t000.tif", b"new")
        zf.writestr("X/../escaped.txt", b"evil")
    with pytest.raises(DataError, match="X.zip: refused"):
        fetch.unpack_zip(archive, "X", dest)
    assert (dest / "01" / "t000.tif").read_bytes() == b"old"
    assert not (tmp_path / "escaped.txt").exists()


def test_member_path_accepts_ordinary_names():
    assert fetch.member_path("a.zip", "X/01_GT/SEG/man_seg000.tif").parts[0] == "X"
    assert fetch.member_path("a.zip", "./X/01/t000.tif").parts == ("X", "01", "t000.tif")
    assert fetch.member_path("a.zip", "X/01/") == fetch.member_path("a.zip", "X/01")


def test_unpack_zip_names_the_archive_it_came_from(tmp_path):
    archive = tmp_path / "tmp123" / "X.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("X/../x", b"evil")
    with pytest.raises(DataError, match=r"^mirror/ctc/X.zip: refused, nothing unpacked"):
        fetch.unpack_zip(archive, "X", tmp_path / "X", source="mirror/ctc/X.zip")


def test_read_checksums_rejects_garbage(tmp_path):
    (tmp_path / "S").write_text("nonsense line\n")
    with pytest.raises(DataError, match="S:1"):
        fetch.read_checksums(tmp_path / "S")


def test_shared_mirror_isbi_is_verified_against_its_listing(shared_data, tmp_path):
    line = fetch.copy_from_mirror(shared_data, "isbi2012/train-labels.tif", tmp_path / "l.tif")
    assert "mirror SHA256SUMS" in line


def test_isbi_h5_conversion_keeps_the_cell_convention(tmp_path):
    import h5py
    import numpy as np
    import tifffile

    cells = np.zeros((2, 16, 16), np.uint8)
    cells[:, 2:14, 2:14] = 255  # cells are the majority, as in ISBI
    for name, lab in [("cells", cells), ("membranes", 255 - cells)]:
        h5 = tmp_path / f"{name}.h5"
        with h5py.File(h5, "w") as f:
            f["raw"] = np.arange(512, dtype=np.uint8).reshape(2, 16, 16)
            f["labels/membranes"] = lab
        line = fetch.isbi_h5_to_tiffs(h5, tmp_path / f"{name}-v.tif", tmp_path / f"{name}-l.tif")
        assert ("inverted" in line) == (name == "membranes")
        assert np.array_equal(tifffile.imread(tmp_path / f"{name}-l.tif"), cells)
