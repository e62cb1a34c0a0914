"""Ablation variants: overlay validation, reuse of the full method's stages, the table."""

import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from unet_repro.ablations import (
    FULL,
    ablation_rows,
    check_overlays,
    dataset_settings,
    deep_merge,
    selected_variants,
    stage_root,
    to_markdown,
    variant_config,
)

REPO = Path(__file__).resolve().parents[1]

CONFIG = {
    "weights": {"w0": 10, "sigma": 5, "class_balance": "inverse_frequency"},
    "model": {"variant": "paper", "base_channels": 16},
    "train": {"iterations": 100, "augment": {"elastic": True, "rot90": True}},
    "train_overrides": {},
    "predict": {"tile_size": 572, "transforms": {"isbi2012": ["identity", "rot90"]}},
    "evaluate": {"ctc_postprocess": "select"},
    "ablations": {
        "same": {"train": {"iterations": 100}},
        "no_border": {"weights": {"w0": 0}},
        "no_elastic": {"train": {"augment": {"elastic": False}}},
        "tta_none": {"predict": {"transforms": {"isbi2012": ["identity"]}}},
        "hela_longer": {"train_overrides": {"DIC-C2DH-HeLa": {"iterations": 200}}},
        "u373_wide": {"model_overrides": {"PhC-C2DH-U373": {"base_channels": 24}}},
        "u373_same": {"model_overrides": {"PhC-C2DH-U373": {"base_channels": 16}}},
        "u373_cores": {"weights_overrides": {"PhC-C2DH-U373": {"core_erosion": 2}}},
        "pasted": {"weights": {"touching_pastes": 2}},
        "no_ignore": {"weights": {"unannotated": "background"}},
        "ctc_fixed": {"evaluate": {"ctc_postprocess": "fixed"}},
    },
}


def test_deep_merge_keeps_untouched_keys():
    merged = deep_merge(CONFIG, CONFIG["ablations"]["no_elastic"])
    assert merged["train"]["augment"] == {"elastic": False, "rot90": True}
    assert merged["train"]["iterations"] == 100 and CONFIG["train"]["augment"]["elastic"]


