#!/usr/bin/env python
"""Fetch the paper's data: download from the official URL or copy from a local mirror.

Every file is verified with SHA-256 before it is renamed into place.

Examples::

    python scripts/fetch.py isbi --mirror ../shared/data \\
        --out-volume results/raw/isbi2012/train-volume.tif \\
        --out-labels results/raw/isbi2012/train-labels.tif
    python scripts/fetch.py ctc --name PhC-C2DH-U373 --url URL --sha256 HASH \\
        --out-dir results/raw/ctc/PhC-C2DH-U373
"""

import argparse
import tempfile
from pathlib import Path

from _common import run, setup_logging

from unet_repro import fetch
from unet_repro.io import DataError


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["isbi", "isbi-test", "ctc"], help="what to fetch")
    parser.add_argument("--mirror", type=Path, help="local mirror folder (no download)")
    parser.add_argument(
        "--allow-unverified", action="store_true", help="accept mirror files without checksum"
    )
    parser.add_argument("--url", help="official download URL")
    parser.add_argument("--sha256", help="official SHA-256 of the download")
    parser.add_argument("--name", help="CTC dataset name, e.g. PhC-C2DH-U373")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--out-volume", type=Path)
    parser.add_argument("--out-labels", type=Path)
    parser.add_argument("--out-dir", type=Path)
    args = parser.parse_args()
    log = setup_logging()

    if args.what in ("isbi", "isbi-test"):
        names = (
            ["train-volume.tif", "train-labels.tif"] if args.what == "isbi" else ["test-volume.tif"]
        )
        outs = [args.out_volume, args.out_labels] if args.what == "isbi" else [args.out_volume]
        if args.mirror:
            for name, out in zip(names, outs, strict=True):
                log.info(
                    fetch.copy_from_mirror(
                        args.mirror, f"isbi2012/{name}", out, None, args.allow_unverified
                    )
                )
        elif args.what == "isbi-test":
            raise DataError(
                "isbi2012/test-volume.tif has no public download URL (the challenge site needs a "
                "registration): put it in a mirror folder and pass --config mirror=<folder>"
            )
        else:
            with tempfile.TemporaryDirectory(dir=args.out_volume.parent) as tmp:
                h5 = fetch.download(
                    args.url, Path(tmp) / "isbi.h5", args.sha256, args.retries, args.timeout
                )
                log.info(fetch.isbi_h5_to_tiffs(h5, args.out_volume, args.out_labels))
            log.info("isbi2012: converted %s (sha256 verified, official) to TIFF stacks", args.url)
    else:
        name = args.name
        args.out_dir.parent.mkdir(parents=True, exist_ok=True)
        if args.mirror and (args.mirror / "ctc" / f"{name}.zip").is_file():
            with tempfile.TemporaryDirectory(dir=args.out_dir.parent) as tmp:
                zip_path = Path(tmp) / f"{name}.zip"
                log.info(
                    fetch.copy_from_mirror(
                        args.mirror, f"ctc/{name}.zip", zip_path, args.sha256, args.allow_unverified
                    )
                )
                fetch.unpack_zip(
                    zip_path, name, args.out_dir, source=str(args.mirror / "ctc" / f"{name}.zip")
                )
        elif args.mirror:
            log.info(
                fetch.copy_tree_from_mirror(
                    args.mirror, f"ctc/{name}", args.out_dir, args.allow_unverified
                )
            )
        else:
            with tempfile.TemporaryDirectory(dir=args.out_dir.parent) as tmp:
                zip_path = fetch.download(
                    args.url, Path(tmp) / f"{name}.zip", args.sha256, args.retries, args.timeout
                )
                fetch.unpack_zip(zip_path, name, args.out_dir, source=args.url)
            log.info(
                "%s: downloaded from %s (sha256 verified, official) and unpacked", name, args.url
            )


if __name__ == "__main__":
    run(main)
