"""Configuration helpers: coercion of command-line values before JSON-schema validation.

``snakemake --config key=value`` hands values over as strings when they do not parse as
YAML scalars of the right type (and ``null``/numbers come in inconsistently across
versions). :func:`coerce_config` converts top-level and nested scalar values to the type
the schema asks for, so ``--config mirror=../shared/data`` or ``--config
allow_unverified=true`` behave like the same keys in a config file. Validation itself is
Snakemake's ``validate`` (which also fills in the schema's defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def coerce_value(value, schema: dict):
    """Convert a string ``value`` to the type ``schema`` asks for; leave others alone."""
    if not isinstance(value, str):
        return value
    types = _types(schema)
    text = value.strip()
    if "null" in types and text.lower() in {"null", "none", "~", ""}:
        return None
    if "boolean" in types and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "array" in types or "object" in types:
        parsed = yaml.safe_load(text)
        if isinstance(parsed, list | dict):
            return parsed
    return value


def coerce_config(config: dict, schema_path: str | Path) -> dict:
    """Coerce string values of ``config`` in place to the types of the schema's properties."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    _coerce(config, schema)
    return config


def _coerce(node: dict, schema: dict) -> None:
    props = schema.get("properties", {})
    for key, value in list(node.items()):
        sub = props.get(key)
        if sub is None:
            continue
        node[key] = coerce_value(value, sub)
        if isinstance(node[key], dict):
            _coerce(node[key], sub)


def merge_settings(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, what: str) -> dict:
    """``defaults`` updated with ``given``; an unknown key (a typo) raises ValueError."""
    out = dict(defaults)
    if given:
        unknown = set(given) - set(defaults)
        if unknown:
            raise ValueError(
                f"unknown {what} setting(s) {sorted(unknown)}; valid: {sorted(defaults)}"
            )
        out.update(given)
    return out