@pytest.mark.parametrize(
    ("ablations", "message"),
    [
        ({"x": {"splits": {}}}, "ablations.x.splits: a variant may change only"),
        ({"x": {"seeds": [1]}}, "ablations.x.seeds: a variant may change only"),
        ({"x": {}}, "ablations.x: must map"),
        ({"x": {"weights": 3}}, "ablations.x.weights: must be a mapping"),
        ({"full": {"weights": {"w0": 0}}}, "ablations.full: a variant name"),
        ({"a b": {"weights": {"w0": 0}}}, "ablations.a b: a variant name"),
    ],
)
def test_bad_overlays_name_the_key(ablations, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        check_overlays(ablations)


def test_good_overlays_pass():
    check_overlays(CONFIG["ablations"])
    check_overlays(None)


@pytest.mark.parametrize(
    ("name", "dataset", "first_own_stage"),
    [
        ("same", "isbi2012", None),  # equal to the full method: reuses everything
        ("no_border", "isbi2012", "weights"),
        ("no_elastic", "isbi2012", "train"),
        ("tta_none", "isbi2012", "predict"),  # the full method's model, re-predicted
        ("tta_none", "DIC-C2DH-HeLa", None),  # changes the ISBI transforms only
        ("hela_longer", "DIC-C2DH-HeLa", "train"),
        ("hela_longer", "isbi2012", None),
        ("u373_wide", "PhC-C2DH-U373", "train"),
        ("u373_wide", "DIC-C2DH-HeLa", None),  # another dataset's network
        ("u373_same", "PhC-C2DH-U373", None),  # the override equals `model`
        ("u373_cores", "PhC-C2DH-U373", "weights"),
        ("u373_cores", "DIC-C2DH-HeLa", None),  # another dataset's weight maps
        ("u373_cores", "isbi2012", None),
        ("pasted", "PhC-C2DH-U373", "weights"),
        ("pasted", "isbi2012", None),  # CTC only: ISBI reuses the full method's files
        ("no_ignore", "DIC-C2DH-HeLa", "weights"),
        ("no_ignore", "isbi2012", None),  # ISBI has no partially annotated frames
        ("ctc_fixed", "PhC-C2DH-U373", "evaluate"),
        ("ctc_fixed", "isbi2012", None),
    ],
)
def test_stages_before_the_first_change_reuse_the_full_method(name, dataset, first_own_stage):
    stages = ["weights", "train", "predict", "evaluate"]
    roots = [stage_root(CONFIG, name, s, dataset) for s in stages]
    k = stages.index(first_own_stage) if first_own_stage else len(stages)
    assert roots == ["results"] * k + [f"results/ablations/{name}"] * (len(stages) - k)
    assert all(stage_root(CONFIG, FULL, s, dataset) == "results" for s in stages)


def test_a_tile_size_of_one_dataset_re_predicts_that_dataset_only():
    config = {
        **CONFIG,
        "ablations": {"hela_tile": {"predict": {"tile_size": {"DIC-C2DH-HeLa": 700}}}},
    }
    assert stage_root(config, "hela_tile", "train", "DIC-C2DH-HeLa") == "results"
    assert (
        stage_root(config, "hela_tile", "predict", "DIC-C2DH-HeLa") == "results/ablations/hela_tile"
    )
    for dataset in ("isbi2012", "PhC-C2DH-U373"):  # still 572 there: the full method's files
        assert stage_root(config, "hela_tile", "predict", dataset) == "results"


def test_dataset_settings_update_model_for_one_dataset():
    config = {**CONFIG, "model_overrides": {"PhC-C2DH-U373": {"base_channels": 24}}}
    model = dataset_settings(config, "model", "PhC-C2DH-U373")
    assert model == {"variant": "paper", "base_channels": 24}
    assert dataset_settings(config, "model", "isbi2012") == CONFIG["model"]
    assert config["model"] == {"variant": "paper", "base_channels": 16}  # not changed in place
    assert dataset_settings({}, "model", "isbi2012") == {}
    config = {**CONFIG, "weights_overrides": {"PhC-C2DH-U373": {"core_erosion": 2}}}
    assert dataset_settings(config, "weights", "PhC-C2DH-U373") == {
        **CONFIG["weights"],
        "core_erosion": 2,
    }
    assert dataset_settings(config, "weights", "DIC-C2DH-HeLa") == CONFIG["weights"]


def test_unknown_variant_names_the_defined_ones():
    with pytest.raises(KeyError, match="no ablation variant 'nope'.*no_border"):
        variant_config(CONFIG, "nope")


def test_selected_variants_default_to_every_one_and_keep_the_given_order():
    assert selected_variants(CONFIG) == list(CONFIG["ablations"])
    assert selected_variants({**CONFIG, "ablation_variants": None}) == list(CONFIG["ablations"])
    chosen = {**CONFIG, "ablation_variants": ["tta_none", "no_border"]}
    assert selected_variants(chosen) == ["tta_none", "no_border"]
    with pytest.raises(ValueError, match="ablation_variants: 'nope' not defined.*no_border"):
        selected_variants({**CONFIG, "ablation_variants": ["no_border", "nope"]})


def isbi(seed, split, rand, warping=0.001, pixel=0.05):
    return {"split": split, "seed": seed, "warping_error": warping, "rand_error": rand,
            "pixel_error": pixel}  # fmt: skip


def seg(seed, dataset, value, split="train01", sequence="02"):
    return {"dataset": dataset, "split": split, "sequence": sequence, "seed": seed, "seg": value}


def test_table_differences_are_paired_by_seed():
    full = [isbi(0, "f0", 0.10), isbi(0, "f1", 0.20), isbi(1, "f0", 0.12), isbi(1, "f1", 0.30)]
    full += [seg(0, "DIC-C2DH-HeLa", 0.60), seg(1, "DIC-C2DH-HeLa", 0.64)]
    worse = [isbi(0, "f0", 0.15), isbi(0, "f1", 0.25), isbi(1, "f0", 0.20), isbi(1, "f1", 0.30)]
    worse += [seg(0, "DIC-C2DH-HeLa", 0.50), seg(1, "DIC-C2DH-HeLa", 0.58)]
    rows = ablation_rows({FULL: full, "no_border": worse}, {"no_border": {"weights": {"w0": 0}}})
    assert [r["variant"] for r in rows] == [FULL, "no_border"]
    f, v = rows
    # per seed: full rand = 0.15, 0.21; variant = 0.20, 0.25 -> deltas 0.05, 0.04
    assert f["rand_error"] == pytest.approx(0.18)
    assert f["rand_error_sd"] == pytest.approx(statistics.stdev([0.15, 0.21]))
    assert f["rand_error_delta"] is None
    assert v["rand_error_delta"] == pytest.approx(0.045)
    assert v["rand_error_delta_sd"] == pytest.approx(statistics.stdev([0.05, 0.04]))
    assert v["DIC-HeLa_delta"] == pytest.approx(-0.08)
    assert v["PhC-U373"] is None and v["changes"] == "weights.w0=0" and v["seeds"] == 2
    text = to_markdown(rows, "caption")
    assert "| no_border | weights.w0=0 | 2 |" in text and "(Δ +0.0450 ± 0.0071)" in text


def test_one_seed_has_differences_without_sd():
    rows = ablation_rows({FULL: [isbi(0, "f0", 0.1)], "x": [isbi(0, "f0", 0.3)]})
    assert rows[1]["rand_error_delta"] == pytest.approx(0.2)
    assert rows[1]["rand_error_delta_sd"] is None and rows[1]["rand_error_sd"] is None


def test_unpaired_variant_is_an_error():
    with pytest.raises(ValueError, match="variant x: warping_error measured on"):
        ablation_rows({FULL: [isbi(0, "f0", 0.1)], "x": [isbi(1, "f0", 0.3)]})
    with pytest.raises(ValueError, match="scores of the full method"):
        ablation_rows({"x": [isbi(0, "f0", 0.3)]})


def test_script_writes_table_and_figure(tmp_path):
    files = {}
    for name, rand, hela in ((FULL, 0.1, 0.6), ("plain_ce", 0.2, 0.4)):
        a, b = tmp_path / f"{name}.json", tmp_path / f"{name}.seg.json"
        a.write_text(json.dumps(isbi(0, "fold4", rand)))
        b.write_text(json.dumps(seg(0, "DIC-C2DH-HeLa", hela)))
        files[name] = [str(a), str(b)]
    out = tmp_path / "tables"
    cmd = [sys.executable, str(REPO / "scripts" / "ablations.py")]
    for name, paths in files.items():
        cmd += ["--variant", name, *paths]
    cmd += ["--overlays", json.dumps({"plain_ce": {"weights": {"w0": 0}}})]
    cmd += ["--out-dir", str(out), "--out-figure", str(tmp_path / "ablations.png")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = list(csv.DictReader(io.StringIO((out / "ablations.csv").read_text())))
    assert [r["variant"] for r in rows] == [FULL, "plain_ce"]
    assert float(rows[1]["rand_error_delta"]) == pytest.approx(0.1)
    assert float(rows[1]["DIC-HeLa_delta"]) == pytest.approx(-0.2)
    assert (out / "ablations.md").read_text().count("|") > 20
    assert "\\begin{tabular}" in (out / "ablations.tex").read_text()
    assert "<td>plain_ce</td>" in (out / "ablations.html").read_text()
    assert (tmp_path / "ablations.png").stat().st_size > 5000
