"""Configuration helpers: coercion of command-line values before JSON-schema validation,
and the checks of the split definitions the schema cannot express (:func:`check_splits`).

``snakemake --config key=value`` hands values over as strings when they do not parse as
YAML scalars of the right type (and ``null``/numbers come in inconsistently across
versions). :func:`coerce_config` converts top-level and nested scalar values to the type
the schema asks for, so ``--config mirror=../shared/data`` or ``--config
allow_unverified=true`` behave like the same keys in a config file. Validation itself is
Snakemake's ``validate`` (which also fills in the schema's defaults).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def coerce_value(value, schema: dict):
    """Convert a string ``value`` to the type ``schema`` asks for; leave others alone.

    The items of a list (given as a list, or as YAML text like ``[0,7]``) are converted to the
    schema's ``items`` type (``--config seeds=[0,7]`` arrives as ``["0", "7"]``).
    """
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce_value(v, schema["items"]) for v in value]
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
        if isinstance(parsed, list):
            return coerce_value(parsed, schema)
        if isinstance(parsed, dict):
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


#: The paper's tile (Fig. 1: 572 in, 388 out); a dataset a ``predict.tile_size`` mapping omits.
PAPER_TILE = 572


def tile_size_for(predict: Mapping[str, Any], dataset: str) -> int:
    """The inference tile of ``dataset``: ``predict.tile_size``, a size or a mapping per dataset.

    The overlap-tile prediction is seamless for every valid tile, so the size is a speed
    setting: one tile of 700 (output 516) covers a 512 x 512 image where 572 takes 2 x 2
    (``benchmarks/bench_tiles.py``). A dataset the mapping does not name takes
    :data:`PAPER_TILE`.
    """
    size = predict.get("tile_size", PAPER_TILE)
    if isinstance(size, Mapping):
        size = size.get(dataset, PAPER_TILE)
    return int(size)


def _is_empty(spec) -> bool:
    return spec is None or spec == [] or (isinstance(spec, str) and not spec.strip())


def has_heldout(split: Mapping[str, Any]) -> bool:
    """Whether a split holds data out (an ISBI split with an empty ``test`` holds none)."""
    return not _is_empty(split.get("test"))


def _split_items(dataset: str, name: str, key: str, spec, isbi: str, sequences) -> list:
    where = f"config: splits.{dataset}.{name}.{key}"
    if _is_empty(spec):
        return []
    if dataset == isbi:
        from .datasets import parse_indices

        try:
            return parse_indices(spec)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if not isinstance(spec, list) or any(s not in sequences for s in spec):
        raise ValueError(
            f"{where} is {spec!r}: expected a list of sequences among {list(sequences)}"
            ' (quoted, e.g. ["01"])'
        )
    if len(set(spec)) != len(spec):
        raise ValueError(f"{where} repeats a sequence: {spec!r}")
    return list(spec)


def check_splits(
    splits: Mapping[str, Mapping[str, Mapping[str, Any]]],
    isbi: str = "isbi2012",
    ctc: Sequence[str] = ("PhC-C2DH-U373", "DIC-C2DH-HeLa"),
    sequences: Sequence[str] = ("01", "02"),
) -> None:
    """Stop with a ValueError naming dataset and split for an unusable split definition.

    A split must train on something, and its training and test sets must not overlap (ISBI
    slice indices; CTC sequences, which must be among ``sequences``). An ISBI split may have
    an empty ``test`` (a whole-data model, used only for the challenge submission); a CTC
    split must hold out a sequence. Datasets other than ``isbi`` and ``ctc`` are not checked.
    """
    for dataset, named in splits.items():
        if dataset != isbi and dataset not in ctc:
            continue
        for name, split in named.items():
            train = _split_items(dataset, name, "train", split["train"], isbi, sequences)
            test = _split_items(dataset, name, "test", split["test"], isbi, sequences)
            if not train:
                raise ValueError(f"config: splits.{dataset}.{name} trains on nothing")
            if not test and dataset != isbi:
                raise ValueError(
                    f"config: splits.{dataset}.{name} holds out no sequence (only ISBI splits"
                    " may have an empty test: the whole-data model of the submission)"
                )
            shared = sorted(set(train) & set(test))
            if shared:
                what = "slices" if dataset == isbi else "sequences"
                raise ValueError(
                    f"config: splits.{dataset}.{name}: train and test share {what} {shared}"
                )
