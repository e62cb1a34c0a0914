"""Tables 1 and 2: the paper's rows as published, ours beside them, in three formats."""

import csv
import io

import pytest

from unet_repro.provenance import FIELDS as PROVENANCE_FIELDS
from unet_repro.tables import (
    TABLE1_COLUMNS,
    TABLE2_COLUMNS,
    postprocessing,
    table1_rows,
    table2_rows,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
    write_table,
)

OURS1 = {
    "split": "fold4",
    "config": "quick",
    "warping_error": 0.00123,
    "warping_error_threshold": 0.5,
    "rand_error": 0.1,
    "rand_error_threshold": 0.30000000000000004,
    "pixel_error": 0.08,
    "pixel_error_threshold": 0.6,
    "vrand_thinned": 0.91,
    "vrand_thinned_threshold": 0.7,
    "vinfo_thinned": 0.95,
    "vinfo_thinned_threshold": 0.7999999999999999,
}


def test_table1_has_paper_rows_then_ours():
    rows = table1_rows([OURS1])
    ours = next(r for r in rows if r["source"] == "ours")
    assert ours["vrand_thinned"] == 0.91 and ours["vinfo_thinned"] == 0.95
    assert ours["thresholds"] == "w/R/p 0.5/0.3/0.6, V_Rand/V_Info 0.7/0.8"
    # the paper predates today's leaderboard measures: no value, "–" in the text tables
    assert all(r["vrand_thinned"] is None for r in rows if r["source"] == "paper")
    assert "| – | – |" in to_markdown(rows, TABLE1_COLUMNS, {})
    unet = next(r for r in rows if r["name"].startswith("u-net (paper"))
    assert (unet["warping_error"], unet["rand_error"], unet["pixel_error"]) == (
        0.000353,
        0.0382,
        0.0611,
    )
    assert [r["source"] for r in rows] == ["paper"] * 6 + ["ours"]
    assert rows[-1]["thresholds"] == "w/R/p 0.5/0.3/0.6, V_Rand/V_Info 0.7/0.8"
    assert "held-out" in rows[-1]["name"] and rows[-1]["split"] == "fold4"


def test_table2_joins_datasets_of_a_split():
    ours = [
        {
            "dataset": "PhC-C2DH-U373",
            "split": "train01",
            "sequence": "02",
            "config": "q",
            "seg": 0.8,
            "threshold": 0.5,
        },
        {
            "dataset": "DIC-C2DH-HeLa",
            "split": "train01",
            "sequence": "02",
            "config": "q",
            "seg": 0.6,
            "threshold": 0.5,
        },
    ]
    rows = table2_rows(ours)
    mine = [r for r in rows if r["source"] == "ours"]
    assert len(mine) == 1 and (mine[0]["PhC-U373"], mine[0]["DIC-HeLa"]) == (0.8, 0.6)
    assert mine[0]["split"] == "train01 (test 02)"
    hous = next(r for r in rows if r["name"].startswith("HOUS"))
    assert hous["DIC-HeLa"] is None


def test_formats_round_trip(tmp_path):
    rows = table1_rows([OURS1])
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows, TABLE1_COLUMNS))))
    assert float(parsed[-1]["warping_error"]) == 0.00123 and len(parsed) == len(rows)
    md = to_markdown(rows, TABLE1_COLUMNS, {"warping_error": 7})
    assert md.count("\n") == len(rows) + 2 and "0.0012300" in md
    tex = to_latex(rows, TABLE1_COLUMNS, {}, "Table 1")
    assert tex.count(r"\\") == len(rows) + 1 and r"\_" in tex and tex.count(r"\midrule") == 2
    paths = write_table(table2_rows([]), TABLE2_COLUMNS, {}, "cap", tmp_path / "table2")
    assert [p.name for p in paths] == ["table2.csv", "table2.md", "table2.tex"]
    assert "0.9203" in paths[0].read_text()


