#!/usr/bin/env python
"""Write a small synthetic data mirror (ISBI and CTC layouts, with SHA256SUMS).

Used by the tests and by smoke runs: ``--config mirror=<out>``.
"""

import argparse
from pathlib import Path

from _common import setup_logging

from unet_repro.synthetic import make_mirror


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="folder to write the mirror to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup_logging().info("synthetic mirror written to %s", make_mirror(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
