"""Getting the paper's data: download from the official URLs or copy from a local mirror.

Every file is checked with SHA-256 before it counts as done, and written atomically, so a
partial or corrupt download never looks complete.

Mirror layout (a folder holding the files under their official names)::

    <mirror>/isbi2012/train-volume.tif
    <mirror>/isbi2012/train-labels.tif
    <mirror>/isbi2012/test-volume.tif        (optional; only for the submission file)
    <mirror>/ctc/<NAME>.zip                  (the official archive), or
    <mirror>/ctc/<NAME>/01/t000.tif ...      (the archive, unpacked)
    <mirror>/SHA256SUMS                      (optional: ``<sha256>  <relative path>`` lines)

A mirror file is checked against the mirror's own ``SHA256SUMS`` entry when there is one
(a mirror may hold re-packed files that are not byte-identical to the originals), else
against the official checksum from the configuration; which one was used is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from .io import DataError, atomic_path

log = logging.getLogger(__name__)

CHECKSUM_FILE = "SHA256SUMS"


class ChecksumError(DataError):
    """A file's SHA-256 differs from the expected one."""

    def __init__(self, path, expected: str, observed: str, source: str, advice: str = ""):
        self.expected, self.observed = expected, observed
        super().__init__(
            f"{path}: SHA-256 mismatch against the {source} checksum\n"
            f"  expected {expected}\n  observed {observed}\n"
            + (
                advice
                or "  The file is corrupt, truncated, or a different release. Delete it and run "
                "again to fetch it anew; if the provider published a new release, check it and "
                "put the observed hash in the config's `sources` section."
            )
        )


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum``-style file into ``{relative path: hex digest}``."""
    sums = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}:{lineno}: not a '<sha256>  <path>' line: {line!r}")
        sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def verify(path: str | os.PathLike, expected: str, source: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has SHA-256 ``expected``."""
    observed = sha256sum(path)
    if observed != expected.lower():
        raise ChecksumError(path, expected, observed, source)


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    retries: int = 3,
    timeout: float = 60.0,
    opener: Callable = urllib.request.urlopen,
) -> Path:
    """Download ``url`` to ``dest``, verified against ``sha256``, with retries.

    The data goes to a temporary file that is renamed to ``dest`` only after the checksum
    matched. Network errors are retried with exponential back-off; a checksum mismatch is
    not retried (it would only fetch the same bytes again).
    """
    dest = Path(dest)
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(dest, suffix=dest.suffix) as tmp:
                with opener(url, timeout=timeout) as response, open(tmp, "wb") as out:
                    shutil.copyfileobj(response, out, length=1 << 20)
                observed = sha256sum(tmp)
                if observed != sha256.lower():
                    raise ChecksumError(url, sha256, observed, "official")
            log.info("downloaded %s -> %s (sha256 ok)", url, dest)
            return dest
        except ChecksumError:
            raise
        except OSError as err:
            if attempt == retries:
                raise DataError(
                    f"{url}: download failed after {retries} attempts ({err}). If this machine is "
                    "offline, put the files in a local folder and pass --config mirror=<folder>."
                ) from err
            wait = 2**attempt
            log.warning("download of %s failed (%s); retry %d in %d s", url, err, attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def mirror_checksum(mirror: Path, relpath: str, official: str | None) -> tuple[str, str]:
    """The checksum to check ``mirror/relpath`` against, and where it comes from."""
    sums_file = mirror / CHECKSUM_FILE
    if sums_file.is_file():
        sums = read_checksums(sums_file)
        if relpath in sums:
            return sums[relpath], f"mirror {CHECKSUM_FILE}"
    if official:
        return official, "official"
    raise DataError(
        f"{mirror / relpath}: no checksum to verify it against (not listed in "
        f"{sums_file} and no official checksum in the config). Add it to {sums_file} "
        "or set allow_unverified: true."
    )


def copy_from_mirror(
    mirror: str | os.PathLike,
    relpath: str,
    dest: str | os.PathLike,
    official: str | None = None,
    allow_unverified: bool = False,
) -> str:
    """Copy one file of the mirror to ``dest`` after checking its SHA-256.

    Returns a line for the log saying which checksum the file was verified against.
    """
    mirror = Path(mirror)
    src = mirror / relpath
    if not src.is_file():
        raise DataError(f"mirror {mirror}: lacks the file {relpath} ({src} not found)")
    try:
        expected, source = mirror_checksum(mirror, relpath, official)
    except DataError:
        if not allow_unverified:
            raise
        expected, source = None, None
    with atomic_path(dest, suffix=Path(dest).suffix) as tmp:
        shutil.copyfile(src, tmp)
        if expected:
            observed = sha256sum(tmp)
            if observed != expected:
                raise ChecksumError(src, expected, observed, source)
    if expected:
        return f"{relpath}: copied from {mirror}, sha256 verified against the {source} checksum"
    return f"{relpath}: copied from {mirror}, NOT verified (allow_unverified)"


def copy_tree_from_mirror(
    mirror: str | os.PathLike, reldir: str, dest: str | os.PathLike, allow_unverified: bool = False
) -> str:
    """Copy an unpacked dataset folder of the mirror, checking every file listed in SHA256SUMS.

    Every file the mirror's ``SHA256SUMS`` lists under ``reldir`` must be present and match;
    files that are not listed are refused unless ``allow_unverified``.
    """
    mirror = Path(mirror)
    src = mirror / reldir
    if not src.is_dir():
        raise DataError(f"mirror {mirror}: lacks the folder {reldir} ({src} not found)")
    sums_file = mirror / CHECKSUM_FILE
    sums = read_checksums(sums_file) if sums_file.is_file() else {}
    listed = {k: v for k, v in sums.items() if k.startswith(reldir.rstrip("/") + "/")}
    present = {p.relative_to(mirror).as_posix() for p in src.rglob("*") if p.is_file()}
    missing = sorted(set(listed) - present)
    if missing:
        raise DataError(
            f"mirror {mirror}: lacks {len(missing)} file(s) listed in {sums_file}, "
            f"e.g. {missing[0]}"
        )
    unlisted = sorted(present - set(listed))
    if unlisted and not allow_unverified:
        raise DataError(
            f"mirror {mirror}: {len(unlisted)} file(s) under {reldir} have no checksum in "
            f"{sums_file}, e.g. {unlisted[0]}; list them there or set allow_unverified: true"
        )
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        for rel in sorted(present):
            target = tmp / Path(rel).relative_to(reldir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mirror / rel, target)
            if rel in listed:
                observed = sha256sum(target)
                if observed != listed[rel]:
                    raise ChecksumError(
                        mirror / rel, listed[rel], observed, f"mirror {CHECKSUM_FILE}"
                    )
    return (
        f"{reldir}/: {len(present)} files copied from {mirror}, {len(listed)} verified against "
        f"the mirror {CHECKSUM_FILE}" + (f", {len(unlisted)} unverified" if unlisted else "")
    )


def member_path(archive: str | os.PathLike, member: str) -> PurePosixPath:
    """The relative path of an archive member; refuse a member that could leave the folder.

    Raises :class:`DataError`, naming the archive and the member, for a member name that is
    absolute (``/x``, ``//host/x``) or names a drive (``C:/x``, ``C:x``), uses backslashes (the
    Windows separator: ``..\\x`` is ``../x`` there), has a ``..`` component, holds a NUL
    character or is empty. The official archives have none of these; they are how a crafted
    archive writes outside the folder it is unpacked to ("zip slip").
    """
    path = PurePosixPath(member)
    problem = None
    if "\\" in member:
        problem = "uses a backslash (the Windows path separator)"
    elif "\0" in member:
        problem = "holds a NUL character"
    elif member.startswith("/") or PureWindowsPath(member).drive:
        problem = "is an absolute path or names a drive"
    elif ".." in path.parts:
        problem = "has a '..' component"
    elif not path.parts:
        problem = "has an empty path"
    if problem:
        raise DataError(
            f"{archive}: refused, nothing unpacked: the member {member!r} {problem}, which can "
            "write outside the destination folder. The archive is damaged or not the official "
            "one; do not use it: replace it by the official archive (config/sources.yaml gives "
            "its URL and SHA-256)."
        )
    return path


def unpack_zip(
    archive: str | os.PathLike, name: str, dest: str | os.PathLike, source: str | None = None
) -> None:
    """Unpack the folder ``name/`` of a CTC archive to ``dest`` atomically.

    Every member name of the archive is checked (:func:`member_path`) before anything is
    written: one that could leave the destination refuses the whole archive, and ``dest`` is
    then neither created nor changed. ``source`` (the mirror file or URL the archive came from;
    default ``archive``) is what the error messages name.
    """
    archive = Path(archive)
    source = source or str(archive)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DataError(f"{source}: not a valid zip archive ({err})") from err
    with zf:
        paths = {m: member_path(source, m) for m in zf.namelist()}
        members = [
            m for m, p in paths.items() if p.parts[0] == name and len(p.parts) > 1 and m[-1] != "/"
        ]
        if not members:
            raise DataError(f"{source}: holds no folder {name}/")
        with atomic_path(dest) as tmp:
            for member in members:
                target = tmp.joinpath(*paths[member].parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)


def isbi_h5_to_tiffs(h5_path: str | os.PathLike, volume: Path, labels: Path) -> str:
    """Convert torch-em's ``isbi.h5`` mirror (keys ``raw``, ``labels/membranes``) to the TIFFs.

    The labels are written in the challenge's convention (255 = cell, 0 = membrane). Membranes
    cover about a fifth of the ISBI pixels, so a label image whose non-zero part is the
    minority marks membranes and is inverted. Returns a line for the log.
    """
    import h5py
    import numpy as np

    from .io import write_tiff

    with h5py.File(h5_path, "r") as f:
        for key in ("raw", "labels/membranes"):
            if key not in f:
                raise DataError(f"{h5_path}: lacks the dataset '{key}'")
        raw, lab = f["raw"][...], f["labels/membranes"][...]
    if raw.shape != lab.shape:
        raise DataError(f"{h5_path}: raw {raw.shape} and labels {lab.shape} differ in shape")
    inverted = (lab > 0).mean() < 0.5
    lab = np.where((lab > 0) != inverted, 255, 0).astype(np.uint8)
    write_tiff(volume, raw, compression=None)
    write_tiff(labels, lab, compression=None)
    return f"{h5_path}: labels/membranes {'inverted to' if inverted else 'kept as'} 255 = cell"