def test_html_table_cells_as_markdown(tmp_path):
    """The report's HTML table: paper rows, then ours, cells as in Markdown (mean ± sd)."""
    rows = table1_rows([_isbi("fold0", 0, 0.001, 0.1, 0.05), _isbi("fold0", 1, 0.002, 0.3, 0.06)])
    digits = {"warping_error": 7, "rand_error": 4}
    page = to_html(rows, TABLE1_COLUMNS, digits, "Table 1: a <b> & c")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "<caption>Table 1: a &lt;b&gt; &amp; c</caption>" in page
    assert page.count("<tr>") == len(rows) + 1  # header + one per row
    assert page.index('<tbody class="paper">') < page.index('<tbody class="ours">')
    md = to_markdown(rows, TABLE1_COLUMNS, digits)
    for cell in ("0.0003530", "0.0382", "0.2000 ± 0.1414", "mean ± sd of 2"):
        assert cell in md and cell in page
    paths = write_table(rows, TABLE1_COLUMNS, digits, "cap", tmp_path / "t1", html=True)
    assert [p.name for p in paths] == ["t1.csv", "t1.md", "t1.tex", "t1.html"]
    assert "0.2000 ± 0.1414" in paths[3].read_text(encoding="utf-8")


def test_mean_row_over_splits():
    other = {**OURS1, "split": "fold0", "warping_error": 0.00077, "rand_error": 0.3}
    rows = table1_rows([OURS1, other])
    mean = rows[-1]
    assert mean["split"] == "mean of 2 splits" and mean["config"] == "quick"
    assert mean["warping_error"] == (0.00123 + 0.00077) / 2 and mean["rand_error"] == 0.2
    assert len(table1_rows([OURS1])) == 7  # no mean row for a single split
    ours = [
        {"dataset": d, "split": s, "sequence": q, "config": "p", "seg": v, "threshold": 0.5}
        for d, s, q, v in [
            ("PhC-C2DH-U373", "train01", "02", 0.9),
            ("PhC-C2DH-U373", "train02", "01", 0.8),
            ("DIC-C2DH-HeLa", "train01", "02", 0.7),
        ]
    ]
    mean = table2_rows(ours)[-1]
    assert mean["PhC-U373"] == pytest.approx(0.85) and mean["DIC-HeLa"] == 0.7


def _seg(dataset, split, sequence, seg, **post):
    det = min(1.0, seg + 0.05)
    return {
        "dataset": dataset,
        "split": split,
        "sequence": sequence,
        "config": "p",
        "seg": seg,
        "det": det,
        "op_csb": (seg + det) / 2,
        "threshold": 0.5,
        **post,
    }


def test_table2_has_det_op_csb_and_the_leader_row():
    rows = table2_rows([_seg("PhC-C2DH-U373", "train01", "02", 0.8)])
    leader = next(r for r in rows if r["source"] == "leaderboard")
    assert "test set" in leader["name"] and leader["split"] == "challenge test"
    assert (leader["PhC-U373"], leader["PhC-U373_DET"], leader["PhC-U373_OP_CSB"]) == (
        0.931,
        0.990,
        0.961,
    )
    assert (leader["DIC-HeLa"], leader["DIC-HeLa_DET"], leader["DIC-HeLa_OP_CSB"]) == (
        0.887,
        0.975,
        0.926,
    )
    ours = rows[-1]
    assert ours["source"] == "ours" and ours["PhC-U373_DET"] == pytest.approx(0.85)
    assert ours["PhC-U373_OP_CSB"] == pytest.approx(0.825) and ours["DIC-HeLa_DET"] is None
    paper = [r for r in rows if r["source"] == "paper"]
    assert all(r["PhC-U373_DET"] is None for r in paper)  # the paper predates DET
    html = to_html(rows, TABLE2_COLUMNS, {}, "Table 2: x")
    assert html.count('<tbody class="paper">') == 2 and html.count('<tbody class="ours">') == 1


def test_table2_keeps_every_test_sequence_of_a_split():
    ours = [
        _seg("PhC-C2DH-U373", "both", "01", 0.9),
        _seg("PhC-C2DH-U373", "both", "02", 0.8),
        _seg("DIC-C2DH-HeLa", "both", "02", 0.7),
    ]
    mine = [r for r in table2_rows(ours) if r["source"] == "ours"]
    by_split = {r["split"]: (r["PhC-U373"], r["DIC-HeLa"]) for r in mine}
    assert by_split["both (test 01)"] == (0.9, None)
    assert by_split["both (test 02)"] == (0.8, 0.7)
    # the same dataset twice under one key would lose a value
    with pytest.raises(ValueError, match="two scores for PhC-C2DH-U373 split both"):
        table2_rows([*ours, _seg("PhC-C2DH-U373", "both", "01", 0.1)])


