"""Config: schema coercion of command-line strings; every shipped config validates."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from unet_repro.config import (
    PAPER_TILE,
    check_splits,
    coerce_config,
    coerce_value,
    has_heldout,
    tile_size_for,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ("true", {"type": "boolean"}, True),
        ("3", {"type": "integer"}, 3),
        ("2.5", {"type": "number"}, 2.5),
        ("null", {"type": ["string", "null"]}, None),
        ("../shared/data", {"type": ["string", "null"]}, "../shared/data"),
        ("[a, b]", {"type": "array"}, ["a", "b"]),
        ("[0, 7]", {"type": "array", "items": {"type": "integer"}}, [0, 7]),
        (["0", "7"], {"type": "array", "items": {"type": "integer"}}, [0, 7]),
    ],
)
def test_coerce_value(value, schema, expected):
    assert coerce_value(value, schema) == expected


def test_coerce_nested():
    cfg = {"allow_unverified": "yes", "weights": {"w0": "10", "sigma": "5.5"}}
    coerce_config(cfg, SCHEMA)
    assert cfg == {"allow_unverified": True, "weights": {"w0": 10.0, "sigma": 5.5}}


@pytest.mark.parametrize("name", ["config.yaml", "quick.yaml", "test.yaml", "smoke.yaml"])
def test_shipped_configs_validate(name):
    path = REPO / "config" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    cfg = yaml.safe_load(path.read_text())
    validate(cfg, str(SCHEMA))
    assert cfg["weights"]["w0"] == 10 and cfg["weights"]["sigma"] == 5


def test_wrong_value_names_the_key():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["weights"]["sigma"] = -1
    with pytest.raises(Exception, match="sigma"):
        validate(cfg, str(SCHEMA))


@pytest.mark.parametrize(
    "overrides",
    [
        {"train_overrides": {"DIC-HeLa": {"iterations": 10}}},  # not a dataset's name
        {"model_overrides": {"HeLa": {"base_channels": 8}}},
        {"model_overrides": {"DIC-C2DH-HeLa": {"base_channel": 8}}},  # not a model setting
        {"model_overrides": {"DIC-C2DH-HeLa": {"base_channels": 0}}},
    ],
)
def test_per_dataset_overrides_name_a_dataset_and_its_settings(overrides):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate({**cfg, "model_overrides": {"DIC-C2DH-HeLa": {"base_channels": 24}}}, str(SCHEMA))
    with pytest.raises(Exception, match="HeLa|base_channel"):
        validate({**cfg, **overrides}, str(SCHEMA))


def test_core_erosion_and_weights_overrides_have_no_default():
    """Absent: the paper's target, and configurations without them keep their digests."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, str(SCHEMA))
    assert "core_erosion" not in cfg["weights"] and "weights_overrides" not in cfg
    validate({**cfg, "weights_overrides": {"PhC-C2DH-U373": {"core_erosion": 2}}}, str(SCHEMA))
    for bad in (
        {"weights": {**cfg["weights"], "core_erosion": -1}},
        {"weights_overrides": {"U373": {"core_erosion": 2}}},  # not a dataset's name
        {"weights_overrides": {"PhC-C2DH-U373": {"core": 2}}},  # not a weights setting
        {"weights_overrides": {"PhC-C2DH-U373": {"core_erosion": 1.5}}},
    ):
        with pytest.raises(Exception, match="core|U373|1.5"):
            validate({**cfg, **bad}, str(SCHEMA))


