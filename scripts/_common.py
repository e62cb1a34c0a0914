"""Shared start-up of the rule scripts: make ``unet_repro`` importable, set up logging.

The scripts run inside Snakemake's per-rule conda environments, where the package is not
installed; they import it from the checkout's ``src/``.
"""

import logging
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def setup_logging(verbose: bool = True) -> logging.Logger:
    """Log to stderr (the rule's log file) with timestamps."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return logging.getLogger(Path(sys.argv[0]).stem)


def run(main) -> None:
    """Run ``main()``; report a data error as one clear line and exit 1."""
    from unet_repro.io import DataError

    try:
        main()
    except DataError as err:
        logging.getLogger(Path(sys.argv[0]).stem).error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