def test_table2_mean_counts_per_column():
    ours = [
        _seg("PhC-C2DH-U373", "train01", "02", 0.9),
        _seg("PhC-C2DH-U373", "train02", "01", 0.8),
        _seg("DIC-C2DH-HeLa", "train01", "02", 0.7),
    ]
    mean = table2_rows(ours)[-1]
    assert mean["split"].startswith("mean of held-out sequences (PhC-U373: 2, DIC-HeLa: 1")
    assert mean["PhC-U373"] == pytest.approx(0.85) and mean["DIC-HeLa"] == 0.7
    both = [*ours, _seg("DIC-C2DH-HeLa", "train02", "01", 0.5)]
    assert table2_rows(both)[-1]["split"] == "mean of 2 held-out sequences"
    only_u373 = table2_rows(ours[:2])[-1]
    assert only_u373["DIC-HeLa"] is None and "DIC-HeLa: 0" in only_u373["split"]


def test_table2_postprocessing_column():
    full = {"threshold": 0.62, "min_size": 30, "expand": 1, "fill_holes": True}
    assert postprocessing(full) == "p > 0.62, min 30 px, +1 px, holes filled"
    assert postprocessing({"threshold": 0.5, "min_size": 0}) == "p > 0.5"  # older json
    grown = {"threshold": 0.95, "mask_threshold": 0.5, "keep_unseeded": True, "split_depth": 24}
    assert postprocessing(grown) == (
        "p > 0.95, grown into p > 0.5, unseeded kept, split at necks of 24 px"
    )
    assert postprocessing({**grown, "keep_unseeded": False, "split_depth": None}) == (
        "p > 0.95, grown into p > 0.5"
    )
    same = [
        _seg("PhC-C2DH-U373", "train01", "02", 0.9, min_size=30),
        _seg("DIC-C2DH-HeLa", "train01", "02", 0.7, min_size=30),
    ]
    assert table2_rows(same)[-1]["thresholds"] == "p > 0.5, min 30 px"
    differ = [same[0], _seg("DIC-C2DH-HeLa", "train01", "02", 0.7, expand=2, fill_holes=True)]
    assert table2_rows(differ)[-1]["thresholds"] == (
        "PhC-U373: p > 0.5, min 30 px; DIC-HeLa: p > 0.5, +2 px, holes filled"
    )


def test_table2_names_the_training_data_and_where_the_cut_was_chosen():
    chosen = {
        "postprocess": "selected",
        "selected_on": [{"prepared": "results/prepared/X/01.npz", "frames": [0, 8, 12]}],
        "selection_reference": "silver truth (ST/SEG) of frames not trained on",
    }
    text = postprocessing({"threshold": 0.9, "min_size": 100, **chosen})
    assert text == "p > 0.9, min 100 px (chosen on 3 unseen training frames vs ST)"
    gold = {**chosen, "selection_reference": "gold truth (GT/SEG) of the trained-on frames"}
    assert postprocessing({"threshold": 0.9, **gold}).endswith(
        "(chosen on 3 trained-on gold frames)"
    )
    rows = table2_rows(
        [
            {**_seg("PhC-C2DH-U373", "train01", "02", 0.9), "training_data": "GT+ST"},
            {**_seg("DIC-C2DH-HeLa", "train01", "02", 0.7), "training_data": "GT+ST"},
        ]
    )
    paper = {r["name"]: r["training_data"] for r in rows if r["source"] == "paper"}
    assert paper["u-net (2015, paper, test set)"] == "GT" and paper["KTH-SE (2014)"] == ""
    assert rows[-1]["training_data"] == "GT+ST"
    mixed = table2_rows(
        [
            {**_seg("PhC-C2DH-U373", "train01", "02", 0.9), "training_data": "ST"},
            _seg("DIC-C2DH-HeLa", "train01", "02", 0.7),  # a file from before: GT
        ]
    )
    assert mixed[-1]["training_data"] == "PhC-U373: ST; DIC-HeLa: GT"


