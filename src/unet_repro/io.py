"""File input/output with clear errors and atomic writes.

Every writer here writes to a temporary file beside the target and renames it into
place (``os.replace``), so an interrupted job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The caller writes a file (or creates a folder) at the temporary path. On success it
    replaces ``path`` (an existing folder is moved aside first and removed afterwards, since
    ``os.replace`` cannot overwrite a non-empty folder); on an exception the temporary file or
    folder is removed and ``path`` is untouched. ``suffix`` is kept on the temporary name so
    writers that infer a format from the extension (e.g. ``np.savez``) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Read a TIFF image or stack, turning every failure into a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return tifffile.imread(path)
    except Exception as err:  # tifffile raises many types for truncated/corrupt files
        raise DataError(
            f"{path}: unreadable or truncated TIFF ({type(err).__name__}: {err})"
        ) from err


def write_tiff(
    path: str | os.PathLike,
    array: np.ndarray,
    compression: str | None = "zlib",
    description: str | None = None,
) -> None:
    """Write ``array`` as a (multi-page) TIFF atomically.

    ``description`` (7-bit ASCII, e.g. JSON) goes into the first page's ImageDescription tag
    (see :func:`tiff_description`). No date is written, so equal arrays give equal files.
    """
    with atomic_path(path, suffix=".tif") as tmp:
        tifffile.imwrite(
            tmp,
            np.asarray(array),
            photometric="minisblack",
            compression=compression,
            description=description,
        )


def tiff_description(path: str | os.PathLike) -> str | None:
    """The first page's ImageDescription of a TIFF file (``None`` when it has none)."""
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get("ImageDescription")
            return None if tag is None else str(tag.value)
    except Exception as err:
        raise DataError(f"{path}: unreadable TIFF ({type(err).__name__}: {err})") from err


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write named arrays to a compressed ``.npz`` atomically, reproducibly.

    The file is what ``np.savez_compressed`` writes (``np.load`` reads it), except that every
    member carries the fixed zip date 1980-01-01 instead of the time of writing, so equal
    arrays give byte-identical files.
    """
    with (
        atomic_path(path, suffix=".npz") as tmp,
        zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read all arrays of a ``.npz`` file into a dict."""
    path = Path(path)
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except Exception as err:
        raise DataError(f"{path}: cannot read npz ({err})") from err


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
