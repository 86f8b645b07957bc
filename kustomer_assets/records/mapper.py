"""`RecordMapper`: one entity's resources -> a typed frame (fixed columns, custom, leftovers).

The spec table builds one per entity from its columns. `frame` maps a batch column by column
(`vectorised`); `row` and `_frame_rowwise` are the row-wise reference (`rowwise`) it must
equal, and its fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import polars as pl

from kustomer_assets.records.columns import (
    BASE_COLUMN_DESCRIPTIONS,
    EXTRA_ATTRIBUTES_COLUMN,
    PARTITION_COLUMN,
    UNPARSED_COLUMN,
    Column,
)
from kustomer_assets.records.rowwise import frame_rowwise, map_row
from kustomer_assets.records.typed_columns import _kind
from kustomer_assets.records.vectorised import _Batch, _path_tree, _RowwiseOnly


@dataclass(frozen=True)
class RecordMapper:
    """Maps resources of one entity to rows: fixed columns, typed custom columns, leftovers."""

    columns: tuple[Column, ...]
    keep_custom: bool = True
    mapped_attributes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A fixed column named like a custom or base column would be overwritten row by row.
        reserved = set(BASE_COLUMN_DESCRIPTIONS)
        clashes = [
            c.name for c in self.columns if c.name in reserved or c.name.startswith("custom_")
        ]
        if clashes:
            raise ValueError(f"column names reserved for base or custom columns: {clashes}")

    @property
    def base_schema(self) -> dict[str, pl.DataType]:
        schema = {c.name: c.dtype for c in self.columns}
        schema[EXTRA_ATTRIBUTES_COLUMN] = pl.Utf8
        schema[UNPARSED_COLUMN] = pl.Utf8
        schema[PARTITION_COLUMN] = pl.Date
        return schema

    @property
    def descriptions(self) -> dict[str, str]:
        """Every fixed and base column's description, for the UI's column schema."""
        return {**{c.name: c.description for c in self.columns}, **BASE_COLUMN_DESCRIPTIONS}

    def row(self, resource: Mapping[str, Any], custom_types: dict[str, pl.DataType]) -> dict:
        """One row; records the type of every custom column it meets in `custom_types`."""
        return map_row(self, resource, custom_types)

    def frame(self, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """A typed frame for one batch; custom columns present in the batch get suffix types.

        Mapped column by column (see `_Batch`), which is what makes a backfill of millions of
        records affordable; the result is exactly `_frame_rowwise`'s. Batches the columnar
        path does not handle (a resource or `attributes` that is a Mapping but not a dict, a
        column type `convert` has no rule for ...) are mapped row by row instead.
        """
        batch = resources if isinstance(resources, list) else list(resources)
        if not batch or not self._columnar or set(map(type, batch)) != {dict}:
            return self._frame_rowwise(batch)
        try:
            return _Batch(self, batch).frame()
        except _RowwiseOnly:
            return self._frame_rowwise(batch)

    def _frame_rowwise(self, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """The reference mapping, one `row` at a time: the rules `frame` must agree with, and
        its fallback for shapes the columnar path leaves alone."""
        return frame_rowwise(self, resources)

    @cached_property
    def _path_tree(self) -> dict[tuple[str, ...], list[str]]:
        return _path_tree(self.columns)

    @cached_property
    def _columnar(self) -> bool:
        """Whether `frame` can map this column set column by column: every type is one the
        vectorised rules cover, and no two columns share a name (row by row, the last wins)."""
        names = [c.name for c in self.columns]
        return len(set(names)) == len(names) and all(_kind(c.dtype) for c in self.columns)