def _isbi(split, seed, w, r, p):
    return {
        **OURS1,
        "split": split,
        "seed": seed,
        "warping_error": w,
        "rand_error": r,
        "pixel_error": p,
    }


def test_seeds_give_a_row_each_then_mean_and_sample_sd():
    import statistics

    values = {  # (split, seed): rand error
        ("fold0", 0): 0.10,
        ("fold0", 1): 0.14,
        ("fold0", 2): 0.09,
        ("fold1", 0): 0.20,
        ("fold1", 1): 0.16,
        ("fold1", 2): 0.25,
    }
    ours = [_isbi(s, k, 0.001 * (k + 1), v, 0.05) for (s, k), v in values.items()]
    rows = [r for r in table1_rows(ours) if r["source"] == "ours"]
    assert [r["seed"] for r in rows[:6]] == [0, 1, 2, 0, 1, 2]
    per_split = [r for r in rows if r["name"].endswith("mean over seeds)")]
    assert [r["split"] for r in per_split] == ["fold0", "fold1"]
    for row in per_split:
        mine = [v for (s, _), v in values.items() if s == row["split"]]
        assert row["rand_error"] == pytest.approx(statistics.mean(mine))
        assert row["rand_error_sd"] == pytest.approx(statistics.stdev(mine))  # n - 1
        assert row["seed"] == "mean ± sd of 3"
    overall = rows[-1]
    assert overall["split"] == "mean of 2 splits"
    per_seed_means = [(values[("fold0", k)] + values[("fold1", k)]) / 2 for k in range(3)]
    assert overall["rand_error"] == pytest.approx(statistics.mean(per_seed_means))
    assert overall["rand_error_sd"] == pytest.approx(statistics.stdev(per_seed_means))
    assert overall["pixel_error_sd"] == pytest.approx(0.0)
    text = to_markdown(rows, TABLE1_COLUMNS, {"rand_error": 4})
    sd0 = statistics.stdev([0.10, 0.14, 0.09])
    assert f"{statistics.mean([0.10, 0.14, 0.09]):.4f} ± {sd0:.4f}" in text
    assert r"$\pm$" in to_latex(rows, TABLE1_COLUMNS, {}, "c")


def test_one_seed_has_no_sd_and_csv_has_sd_columns(tmp_path):
    ours = [_isbi("fold0", 0, 0.001, 0.1, 0.05), _isbi("fold1", 0, 0.002, 0.2, 0.06)]
    rows = table1_rows(ours)
    assert not any(r["name"].endswith("mean over seeds)") for r in rows)
    assert rows[-1]["split"] == "mean of 2 splits" and rows[-1]["rand_error_sd"] is None
    assert "±" not in to_markdown(rows, TABLE1_COLUMNS, {})
    metrics = ("warping_error", "rand_error", "pixel_error")
    write_table(rows, TABLE1_COLUMNS, {}, "c", tmp_path / "t1", metrics)
    table = list(csv.DictReader(io.StringIO((tmp_path / "t1.csv").read_text())))
    assert list(table[0])[-9:] == [
        "warping_error_sd",
        "rand_error_sd",
        "pixel_error_sd",
        *PROVENANCE_FIELDS,
    ]
    assert float(table[-1]["rand_error"]) == pytest.approx(0.15)
    assert table[-1]["rand_error_sd"] == "" and table[-2]["seed"] == "0"


def test_table2_seeds_per_test_sequence():
    ours = [
        {
            "dataset": d,
            "split": "train01",
            "sequence": "02",
            "seed": k,
            "config": "q",
            "seg": seg,
            "threshold": 0.5,
        }
        for d, base in (("PhC-C2DH-U373", 0.8), ("DIC-C2DH-HeLa", 0.6))
        for k, seg in enumerate((base, base + 0.02, base - 0.01))
    ]
    rows = [r for r in table2_rows(ours) if r["source"] == "ours"]
    assert len(rows) == 4  # 3 seeds, then their mean (one split: no mean over splits)
    assert rows[-1]["PhC-U373"] == pytest.approx(0.80333333)
    assert rows[-1]["DIC-HeLa_sd"] == pytest.approx(0.015275252)