def test_touching_pastes_is_a_count_without_default():
    """Absent: the paper's data, and configurations without it keep their digests."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "touching_pastes" not in cfg["weights"]
    for good in (
        {"weights": {**cfg["weights"], "touching_pastes": 0}},
        {"weights_overrides": {"PhC-C2DH-U373": {"touching_pastes": 2}}},
    ):
        validate({**cfg, **good}, str(SCHEMA))
    for bad in (
        {"weights": {**cfg["weights"], "touching_pastes": -1}},
        {"weights_overrides": {"PhC-C2DH-U373": {"touching_pastes": 1.5}}},
    ):
        with pytest.raises(Exception, match="-1|1.5"):
            validate({**cfg, **bad}, str(SCHEMA))


def test_touching_overlap_is_a_pair_of_shares_without_default():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "touching_overlap" not in cfg["weights"]
    for good in (
        {"weights": {**cfg["weights"], "touching_overlap": [0, 0.2]}},
        {"weights_overrides": {"PhC-C2DH-U373": {"touching_overlap": [0.3, 0.7]}}},
    ):
        validate({**cfg, **good}, str(SCHEMA))
    for bad in ([0.3], [0.3, 0.5, 0.7], [0.3, 1.0], [-0.1, 0.2], 0.5):
        with pytest.raises(Exception, match="touching_overlap|0.3|1.0|-0.1|0.5"):
            validate({**cfg, "weights": {**cfg["weights"], "touching_overlap": bad}}, str(SCHEMA))


def test_touching_roundness_is_a_share_below_one_without_default():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "touching_roundness" not in cfg["weights"]
    for good in (
        {"weights": {**cfg["weights"], "touching_roundness": 0}},
        {"weights_overrides": {"PhC-C2DH-U373": {"touching_roundness": 0.8}}},
    ):
        validate({**cfg, **good}, str(SCHEMA))
    for bad in (1.0, -0.1, "round"):
        with pytest.raises(Exception, match="touching_roundness|1.0|-0.1|round"):
            validate({**cfg, "weights": {**cfg["weights"], "touching_roundness": bad}}, str(SCHEMA))


def test_norm_is_none_or_batch_and_has_no_default():
    """No default: a configuration without `norm` keeps its settings (and its digests)."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    plain = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(plain, str(SCHEMA))
    assert "norm" not in plain["model"]
    for value in ("none", "batch"):
        validate({**cfg, "model": {**cfg["model"], "norm": value}}, str(SCHEMA))
        validate({**cfg, "model_overrides": {"DIC-C2DH-HeLa": {"norm": value}}}, str(SCHEMA))
    for bad in (
        {"model": {**cfg["model"], "norm": "instance"}},
        {"model_overrides": {"PhC-C2DH-U373": {"norm": "group"}}},
    ):
        with pytest.raises(Exception, match="norm|instance|group"):
            validate({**cfg, **bad}, str(SCHEMA))


def test_quick_normalises_hela_only_and_its_ablations_add_or_remove_it():
    """quick.yaml: batch normalisation for HeLa alone; `no_batchnorm` is the paper's HeLa net,
    `batchnorm` adds it to the others; the paper configuration has none anywhere."""
    from unet_repro.ablations import dataset_settings, variant_config

    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    validate(quick, str(SCHEMA))
    norm = {d: dataset_settings(quick, "model", d).get("norm", "none") for d in quick["datasets"]}
    assert norm == {"isbi2012": "none", "PhC-C2DH-U373": "none", "DIC-C2DH-HeLa": "batch"}
    without = variant_config(quick, "no_batchnorm")
    assert dataset_settings(without, "model", "DIC-C2DH-HeLa")["norm"] == "none"
    assert dataset_settings(without, "model", "DIC-C2DH-HeLa")["base_channels"] == 16
    with_all = variant_config(quick, "batchnorm")
    assert {dataset_settings(with_all, "model", d)["norm"] for d in quick["datasets"]} == {"batch"}
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(paper, str(SCHEMA))
    for d in paper["datasets"]:
        assert dataset_settings(paper, "model", d).get("norm", "none") == "none"


@pytest.mark.parametrize("section", ["train", "predict"])
def test_amp_and_channels_last_are_true_false_or_auto(section):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for value in (True, False, "auto"):
        cfg[section].update(amp=value, channels_last=value)
        validate(cfg, str(SCHEMA))
    for key in ("amp", "channels_last"):
        for bad in ("bf16", "Auto", 1):
            cfg[section] = {**cfg[section], "amp": False, "channels_last": "auto", key: bad}
            with pytest.raises(Exception, match=key):
                validate(cfg, str(SCHEMA))
    # --config values arrive as strings: true / false become booleans, auto stays
    text = {section: {"amp": "auto", "channels_last": "false"}}
    coerce_config(text, SCHEMA)
    assert text[section] == {"amp": "auto", "channels_last": False}


