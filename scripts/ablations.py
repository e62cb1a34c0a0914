#!/usr/bin/env python
"""The ablation table (CSV, Markdown, LaTeX) and its figure of differences to the full method.

``--variant NAME FILE ...`` once per variant (the full method as ``full``): its ISBI
``scores.json`` and CTC ``*.seg.json`` files.
"""

import argparse
import json
from pathlib import Path

from _common import run, setup_logging

from unet_repro.ablations import (
    ablation_rows,
    csv_columns,
    plot_differences,
    to_html,
    to_latex,
    to_markdown,
)
from unet_repro.io import DataError, write_text
from unet_repro.provenance import FIELDS as PROVENANCE_FIELDS
from unet_repro.tables import to_csv, with_provenance

CAPTION = (
    "Ablations: each variant changes one ingredient of the full method (column `changes`). "
    "Values: Table 1 metrics (ISBI 2012, held-out slices, best threshold) and Table 2 SEG "
    "(held-out CTC sequences), averaged over splits per seed, then mean ± sample sd over seeds; "
    "Δ: variant minus full method, paired by seed."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME FILE",
        help="a variant's name, then its score files",
    )
    parser.add_argument("--overlays", default="{}", help="JSON: variant name -> overlay")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--out-figure", type=Path, required=True)
    args = parser.parse_args()
    log = setup_logging()
    scores = {}
    for name, *files in args.variant:
        if not files:
            raise DataError(f"--variant {name}: no score files")
        scores[name] = [json.loads(Path(f).read_text()) for f in files]
    try:
        rows = ablation_rows(scores, json.loads(args.overlays))
    except ValueError as err:
        raise DataError(str(err)) from None
    rows, notes = with_provenance(rows)  # what made each variant's scores
    stem = args.out_dir / "ablations"
    write_text(stem.with_suffix(".csv"), to_csv(rows, [*csv_columns(), *PROVENANCE_FIELDS]))
    write_text(stem.with_suffix(".md"), to_markdown(rows, CAPTION, notes))
    write_text(stem.with_suffix(".tex"), to_latex(rows, CAPTION, notes))
    write_text(stem.with_suffix(".html"), to_html(rows, CAPTION, notes))
    plot_differences(rows, args.out_figure)
    log.info("wrote %s.{csv,md,tex,html} and %s (%d variants)", stem, args.out_figure, len(rows))


if __name__ == "__main__":
    run(main)
