"""Ablations: what each ingredient of the method is worth (beyond the paper).

The paper credits the weighted loss with separating touching cells, elastic deformation with
learning from few images, and averaging over rotated inputs with better scores, without
measuring any of it. An **ablation variant** is a configuration overlay: a mapping from a
variant name to the keys it changes (``ablations:`` in the configuration), deep-merged into the
configuration of the main run (the *full* method)::

    ablations:
      no_border: {weights: {w0: 0}}                          # w(x) = w_c(x)
      plain_ce: {weights: {w0: 0, class_balance: none}}      # w(x) = 1
      no_elastic: {train: {augment: {elastic: false}}}
      tta_none: {predict: {transforms: {isbi2012: [identity]}}}

A variant may change the sections :data:`OVERLAY_SECTIONS` only (the data, splits and seeds are
those of the full method, so every difference is paired); the merged configuration must pass
the workflow's schema.

Reuse. The workflow is a chain of stages (weight maps -> training -> prediction -> evaluation);
each stage's output depends on the settings :func:`stage_key` lists (and on the stages before
it). A variant's stage whose key equals the full method's reuses the full method's files
(``results/...``); the first stage that differs, and every stage after it, is computed under
the variant's own folder ``results/ablations/<variant>/...``. So a test-time-averaging variant
re-predicts with the full method's model, and a variant equal to the full method trains nothing.

The table (:func:`ablation_rows`): one row per variant, the Table 1 metrics (ISBI 2012 held-out
splits) and the Table 2 metric (CTC SEG per dataset), each averaged over splits and held-out
sequences per seed; then mean and sample standard deviation over seeds; and beside each value
its difference to the full method, computed per seed (paired) before averaging.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .config import tile_size_for
from .provenance import steps_of
from .tables import html_page, latex_escape, latex_notes, mean_sd

#: Configuration sections a variant may change.
OVERLAY_SECTIONS = (
    "weights",
    "weights_overrides",
    "model",
    "model_overrides",
    "train",
    "train_overrides",
    "predict",
    "evaluate",
)
#: The workflow's stages, in order; each stage's key contains those of the stages before it.
STAGES = ("weights", "train", "predict", "evaluate")
#: Name of the main run in the table.
FULL = "full"
#: Table columns per metric: Table 1 (ISBI) and Table 2 (CTC SEG per dataset).
METRICS = ("warping_error", "rand_error", "pixel_error", "PhC-U373", "DIC-HeLa")
CTC_COLUMN = {"PhC-C2DH-U373": "PhC-U373", "DIC-C2DH-HeLa": "DIC-HeLa"}
#: ``weights`` keys that concern partially annotated CTC frames only.
CTC_ONLY_WEIGHTS = (
    "unannotated",
    "missing_annotations",
    "ignore_margin",
    "ignore_fallback_radius",
    "training_data",
    "holdout_every",
    "touching_pastes",
    "touching_overlap",
    "touching_roundness",
)
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay``'s values; mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def check_overlays(ablations: Mapping[str, Any] | None) -> None:
    """Names and top-level sections of the ``ablations`` overlays (ValueError naming the key).

    The values inside the sections are checked by validating each merged configuration
    against the schema (:func:`variant_config`, then the workflow's ``validate``).
    """
    for name, overlay in (ablations or {}).items():
        where = f"config: ablations.{name}"
        if not _NAME.match(str(name)) or name == FULL:
            raise ValueError(f"{where}: a variant name is letters, digits, _ and -, not {FULL!r}")
        if not isinstance(overlay, Mapping) or not overlay:
            raise ValueError(f"{where}: must map configuration keys to new values")
        for section, value in overlay.items():
            if section not in OVERLAY_SECTIONS:
                raise ValueError(
                    f"{where}.{section}: a variant may change only "
                    f"{', '.join(OVERLAY_SECTIONS)} (data, splits and seeds stay the full "
                    "method's)"
                )
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}.{section}: must be a mapping of keys to change")


def variant_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The configuration of variant ``name``: the overlay merged into ``config``."""
    ablations = config.get("ablations") or {}
    if name == FULL:
        return dict(config)
    if name not in ablations:
        raise KeyError(f"config: no ablation variant {name!r}; defined: {', '.join(ablations)}")
    return deep_merge(config, ablations[name])


def selected_variants(config: Mapping[str, Any]) -> list[str]:
    """The ablation variants to build: ``ablation_variants`` (in its order), default every one.

    ValueError naming the key for a name that ``ablations`` does not define or ``full``.
    """
    defined = list(config.get("ablations") or {})
    chosen = config.get("ablation_variants")
    if chosen is None:
        return defined
    unknown = [name for name in chosen if name not in defined]
    if unknown:
        raise ValueError(
            f"config: ablation_variants: {', '.join(map(repr, unknown))} not defined in "
            f"`ablations` ({', '.join(defined) or 'none defined'})"
        )
    return list(chosen)


def changes(overlay: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The overlay as ``key.path=value`` strings, e.g. ``["weights.w0=0"]``."""
    out = []
    for key, value in overlay.items():
        if isinstance(value, Mapping):
            out += changes(value, f"{prefix}{key}.")
        else:
            text = json.dumps(value) if not isinstance(value, str) else value
            out.append(f"{prefix}{key}={text}")
    return out


def dataset_settings(config: Mapping[str, Any], section: str, dataset: str) -> dict[str, Any]:
    """``config[section]`` for ``dataset``: updated by ``<section>_overrides[dataset]``
    (``weights`` by ``weights_overrides``, ``model`` by ``model_overrides``, ``train`` by
    ``train_overrides``); a new dict."""
    out = dict(config.get(section) or {})
    out.update((config.get(f"{section}_overrides") or {}).get(dataset, {}))
    return out


def stage_key(config: Mapping[str, Any], stage: str, dataset: str) -> str:
    """The settings that determine ``stage``'s outputs for ``dataset`` (a JSON string).

    Settings that cannot affect the dataset are left out (the ignore-region settings and the
    ``evaluate.ctc_*`` keys for ISBI, the other ``evaluate`` keys for the CTC data), so a
    variant that changes only those reuses the full method's files for that dataset.

    weights: ``weights``; train: + ``model`` and ``train``; each updated by its overrides for
    the dataset (:func:`dataset_settings`);
    predict: + ``predict`` with this dataset's transforms only; evaluate: + ``evaluate``.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    weights = dataset_settings(config, "weights", dataset)
    if dataset not in CTC_COLUMN:  # settings of partially annotated CTC frames
        weights = {k: v for k, v in weights.items() if k not in CTC_ONLY_WEIGHTS}
    key: dict[str, Any] = {"weights": weights}
    if STAGES.index(stage) >= 1:
        key.update(
            model=dataset_settings(config, "model", dataset),
            train=dataset_settings(config, "train", dataset),
        )
    if STAGES.index(stage) >= 2:
        predict = {k: v for k, v in config.get("predict", {}).items() if k != "transforms"}
        predict["transforms"] = (config.get("predict", {}).get("transforms") or {}).get(dataset)
        predict["tile_size"] = tile_size_for(config.get("predict", {}), dataset)
        key["predict"] = predict
    if STAGES.index(stage) >= 3:
        ctc = dataset in CTC_COLUMN
        key["evaluate"] = {
            k: v for k, v in config.get("evaluate", {}).items() if k.startswith("ctc_") == ctc
        }
    return json.dumps(key, sort_keys=True, default=str)


def stage_root(config: Mapping[str, Any], name: str, stage: str, dataset: str) -> str:
    """Folder whose ``stage`` outputs variant ``name`` uses for ``dataset``.

    ``results`` (the full method's) when the variant's :func:`stage_key` equals the full
    method's, else ``results/ablations/<name>``.
    """
    if name == FULL:
        return "results"
    same = stage_key(variant_config(config, name), stage, dataset) == stage_key(
        config, stage, dataset
    )
    return "results" if same else f"results/ablations/{name}"


def root_name(root: str) -> str:
    """The variant of a results folder: ``results`` -> full, ``results/ablations/x`` -> x."""
    if root == "results":
        return FULL
    m = re.fullmatch(r"results/ablations/([A-Za-z0-9_-]+)", root)
    if not m:
        raise ValueError(f"not a results folder: {root!r}")
    return m.group(1)


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


def _per_seed(scores: Sequence[Mapping[str, Any]]) -> dict[str, dict[Any, float]]:
    """metric -> seed -> mean over that seed's splits (and test sequences)."""
    values: dict[str, dict[Any, list[float]]] = {m: {} for m in METRICS}
    for s in scores:
        if "dataset" in s and s["dataset"] in CTC_COLUMN:
            pairs = [(CTC_COLUMN[s["dataset"]], s["seg"])]
        else:
            pairs = [(m, s[m]) for m in METRICS[:3]]
        for metric, value in pairs:
            if value is not None:
                values[metric].setdefault(s.get("seed"), []).append(float(value))
    return {m: {k: sum(v) / len(v) for k, v in by.items()} for m, by in values.items()}


def _units(scores: Sequence[Mapping[str, Any]]) -> dict[str, set]:
    """metric -> the (split, sequence, seed) units it was measured on."""
    out: dict[str, set] = {m: set() for m in METRICS}
    for s in scores:
        unit = (s["split"], s.get("sequence"), s.get("seed"))
        if "dataset" in s and s["dataset"] in CTC_COLUMN:
            out[CTC_COLUMN[s["dataset"]]].add(unit)
        else:
            for m in METRICS[:3]:
                out[m].add(unit)
    return out


def ablation_rows(
    scores: Mapping[str, Sequence[Mapping[str, Any]]],
    overlays: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the ablation table, the full method first.

    Parameters
    ----------
    scores : mapping
        Variant name -> its score dicts: ISBI ``scores.json`` (``split``, ``seed``,
        warping_error, rand_error, pixel_error) and CTC ``seg.json`` (``dataset``, ``split``,
        ``sequence``, ``seed``, ``seg``). Must contain :data:`FULL`.
    overlays : mapping, optional
        Variant name -> overlay, for the ``changes`` column.

    Returns
    -------
    list of dict
        Keys ``variant``, ``changes``, ``seeds`` and, per metric ``m`` of :data:`METRICS`:
        ``m`` and ``m_sd`` (mean and sample sd over seeds of the per-seed mean over splits),
        ``m_delta`` and ``m_delta_sd`` (the same for variant minus full, paired by seed). A
        variant evaluated on other splits, sequences or seeds than the full method for a metric
        is an error (its difference would not be paired).
    """
    if FULL not in scores:
        raise ValueError(f"the scores of the full method ({FULL!r}) are missing")
    full = _per_seed(scores[FULL])
    full_units = _units(scores[FULL])
    rows = []
    for name in [FULL, *(n for n in scores if n != FULL)]:
        per_seed, units = _per_seed(scores[name]), _units(scores[name])
        seeds = sorted({s.get("seed") for s in scores[name]}, key=str)
        row: dict[str, Any] = {
            "variant": name,
            "changes": "; ".join(changes((overlays or {}).get(name, {}))) or "–",
            "seeds": len(seeds),
        }
        for m in METRICS:
            if units[m] and full_units[m] and units[m] != full_units[m]:
                raise ValueError(
                    f"variant {name}: {m} measured on {sorted(units[m], key=str)}, the full "
                    f"method on {sorted(full_units[m], key=str)}"
                )
            row[m], row[m + "_sd"] = mean_sd(list(per_seed[m].values()))
            deltas = [v - full[m][k] for k, v in per_seed[m].items() if k in full[m]]
            if name == FULL:
                deltas = []
            row[m + "_delta"], row[m + "_delta_sd"] = mean_sd(deltas)
        row["_provenance"] = [p for score in scores[name] for p in steps_of(score)]
        rows.append(row)
    return rows


TABLE_COLUMNS = ["variant", "changes", "seeds", *METRICS]
DIGITS = {"warping_error": 6, "rand_error": 4, "pixel_error": 4, "PhC-U373": 4, "DIC-HeLa": 4}


def csv_columns() -> list[str]:
    """Columns of ``ablations.csv``: value, sd, difference and its sd per metric."""
    cols = ["variant", "changes", "seeds"]
    for m in METRICS:
        cols += [m, m + "_sd", m + "_delta", m + "_delta_sd"]
    return cols


def format_cell(row: Mapping[str, Any], metric: str) -> str:
    """``value ± sd (Δ +d ± sd)`` with the metric's digits; "–" for no value."""
    value = row.get(metric)
    if value is None:
        return "–"
    digits = DIGITS[metric]
    text = f"{value:.{digits}f}"
    if row.get(metric + "_sd") is not None:
        text += f" ± {row[metric + '_sd']:.{digits}f}"
    if row.get(metric + "_delta") is not None:
        text += f" (Δ {row[metric + '_delta']:+.{digits}f}"
        if row.get(metric + "_delta_sd") is not None:
            text += f" ± {row[metric + '_delta_sd']:.{digits}f}"
        text += ")"
    return text


def to_markdown(rows: Sequence[Mapping[str, Any]], caption: str, notes: Sequence[str] = ()) -> str:
    """The table as Markdown: one row per variant, one column per metric; ``notes`` (the
    provenance records, :func:`unet_repro.tables.with_provenance`) below it."""
    columns = TABLE_COLUMNS + (["provenance"] if notes else [])
    lines = [
        caption,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [str(row["variant"]), str(row["changes"]), str(row["seeds"])]
        cells += [format_cell(row, m) for m in METRICS]
        cells += [str(row.get("provenance") or "–")] if notes else []
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Provenance:", "", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def to_latex(rows: Sequence[Mapping[str, Any]], caption: str, notes: Sequence[str] = ()) -> str:
    """The table as a LaTeX ``table`` (booktabs), the provenance ``notes`` below it."""
    esc = latex_escape
    columns = TABLE_COLUMNS + (["provenance"] if notes else [])

    out = [
        r"\begin{table}",
        r"\centering",
        f"\\caption{{{esc(caption)}}}",
        r"\begin{tabular}{lll" + "r" * len(METRICS) + ("l" if notes else "") + "}",
        r"\toprule",
        " & ".join(esc(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        cells = [str(row["variant"]), str(row["changes"]), str(row["seeds"])]
        cells += [format_cell(row, m) for m in METRICS]
        cells += [str(row.get("provenance") or "–")] if notes else []
        out.append(" & ".join(esc(c) for c in cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        out.append(latex_notes(notes))
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def to_html(rows: Sequence[Mapping[str, Any]], caption: str, notes: Sequence[str] = ()) -> str:
    """The table as a standalone HTML page (the report's item), cells as in Markdown."""
    from html import escape

    columns = TABLE_COLUMNS + (["provenance"] if notes else [])
    body = ["<tbody>"]
    for row in rows:
        cells = [f"<td>{escape(str(row[c]))}</td>" for c in ("variant", "changes", "seeds")]
        cells += [f'<td class="num">{escape(format_cell(row, m))}</td>' for m in METRICS]
        if notes:
            cells.append(f"<td>{escape(str(row.get('provenance') or '–'))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return html_page("Ablations", caption, columns, [*body, "</tbody>"], notes)


def plot_differences(rows: Sequence[Mapping[str, Any]], out_png) -> None:
    """One panel per metric: each variant's difference to the full method (± sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(r.get(m) is not None for r in rows)]
    variants = [r for r in rows if r["variant"] != FULL]
    fig, axes = plt.subplots(
        1,
        max(len(metrics), 1),
        figsize=(2.6 * max(len(metrics), 1) + 1.2, 0.45 * max(len(variants), 1) + 1.6),
        layout="constrained",
        squeeze=False,
    )
    better_lower = {"warping_error", "rand_error", "pixel_error"}
    for ax, m in zip(axes[0], metrics, strict=False):
        ys = range(len(variants))
        deltas = [r.get(m + "_delta") or 0.0 for r in variants]
        errs = [r.get(m + "_delta_sd") or 0.0 for r in variants]
        good = [(d < 0) if m in better_lower else (d > 0) for d in deltas]
        colors = ["tab:green" if g else "tab:red" for g in good]
        ax.barh(list(ys), deltas, xerr=errs, color=colors, alpha=0.8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(list(ys), [r["variant"] for r in variants] if ax is axes[0][0] else [])
        ax.invert_yaxis()
        arrow = "lower is better" if m in better_lower else "higher is better"
        ax.set_title(f"Δ {m}\n({arrow})", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle("Ablations: variant minus full method (green: better)", fontsize=10)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
