"""Tables 1 and 2 of the paper, regenerated beside the paper's rows.

The paper's rows are those of ``shared/docs/reference.md`` (the challenges' leaderboards of
2015, evaluated on the secret test labels). Our rows are held-out evaluations on the public
training data and are named as such, with their split, seed, configuration and thresholds.

Several seeds (``seeds`` in the configuration) give one row per split and seed, then per split
a row with the mean and the sample standard deviation over the seeds (``<metric>_sd`` in the
CSV, "mean ± sd" in Markdown and LaTeX), and per configuration the mean over splits, whose
standard deviation is that of the per-seed means over splits (how much the configuration's
headline number moves with the seed).

Every table says what produced its rows (:mod:`unet_repro.provenance`): the CSV has the
columns ``commit``, ``config_digest``, ``device``, ``threads`` and ``versions`` on each of our
rows; Markdown, LaTeX and HTML have a ``provenance`` column naming a record (P1, P2, ...) that
a "Provenance" note below the table spells out, so a table sent on its own still says what
made it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from .io import write_text
from .provenance import FIELDS as PROVENANCE_FIELDS
from .provenance import flatten, steps_of

#: Table 1 of the paper: EM segmentation challenge, (group, warping, Rand, pixel error).
PAPER_TABLE1: list[tuple[str, float, float, float]] = [
    ("human values", 0.000005, 0.0021, 0.0010),
    ("u-net (paper, test set)", 0.000353, 0.0382, 0.0611),
    ("DIVE-SCI", 0.000355, 0.0305, 0.0584),
    ("IDSIA (Ciresan et al.)", 0.000420, 0.0504, 0.0613),
    ("DIVE", 0.000430, 0.0545, 0.0582),
    ("IDSIA-SCI", 0.000653, 0.0189, 0.1027),
]

#: Table 2 of the paper: IOU (CTC SEG) on PhC-U373 and DIC-HeLa; None = not reported.
PAPER_TABLE2: list[tuple[str, float | None, float | None]] = [
    ("IMCB-SG (2014)", 0.2669, 0.2935),
    ("KTH-SE (2014)", 0.7953, 0.4607),
    ("HOUS-US (2014)", 0.5323, None),
    ("second-best 2015", 0.83, 0.46),
    ("u-net (2015, paper, test set)", 0.9203, 0.7756),
]

#: Today's leader of the Cell Tracking Challenge's Cell Segmentation Benchmark (ranked by
#: OP_CSB): published test-set values, (SEG, DET, OP_CSB) per dataset (issue 17). A reference
#: row of Table 2, marked as test-set numbers; not this reproduction's.
CSB_LEADER = {
    "name": "CSB leader (today, test set)",
    "PhC-U373": (0.931, 0.990, 0.961),
    "DIC-HeLa": (0.887, 0.975, 0.926),
}

TABLE1_COLUMNS = [
    "name",
    "source",
    "split",
    "seed",
    "config",
    "warping_error",
    "rand_error",
    "pixel_error",
    "vrand_thinned",
    "vinfo_thinned",
    "thresholds",
]
TABLE2_COLUMNS = [
    "name",
    "source",
    "split",
    "seed",
    "config",
    "training_data",
    "PhC-U373",
    "DIC-HeLa",
    "PhC-U373_DET",
    "DIC-HeLa_DET",
    "PhC-U373_OP_CSB",
    "DIC-HeLa_OP_CSB",
    "thresholds",
]
TABLE1_METRICS = (
    "warping_error",
    "rand_error",
    "pixel_error",
    "vrand_thinned",
    "vinfo_thinned",
)
TABLE2_METRICS = (
    "PhC-U373",
    "DIC-HeLa",
    "PhC-U373_DET",
    "DIC-HeLa_DET",
    "PhC-U373_OP_CSB",
    "DIC-HeLa_OP_CSB",
)


def table1_rows(ours: Sequence[dict]) -> list[dict]:
    """Paper rows followed by ours.

    ``ours``: dicts with ``split``, ``config``, ``seed`` (optional) and, per metric ``m`` in
    warping_error, rand_error, pixel_error, ``m`` (best value) and ``m_threshold``; optionally
    the same for vrand_thinned and vinfo_thinned (today's leaderboard measures, which the
    paper's rows predate: "–" there).
    """
    rows = [
        dict(
            zip(
                TABLE1_COLUMNS,
                (n, "paper", "challenge test", "", "", w, r, p, None, None, ""),
                strict=True,
            )
        )
        for n, w, r, p in PAPER_TABLE1
    ]
    for s in ours:
        ths = "w/R/p " + "/".join(
            f"{s[m + '_threshold']:.1f}" for m in ("warping_error", "rand_error", "pixel_error")
        )
        if s.get("vrand_thinned") is not None:
            ths += ", V_Rand/V_Info " + "/".join(
                f"{s[m + '_threshold']:.1f}" for m in ("vrand_thinned", "vinfo_thinned")
            )
        rows.append(
            {
                "name": "u-net (this reproduction, held-out)",
                "source": "ours",
                "split": s["split"],
                "seed": s.get("seed"),
                "config": s["config"],
                "warping_error": s["warping_error"],
                "rand_error": s["rand_error"],
                "pixel_error": s["pixel_error"],
                "vrand_thinned": s.get("vrand_thinned"),
                "vinfo_thinned": s.get("vinfo_thinned"),
                "thresholds": ths,
                "_provenance": steps_of(s),
            }
        )
    return rows + summary_rows(rows, TABLE1_METRICS)


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for no values / for fewer than two)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _count_label(counts: dict[str, int], unit: str) -> str:
    if len(set(counts.values())) == 1:
        return f"mean of {next(iter(counts.values()))} {unit}"
    return f"mean of {unit} (" + ", ".join(f"{c}: {n}" for c, n in counts.items()) + ")"


def _common(values) -> str | None:
    """The one value all of ``values`` share, else None."""
    found = set(values)
    return found.pop() if len(found) == 1 else None


def summary_rows(rows: Sequence[dict], columns: Sequence[str], unit: str = "splits") -> list[dict]:
    """Mean rows of our rows, per configuration.

    Our rows are one per split (or split and test sequence) and seed. With several seeds, each
    split gets a row with the mean and the sample standard deviation (``<column>_sd``) over its
    seeds. With several splits, the configuration gets a row with the mean over splits; its
    ``<column>_sd`` is the sample standard deviation over seeds of each seed's mean over splits
    (defined when every seed has a value for that column). Each column averages the rows that
    have a value for it (None when none has); the ``split`` cell counts them: "mean of 2
    splits", or per column where the counts differ ("mean of held-out sequences (PhC-U373: 2,
    DIC-HeLa: 1)"); the ``seed`` cell says how many seeds.
    """
    out = []
    ours = [r for r in rows if r["source"] == "ours"]
    for config in dict.fromkeys(r["config"] for r in ours):
        mine = [r for r in ours if r["config"] == config]
        seeds = list(dict.fromkeys(r.get("seed") for r in mine))
        split_names = list(dict.fromkeys(r["split"] for r in mine))
        seed_cell = f"mean ± sd of {len(seeds)}" if len(seeds) > 1 else ""
        if len(seeds) > 1:
            for name in split_names:
                group = [r for r in mine if r["split"] == name]
                if len(group) < 2:
                    continue
                row = {
                    "name": "u-net (this reproduction, held-out, mean over seeds)",
                    "source": "ours",
                    "split": name,
                    "seed": f"mean ± sd of {len(group)}",
                    "config": config,
                    "training_data": _common(r.get("training_data") for r in group),
                    "thresholds": "",
                    "_provenance": [p for r in group for p in r.get("_provenance", [])],
                }
                for c in columns:
                    row[c], row[c + "_sd"] = mean_sd([r[c] for r in group if r[c] is not None])
                out.append(row)
        if len(split_names) < 2:
            continue
        mean = {
            "name": "u-net (this reproduction, held-out, mean)",
            "source": "ours",
            "seed": seed_cell,
            "config": config,
            "training_data": _common(r.get("training_data") for r in mine),
            "thresholds": "",
            "_provenance": [p for r in mine for p in r.get("_provenance", [])],
        }
        counts = {}
        for c in columns:
            per_seed = []
            for seed in seeds:
                values = [r[c] for r in mine if r.get("seed") == seed and r[c] is not None]
                if values:
                    per_seed.append(sum(values) / len(values))
            values = [r[c] for r in mine if r[c] is not None]
            mean[c] = sum(values) / len(values) if values else None
            complete = len(per_seed) == len(seeds) > 1
            mean[c + "_sd"] = statistics.stdev(per_seed) if complete else None
            counts[c] = len({r["split"] for r in mine if r[c] is not None})
        mean["split"] = _count_label(counts, unit)
        out.append(mean)
    return out


def postprocessing(scores: dict) -> str:
    """The post-processing of a CTC score, e.g. "p > 0.62, min 30 px, +1 px, holes filled".

    ``threshold`` always; ``mask_threshold`` (seeds grown by a watershed into ``p >`` it),
    ``keep_unseeded`` (that region's components without a seed kept), ``min_size`` (smallest
    object kept), ``split_depth`` (split at necks), ``expand`` (pixels the labels are grown back
    by) and ``fill_holes`` when given and not 0/False/None (older score files have only
    threshold and min_size).
    """
    parts = [f"p > {scores['threshold']:g}"]
    if scores.get("mask_threshold") is not None:
        parts.append(f"grown into p > {scores['mask_threshold']:g}")
        if scores.get("keep_unseeded"):
            parts.append("unseeded kept")
    if scores.get("split_depth") is not None:
        parts.append(f"split at necks of {scores['split_depth']:g} px")
    if scores.get("min_size"):
        parts.append(f"min {scores['min_size']} px")
    if scores.get("expand"):
        parts.append(f"+{scores['expand']} px")
    if scores.get("fill_holes"):
        parts.append("holes filled")
    text = ", ".join(parts)
    on = scores.get("selected_on")
    if scores.get("postprocess") == "selected" and on and isinstance(on[0], dict):
        frames = sum(len(s["frames"]) for s in on)
        if str(scores.get("selection_reference", "")).startswith("silver"):
            text += f" (chosen on {frames} unseen training frames vs ST)"
        else:
            text += f" (chosen on {frames} trained-on gold frames)"
    return text


def table2_rows(ours: Sequence[dict]) -> list[dict]:
    """Paper rows followed by ours.

    ``ours``: dicts with ``dataset`` (PhC-C2DH-U373 or DIC-C2DH-HeLa), ``split``,
    ``sequence`` (the test sequence; optional), ``seed`` (optional), ``config``, ``seg``,
    ``threshold``, optionally ``det`` and ``op_csb`` (the Cell Segmentation Benchmark's
    measures, columns ``<dataset>_DET``, ``<dataset>_OP_CSB``) and ``min_size``, ``expand``,
    ``fill_holes``. After the paper's rows comes today's benchmark leader (:data:`CSB_LEADER`,
    source ``leaderboard``: test-set numbers). One row per split,
    test sequence, seed and configuration, with both datasets' values when both have it; the
    thresholds column names each dataset's post-processing where the two differ. The same
    dataset twice under one key is an error (a value would be lost).
    """
    rows = [
        {
            **dict.fromkeys(TABLE2_COLUMNS),
            "name": n,
            "source": "paper",
            "split": "challenge test",
            "seed": "",
            "config": "",
            # the paper's u-net trained on the gold truth; the other entries do not say
            "training_data": "GT" if n.startswith("u-net") else "",
            "PhC-U373": u,
            "DIC-HeLa": h,
            "thresholds": "",
        }
        for n, u, h in PAPER_TABLE2
    ]
    leader = {
        **dict.fromkeys(TABLE2_COLUMNS),
        "name": CSB_LEADER["name"],
        "source": "leaderboard",
        "split": "challenge test",
        "seed": "",
        "config": "",
        "thresholds": "",
    }
    for ds in ("PhC-U373", "DIC-HeLa"):
        leader[ds], leader[f"{ds}_DET"], leader[f"{ds}_OP_CSB"] = CSB_LEADER[ds]
    rows.append(leader)
    column = {"PhC-C2DH-U373": "PhC-U373", "DIC-C2DH-HeLa": "DIC-HeLa"}
    by_key: dict[tuple, dict] = {}
    post: dict[tuple, dict[str, str]] = {}
    data: dict[tuple, dict[str, str]] = {}
    for s in ours:
        sequence = s.get("sequence")
        key = (s["split"], sequence, s.get("seed"), s["config"])
        row = by_key.setdefault(
            key,
            {
                "name": "u-net (this reproduction, held-out)",
                "source": "ours",
                "split": s["split"] if sequence is None else f"{s['split']} (test {sequence})",
                "seed": s.get("seed"),
                "config": s["config"],
                **dict.fromkeys(TABLE2_METRICS),
                "thresholds": "",
                "_provenance": [],
            },
        )
        if row[column[s["dataset"]]] is not None:
            raise ValueError(
                f"two scores for {s['dataset']} split {s['split']}, test sequence {sequence},"
                f" seed {s.get('seed')}, config {s['config']}"
            )
        ds = column[s["dataset"]]
        row[ds] = s["seg"]
        if s.get("det") is not None:  # score files written before DET have none
            row[f"{ds}_DET"], row[f"{ds}_OP_CSB"] = s["det"], s["op_csb"]
        row["_provenance"] += steps_of(s)
        post.setdefault(key, {})[column[s["dataset"]]] = postprocessing(s)
        # score files written before the training-data configurations trained on GT
        data.setdefault(key, {})[column[s["dataset"]]] = s.get("training_data") or "GT"
    for key, row in by_key.items():
        row["thresholds"] = _per_dataset(post[key], column.values())
        row["training_data"] = _per_dataset(data[key], column.values())
    rows += list(by_key.values())
    return rows + summary_rows(rows, TABLE2_METRICS, unit="held-out sequences")


def _per_dataset(texts: Mapping[str, str], columns) -> str:
    """One text where the datasets agree, else "PhC-U373: a; DIC-HeLa: b"."""
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{c}: {texts[c]}" for c in columns if c in texts)


def _fmt(value, digits: int) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def csv_columns(columns: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """The CSV's columns: ``columns`` and, after them, ``<metric>_sd`` for each metric."""
    return [*columns, *(m + "_sd" for m in metrics)]


def _cell(row: dict, column: str, digits: int) -> str:
    text = _fmt(row.get(column), digits)
    if row.get(column + "_sd") is not None:
        text += f" ± {_fmt(row[column + '_sd'], digits)}"
    return text


def to_csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Rows as CSV text (full precision)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def to_markdown(rows: Sequence[dict], columns: Sequence[str], digits: dict[str, int]) -> str:
    """Rows as a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_cell(row, c, digits.get(c, 4)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """``text`` for a LaTeX table cell: specials escaped, –, ± and Δ as LaTeX."""
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("–", "--"),
        ("±", r"$\pm$"),
        ("Δ", r"$\Delta$"),
    ):
        text = text.replace(a, b)
    return text


def latex_notes(notes: Sequence[str]) -> str:
    """The provenance records below a LaTeX table (:func:`with_provenance`'s notes)."""
    return r"\par\footnotesize Provenance: " + "; ".join(latex_escape(n) for n in notes)


def to_latex(
    rows: Sequence[dict],
    columns: Sequence[str],
    digits: dict[str, int],
    caption: str,
    notes: Sequence[str] = (),
) -> str:
    """Rows as a LaTeX ``table`` (booktabs), paper rows above a rule, ours below."""
    esc = latex_escape
    out = [
        r"\begin{table}",
        r"\centering",
        f"\\caption{{{esc(caption)}}}",
        r"\begin{tabular}{"
        + "".join("r" if c in TABLE1_METRICS + TABLE2_METRICS else "l" for c in columns)
        + "}",
        r"\toprule",
        " & ".join(esc(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in rows:
        if previous not in (None, "ours") and row["source"] == "ours":
            out.append(r"\midrule")
        previous = row["source"]
        out.append(" & ".join(esc(_cell(row, c, digits.get(c, 4))) for c in columns) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        out.append(latex_notes(notes))
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def html_page(
    title: str,
    caption: str,
    columns: Sequence[str],
    body: Sequence[str],
    notes: Sequence[str] = (),
) -> str:
    """A standalone HTML page holding one table: ``body`` is its ``<tbody>`` lines.

    Cells of class ``num`` are right-aligned; a ``<tbody class="ours">`` is set off. ``notes``
    (plain text) are listed below the table under "Provenance".
    """
    from html import escape

    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{escape(title)}</title>',
        "<style>",
        "body { font-family: sans-serif; font-size: 14px; margin: 1em; }",
        "table { border-collapse: collapse; }",
        "caption { caption-side: top; text-align: left; padding-bottom: 0.5em; }",
        "th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ddd; text-align: left; }",
        "td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }",
        "tbody.ours { border-top: 2px solid #333; background: #f4f8ff; }",
        ".notes { font-size: 12px; color: #333; }",
        "</style>",
        "</head>",
        "<body>",
        "<table>",
        f"<caption>{escape(caption)}</caption>",
        "<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr></thead>",
        *body,
        "</table>",
        *(
            ['<p class="notes">Provenance:</p>', '<ul class="notes">']
            + [f"<li>{escape(n)}</li>" for n in notes]
            + ["</ul>"]
            if notes
            else []
        ),
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


def to_html(
    rows: Sequence[dict],
    columns: Sequence[str],
    digits: dict[str, int],
    caption: str,
    notes: Sequence[str] = (),
) -> str:
    """Rows as a standalone HTML page (the table of the Snakemake report), cells as Markdown's.

    The paper's rows and ours are separate ``<tbody>`` groups (classes ``paper`` and ``ours``);
    a number cell is right-aligned and reads "mean ± sd" in rows over seeds.
    """
    from html import escape

    numeric = [c for c in columns if c in digits or c in TABLE1_METRICS + TABLE2_METRICS]
    out = []
    previous = None
    for row in rows:
        if row["source"] != previous:
            if previous is not None:
                out.append("</tbody>")
            source = "ours" if row["source"] == "ours" else "paper"  # paper, leaderboard
            out.append(f'<tbody class="{source}">')
            previous = row["source"]
        cells = []
        for c in columns:
            cls = ' class="num"' if c in numeric else ""
            cells.append(f"<td{cls}>{escape(_cell(row, c, digits.get(c, 4)))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if previous is not None:
        out.append("</tbody>")
    return html_page(caption.split(":")[0], caption, columns, out, notes)


def with_provenance(rows: Sequence[dict]) -> tuple[list[dict], list[str]]:
    """Rows with their provenance fields and a ``provenance`` name, and the named records.

    Each of our rows gets :data:`unet_repro.provenance.FIELDS` (flattened over the steps of
    its scores files) and ``provenance`` = ``"P<k>"``, one name per distinct record; the notes
    are ``"P<k>: commit ...; config_digest ...; ..."`` in order of first use.
    """
    names: dict[tuple, str] = {}
    out = []
    for row in rows:
        fields = flatten(row.get("_provenance", []))
        row = {k: v for k, v in row.items() if k != "_provenance"}
        if fields:
            key = tuple(sorted(fields.items()))
            row.update(fields)
            row["provenance"] = names.setdefault(key, f"P{len(names) + 1}")
        out.append(row)
    notes = [f"{name}: " + "; ".join(f"{k} {v}" for k, v in key) for key, name in names.items()]
    return out, notes


def write_table(
    rows,
    columns,
    digits,
    caption: str,
    stem: str | Path,
    metrics: Sequence[str] = (),
    html: bool = False,
) -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` (and ``<stem>.html``) atomically.

    The CSV has a ``<metric>_sd`` column per metric (empty except in rows over seeds) and the
    provenance fields; the others a ``provenance`` column and the records below the table
    (:func:`with_provenance`).
    """
    stem = Path(stem)
    rows, notes = with_provenance(rows)
    shown = [*columns, "provenance"] if notes else list(columns)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    write_text(paths[0], to_csv(rows, [*csv_columns(columns, metrics), *PROVENANCE_FIELDS]))
    md_notes = "\n\nProvenance:\n\n" + "".join(f"- {n}\n" for n in notes) if notes else ""
    write_text(paths[1], f"{caption}\n\n" + to_markdown(rows, shown, digits) + md_notes)
    write_text(paths[2], to_latex(rows, shown, digits, caption, notes))
    if html:
        paths.append(stem.with_suffix(".html"))
        write_text(paths[3], to_html(rows, shown, digits, caption, notes))
    return paths


PROVENANCE_COLUMNS = [
    "scores",
    "seed",
    "step",
    "commit",
    "tree",
    "config_digest",
    "device",
    "threads",
    "versions",
]


def provenance_rows(scores: Sequence[dict]) -> list[dict]:
    """One row per scores file and step (train, predict, evaluate) with its whole record."""
    out = []
    for s in scores:
        what = " ".join(
            str(s[k]) for k in ("config", "dataset", "split", "sequence") if s.get(k) is not None
        )
        for step, rec in steps_of(s):
            versions = rec.get("versions") or {}
            out.append(
                {
                    "scores": what,
                    "seed": s.get("seed"),
                    "step": step,
                    "commit": rec.get("commit"),
                    "tree": rec.get("tree"),
                    "config_digest": rec.get("config_digest"),
                    "device": rec.get("device"),
                    "threads": rec.get("threads"),
                    "versions": ", ".join(f"{k} {v}" for k, v in versions.items() if v),
                }
            )
    return out


def provenance_html(scores: Sequence[dict], caption: str) -> str:
    """The report's provenance page: :func:`provenance_rows` as an HTML table."""
    from html import escape

    body = ['<tbody class="ours">']
    for row in provenance_rows(scores):
        cells = "".join(f"<td>{escape(_fmt(row[c], 4))}</td>" for c in PROVENANCE_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    body.append("</tbody>")
    return html_page("Provenance", caption, PROVENANCE_COLUMNS, body)
