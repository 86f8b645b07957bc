"""`RecordMapper.frame`'s batch: gathered level by level, then typed column by column.

One pass per level of the column paths gathers every row's raw values (`_Level`, `_gather`);
`typed_columns` types each whole column; only rows holding a misfit have their
`unparsed_values` built in Python. The result is exactly the row-wise mapping's (`rowwise`),
and a shape this path does not handle raises `_RowwiseOnly` so the caller maps it row by row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from kustomer_assets.records.columns import (
    EXTRA_ATTRIBUTES_COLUMN,
    PARTITION_COLUMN,
    UNPARSED_COLUMN,
    Column,
    Misfit,
    _source_name,
    _walk,
)
from kustomer_assets.records.custom import _custom_column
from kustomer_assets.records.typed_columns import _json_encoder, _kind, _typed
from kustomer_assets.records.values import TIMESTAMP, _json

if TYPE_CHECKING:
    from kustomer_assets.records.mapper import RecordMapper

_NONE_TYPE: Final = type(None)
_dict_get: Final = dict.get
_EMPTY: Final[dict[str, Any]] = {}
"""Stands for a missing object while gathering (never written to)."""


class _RowwiseOnly(Exception):
    """The batch has a shape the columnar path leaves to `_frame_rowwise`."""


@dataclass
class _Level:
    """The values of every row at one path prefix, and the misfits met on the way there."""

    values: list[Any]
    misfits: dict[int, Misfit]
    _objects: tuple[list[dict[str, Any]], dict[int, Misfit]] | None = field(
        default=None, repr=False
    )

    def objects(self, source: str) -> tuple[list[dict[str, Any]], dict[int, Misfit]]:
        """The values as dicts the path can go on through: None becomes `{}`, and so does a
        non-container, with a misfit named `source` as `_walk` makes it (computed once, shared
        by every child)."""
        if self._objects is None:
            kinds = set(map(type, self.values))
            if kinds == {dict}:
                self._objects = (self.values, self.misfits)
            elif kinds <= {dict, _NONE_TYPE}:
                self._objects = ([_EMPTY if v is None else v for v in self.values], self.misfits)
            else:
                objects: list[dict[str, Any]] = []
                misfits = dict(self.misfits)
                for i, value in enumerate(self.values):
                    if type(value) is dict:
                        objects.append(value)
                    elif value is None:
                        objects.append(_EMPTY)
                    elif isinstance(value, Mapping):
                        raise _RowwiseOnly  # a Mapping that is not a dict: rare, left alone
                    else:
                        objects.append(_EMPTY)
                        misfits[i] = Misfit(source, value)
                self._objects = (objects, misfits)
        return self._objects


_GATHER_BLOCK: Final = 256
"""Rows gathered key by key at a time: 256 dicts' hash tables stay in the CPU cache."""


def _gather(objects: list[dict[str, Any]], keys: Sequence[str]) -> list[list[Any]]:
    """`[[o.get(k) for o in objects] for k in keys]`, in blocks of rows, lookups in C.

    Key by key over thousands of distinct dicts misses the CPU cache on nearly every lookup;
    block by block, each dict is still cached when its next key is read. On real batches that
    is twice as fast on big objects (`attributes`) and on small ones (relationships) alike.
    """
    get = _dict_get
    if len(keys) == 1:
        return [list(map(get, objects, repeat(keys[0])))]
    columns: list[list[Any]] = [[] for _ in keys]
    for start in range(0, len(objects), _GATHER_BLOCK):
        block = objects[start : start + _GATHER_BLOCK]
        for column, key in zip(columns, keys, strict=True):
            column.extend(map(get, block, repeat(key)))
    return columns


def _keys(objects: list[dict[str, Any]]) -> set[Any]:
    """Every key of `objects`, block by block: `json.loads` shares one key object per page, so
    within a block adding a key mostly meets the very same object (no text comparison)."""
    keys: set[Any] = set()
    for start in range(0, len(objects), _GATHER_BLOCK):
        keys |= set().union(*objects[start : start + _GATHER_BLOCK])
    return keys


