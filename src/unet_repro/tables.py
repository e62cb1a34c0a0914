"""Tables 1 and 2 of the paper, regenerated beside the paper's rows.

The paper's rows are those of ``shared/docs/reference.md`` (the challenges' leaderboards of
2015, evaluated on the secret test labels). Our rows are held-out evaluations on the public
training data and are named as such, with their split, configuration and thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .io import write_text

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

TABLE1_COLUMNS = [
    "name",
    "source",
    "split",
    "config",
    "warping_error",
    "rand_error",
    "pixel_error",
    "thresholds",
]
TABLE2_COLUMNS = ["name", "source", "split", "config", "PhC-U373", "DIC-HeLa", "thresholds"]


def table1_rows(ours: Sequence[dict]) -> list[dict]:
    """Paper rows followed by ours.

    ``ours``: dicts with ``split``, ``config`` and, per metric ``m`` in warping_error,
    rand_error, pixel_error, ``m`` (best value) and ``m_threshold``.
    """
    rows = [
        dict(zip(TABLE1_COLUMNS, (n, "paper", "challenge test", "", w, r, p, ""), strict=True))
        for n, w, r, p in PAPER_TABLE1
    ]
    for s in ours:
        ths = "/".join(
            f"{s[m + '_threshold']:.1f}" for m in ("warping_error", "rand_error", "pixel_error")
        )
        rows.append(
            {
                "name": "u-net (this reproduction, held-out)",
                "source": "ours",
                "split": s["split"],
                "config": s["config"],
                "warping_error": s["warping_error"],
                "rand_error": s["rand_error"],
                "pixel_error": s["pixel_error"],
                "thresholds": f"w/R/p {ths}",
            }
        )
    return rows + _mean_rows(rows, ("warping_error", "rand_error", "pixel_error"))


def _mean_rows(rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """One 'mean over splits' row per configuration that has more than one split."""
    out = []
    for config in dict.fromkeys(r["config"] for r in rows if r["source"] == "ours"):
        mine = [r for r in rows if r["source"] == "ours" and r["config"] == config]
        if len(mine) < 2:
            continue
        mean = {"name": "u-net (this reproduction, held-out, mean)", "source": "ours"}
        mean.update(split=f"mean of {len(mine)} splits", config=config, thresholds="")
        for c in columns:
            values = [r[c] for r in mine if r[c] is not None]
            mean[c] = sum(values) / len(values) if values else None
        out.append(mean)
    return out


def table2_rows(ours: Sequence[dict]) -> list[dict]:
    """Paper rows followed by ours.

    ``ours``: dicts with ``dataset`` (PhC-C2DH-U373 or DIC-C2DH-HeLa), ``split``, ``config``,
    ``seg`` and ``threshold``; one row per split name, with both datasets' values when both
    have that split.
    """
    rows = [
        dict(zip(TABLE2_COLUMNS, (n, "paper", "challenge test", "", u, h, ""), strict=True))
        for n, u, h in PAPER_TABLE2
    ]
    column = {"PhC-C2DH-U373": "PhC-U373", "DIC-C2DH-HeLa": "DIC-HeLa"}
    by_split: dict[tuple[str, str], dict] = {}
    for s in ours:
        row = by_split.setdefault(
            (s["split"], s["config"]),
            {
                "name": "u-net (this reproduction, held-out)",
                "source": "ours",
                "split": f"{s['split']} (test {s['sequence']})" if "sequence" in s else s["split"],
                "config": s["config"],
                "PhC-U373": None,
                "DIC-HeLa": None,
                "thresholds": f"p > {s['threshold']}",
            },
        )
        row[column[s["dataset"]]] = s["seg"]
    rows += list(by_split.values())
    return rows + _mean_rows(rows, ("PhC-U373", "DIC-HeLa"))


def _fmt(value, digits: int) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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
        cells = [_fmt(row.get(c), digits.get(c, 4)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(
    rows: Sequence[dict], columns: Sequence[str], digits: dict[str, int], caption: str
) -> str:
    """Rows as a LaTeX ``table`` (booktabs), paper rows above a rule, ours below."""

    def esc(text: str) -> str:
        for a, b in (
            ("\\", r"\textbackslash{}"),
            ("_", r"\_"),
            ("&", r"\&"),
            ("%", r"\%"),
            ("#", r"\#"),
            ("–", "--"),
        ):
            text = text.replace(a, b)
        return text

    out = [
        r"\begin{table}",
        r"\centering",
        f"\\caption{{{esc(caption)}}}",
        r"\begin{tabular}{" + "l" * 4 + "r" * (len(columns) - 5) + "l}",
        r"\toprule",
        " & ".join(esc(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    previous = None
    for row in rows:
        if previous == "paper" and row["source"] == "ours":
            out.append(r"\midrule")
        previous = row["source"]
        out.append(" & ".join(esc(_fmt(row.get(c), digits.get(c, 4))) for c in columns) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table(rows, columns, digits, caption: str, stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex`` atomically."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    write_text(paths[0], to_csv(rows, columns))
    write_text(paths[1], f"{caption}\n\n" + to_markdown(rows, columns, digits))
    write_text(paths[2], to_latex(rows, columns, digits, caption))
    return paths
