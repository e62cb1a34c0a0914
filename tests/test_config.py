"""Config: schema coercion of command-line strings; every shipped config validates."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from unet_repro.config import coerce_config, coerce_value

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