def test_quick_fp32_overlay_restores_base16_float32():
    """config/quick_fp32.yaml after quick.yaml (Snakemake merges key by key): base 16, float32."""
    from snakemake.utils import update_config

    from unet_repro.ablations import dataset_settings

    cfg = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    assert cfg["train"]["amp"] == cfg["predict"]["amp"] == "auto"
    update_config(cfg, yaml.safe_load((REPO / "config" / "quick_fp32.yaml").read_text()))
    validate(cfg, str(SCHEMA))
    for dataset in cfg["datasets"]:
        assert dataset_settings(cfg, "model", dataset)["base_channels"] == 16
        assert dataset_settings(cfg, "train", dataset)["amp"] is False
    assert cfg["predict"]["amp"] is False and cfg["train"]["iterations"] == 1000


def test_tile_size_is_one_size_or_one_per_dataset():
    assert tile_size_for({"tile_size": 636}, "isbi2012") == 636
    assert tile_size_for({}, "isbi2012") == PAPER_TILE == 572
    per_dataset = {"tile_size": {"isbi2012": 700, "PhC-C2DH-U373": 892}}
    assert tile_size_for(per_dataset, "PhC-C2DH-U373") == 892
    assert tile_size_for(per_dataset, "DIC-C2DH-HeLa") == 572  # not named: the paper's tile
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["predict"]["tile_size"] = per_dataset["tile_size"]
    validate(cfg, str(SCHEMA))
    for bad in ({"isbi": 700}, {"isbi2012": 0}, 0):
        cfg["predict"]["tile_size"] = bad
        with pytest.raises(Exception, match="tile_size|isbi|0"):
            validate(cfg, str(SCHEMA))


@pytest.mark.parametrize("name", ["config.yaml", "quick.yaml", "test.yaml", "smoke.yaml"])
def test_shipped_splits_pass_the_checks(name):
    path = REPO / "config" / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    splits = yaml.safe_load(path.read_text())["splits"]
    check_splits(splits)
    whole = [n for n, s in splits["isbi2012"].items() if not has_heldout(s)]
    assert len(whole) <= 1 and all(has_heldout(s) for s in splits["DIC-C2DH-HeLa"].values())


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ({"isbi2012": {"bad": {"train": "0-5", "test": "5-7"}}}, r"isbi2012\.bad.*slices \[5\]"),
        ({"isbi2012": {"bad": {"train": "", "test": "0-5"}}}, r"isbi2012\.bad trains on nothing"),
        ({"isbi2012": {"bad": {"train": "0-x", "test": ""}}}, r"isbi2012\.bad\.train: cannot"),
        (
            {"PhC-C2DH-U373": {"bad": {"train": ["01", "02"], "test": ["02"]}}},
            r"PhC-C2DH-U373\.bad.*sequences \['02'\]",
        ),
        ({"DIC-C2DH-HeLa": {"bad": {"train": ["01"], "test": ["03"]}}}, r"HeLa\.bad\.test is"),
        ({"DIC-C2DH-HeLa": {"bad": {"train": "01", "test": ["02"]}}}, r"HeLa\.bad\.train is"),
        ({"DIC-C2DH-HeLa": {"bad": {"train": ["01"], "test": []}}}, r"HeLa\.bad holds out no"),
    ],
)
def test_bad_split_stops_naming_dataset_and_split(splits, message):
    with pytest.raises(ValueError, match=message):
        check_splits(splits)


def test_whole_data_split_has_no_heldout_data():
    check_splits({"isbi2012": {"all": {"train": "0-29", "test": ""}, "f": {"train": 0, "test": 1}}})
    assert not has_heldout({"train": "0-29", "test": ""})
    assert not has_heldout({"train": "0-29", "test": []})
    assert has_heldout({"train": "0-23", "test": "24-29"})