def _path_tree(columns: Sequence[Column]) -> dict[tuple[str, ...], list[str]]:
    """Parent prefix -> the steps taken from it, for every column path up to a `*` (below one,
    `_walk` maps the rest per row), in the order levels must be gathered (parents first)."""
    tree: dict[tuple[str, ...], dict[str, None]] = {(): {}, ("attributes",): {}}
    tree[()]["attributes"] = None
    for column in columns:
        path = column.path[: column.path.index("*")] if "*" in column.path else column.path
        for depth in range(len(path)):
            tree.setdefault(path[:depth], {})[path[depth]] = None
    return {prefix: list(tree[prefix]) for prefix in sorted(tree, key=len)}


class _Batch:
    """One `RecordMapper.frame` call, column by column."""

    def __init__(self, mapper: RecordMapper, resources: list[dict[str, Any]]) -> None:
        self.mapper = mapper
        self.size = len(resources)
        self.levels: dict[tuple[str, ...], _Level] = {(): _Level(resources, {})}
        self.encode = _json_encoder()

    def descend(self, prefix: tuple[str, ...], steps: Sequence[str]) -> None:
        """Gather the levels `prefix + (step,)` for every step in one pass over the rows."""
        objects, misfits = self.levels[prefix].objects(_source_name(prefix))
        for step, values in zip(steps, _gather(objects, steps), strict=True):
            self.levels[(*prefix, step)] = _Level(values, misfits)

    def gather(self, column: Column) -> tuple[list[Any], dict[int, Misfit]]:
        """Every row's raw value at the column's path, and the rows `_walk` found misfits in."""
        path = column.path
        if "*" not in path:
            found = self.levels[path]
            return found.values, found.misfits
        star = path.index("*")
        prefix = path[:star]
        found = self.levels[prefix]
        values: list[Any] = []
        misfits = dict(found.misfits)
        for i, value in enumerate(found.values):
            walked, misfit = _walk(value, path[star:], prefix)
            values.append(walked)
            if misfit is not None:
                misfits[i] = misfit
        return values, misfits

    def frame(self) -> pl.DataFrame:
        mapper = self.mapper
        tree = mapper._path_tree
        self.descend((), tree[()])
        # `attributes` also gives the extras and `custom`, so its keys come from the batch.
        attributes, attribute_misfits = self.levels[("attributes",)].objects("attributes")
        keys = _keys(attributes)
        if any(type(k) is not str for k in keys):
            raise _RowwiseOnly  # sorting non-string keys is the rules' business
        unmapped = sorted(k for k in keys if k not in mapper.mapped_attributes and k != "custom")
        custom = ["custom"] if mapper.keep_custom and "custom" in keys else []
        self.descend(
            ("attributes",), list(dict.fromkeys([*tree[("attributes",)], *unmapped, *custom]))
        )
        for prefix, steps in tree.items():
            if len(prefix) > 0 and prefix != ("attributes",) and steps:
                self.descend(prefix, steps)

        data: dict[str, pl.Series] = {}
        column_misfits: list[dict[int, Misfit]] = []
        for column in mapper.columns:
            raw, misfits = self.gather(column)
            values = raw if column.derive is None else [column.derive(v) for v in raw]
            kind = _kind(column.dtype)
            assert kind is not None  # guaranteed by RecordMapper._columnar
            typed, unparsable = _typed(values, column.dtype, kind, self.encode)
            if unparsable:
                misfits = dict(misfits)
                for i in unparsable:
                    misfits[i] = Misfit(column.source, raw[i])
            column_misfits.append(misfits)
            data[column.name] = typed.alias(column.name)
        data[EXTRA_ATTRIBUTES_COLUMN] = self.extras(unmapped)

        customs: list[dict[str, Any]] = []
        custom_misfits: dict[int, Misfit] = {}
        custom_unparsable: dict[str, set[int]] = {}
        custom_data: dict[str, pl.Series] = {}
        if custom:
            level = self.levels[("attributes", "custom")]
            customs, misfits = level.objects("custom")
            custom_misfits = {i: m for i, m in misfits.items() if i not in level.misfits}
            custom_data, custom_unparsable = self.custom_columns(customs)

        rows = {i for misfits in column_misfits for i in misfits}
        rows.update(attribute_misfits, custom_misfits)
        rows.update(i for unparsable in custom_unparsable.values() for i in unparsable)
        unparsed: list[str | None] = [None] * self.size
        for i in rows:  # rare: build the row's unparsed object in `row`'s order (last one wins)
            found: dict[str, Any] = {}
            for misfits in column_misfits:
                misfit = misfits.get(i)
                if misfit is not None:
                    found[misfit.source] = misfit.value
            if i in attribute_misfits:
                found["attributes"] = attribute_misfits[i].value
            if customs:
                for key, value in customs[i].items():
                    if i in custom_unparsable[key]:
                        found[f"custom.{key}"] = value
            if i in custom_misfits:
                found["custom"] = custom_misfits[i].value
            unparsed[i] = _json(found)
        data[UNPARSED_COLUMN] = pl.Series(UNPARSED_COLUMN, unparsed, dtype=pl.Utf8)

        updated_at = data.get("updated_at")
        if updated_at is not None and updated_at.dtype == TIMESTAMP:
            partition = updated_at.dt.date()
        else:
            partition = pl.Series([None] * self.size, dtype=pl.Date)
        data[PARTITION_COLUMN] = partition.alias(PARTITION_COLUMN)
        data.update(sorted(custom_data.items()))
        return pl.DataFrame(list(data.values()))

    def extras(self, unmapped: list[str]) -> pl.Series:
        """`extra_attributes`: each unmapped, non-null attribute as `"key": json`, joined in
        key order into exactly the text `json.dumps(..., sort_keys=True)` writes."""
        if not unmapped:
            return pl.Series(EXTRA_ATTRIBUTES_COLUMN, [None] * self.size, dtype=pl.Utf8)
        encode = self.encode
        parts = {}
        for n, key in enumerate(unmapped):
            values = self.levels[("attributes", key)].values
            texts = [None if v is None else encode(v) for v in values]
            parts[f"_{n}"] = pl.Series(texts, dtype=pl.Utf8)
        body = pl.concat_str(
            [f"{encode(key)}: " + pl.col(f"_{n}") for n, key in enumerate(unmapped)],
            separator=", ",
            ignore_nulls=True,
        )
        return (
            pl.DataFrame(parts)
            .select(pl.when(body != "").then("{" + body + "}").alias(EXTRA_ATTRIBUTES_COLUMN))
            .to_series()
        )

    def custom_columns(
        self, customs: list[dict[str, Any]]
    ) -> tuple[dict[str, pl.Series], dict[str, set[int]]]:
        """One typed column per custom key of the batch, and per key the rows that misfit."""
        keys = _keys(customs)
        if any(type(k) is not str for k in keys):
            raise _RowwiseOnly  # custom_column_name needs text; let the rules fail alike
        named = {key: _custom_column(key) for key in sorted(keys)}
        if len({name for name, _ in named.values()}) != len(named):
            raise _RowwiseOnly  # two keys on one name (a 40-bit hash collision): last one wins
        columns: dict[str, pl.Series] = {}
        unparsable: dict[str, set[int]] = {}
        for (key, (name, dtype)), values in zip(
            named.items(), _gather(customs, list(named)), strict=True
        ):
            kind = _kind(dtype)
            if kind is None:  # pragma: no cover - every suffix type has a rule set
                raise _RowwiseOnly
            typed, bad = _typed(values, dtype, kind, self.encode)
            columns[name] = typed.alias(name)
            unparsable[key] = set(bad)
        return columns, unparsable
