"""The reference mapping, one resource at a time: the rules `RecordMapper.frame` must agree with.

The vectorised path (`vectorised`) is what runs; this one stays because it is the plain
statement of the rules (the tests compare the two on generated and drifting records), and the
fallback for shapes the vectorised path leaves alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from kustomer_assets.records.columns import (
    EXTRA_ATTRIBUTES_COLUMN,
    PARTITION_COLUMN,
    UNPARSED_COLUMN,
)
from kustomer_assets.records.custom import custom_column_name, custom_dtype
from kustomer_assets.records.values import UNPARSABLE, _json, convert

if TYPE_CHECKING:
    from kustomer_assets.records.mapper import RecordMapper


def map_row(
    mapper: RecordMapper, resource: Mapping[str, Any], custom_types: dict[str, pl.DataType]
) -> dict:
    """One row; records the type of every custom column it meets in `custom_types`."""
    row: dict[str, Any] = {}
    unparsed: dict[str, Any] = {}
    for column in mapper.columns:
        row[column.name], misfit = column.read(resource)
        if misfit is not None:
            unparsed[misfit.source] = misfit.value
    attributes = resource.get("attributes")
    if not isinstance(attributes, Mapping):
        if attributes is not None:
            unparsed["attributes"] = attributes
        attributes = {}
    custom = attributes.get("custom") if mapper.keep_custom else None
    if isinstance(custom, Mapping):
        for key, value in custom.items():
            name = custom_column_name(key)
            dtype = custom_types.setdefault(name, custom_dtype(key))
            typed = convert(value, dtype)
            if typed is UNPARSABLE:
                unparsed[f"custom.{key}"] = value
                typed = None
            row[name] = typed
    elif custom is not None:
        unparsed["custom"] = custom
    extra = {
        k: v
        for k, v in attributes.items()
        if k not in mapper.mapped_attributes and k != "custom" and v is not None
    }
    row[EXTRA_ATTRIBUTES_COLUMN] = _json(extra) if extra else None
    row[UNPARSED_COLUMN] = _json(unparsed) if unparsed else None
    updated_at = row.get("updated_at")
    row[PARTITION_COLUMN] = updated_at.date() if isinstance(updated_at, datetime) else None
    return row


def frame_rowwise(mapper: RecordMapper, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """A typed frame built `map_row` by `map_row`; custom columns sorted by name."""
    custom_types: dict[str, pl.DataType] = {}
    rows = [map_row(mapper, r, custom_types) for r in resources]
    schema = {**mapper.base_schema, **dict(sorted(custom_types.items()))}
    return pl.DataFrame(rows, schema=schema)
