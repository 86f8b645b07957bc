"""Make staged batches fit each other and the table they are written to, without losing a value.

A column's type can drift: batches of one run may disagree (an external frame with `Int64` in
one batch and `Utf8` in the next), and a table written by an older version may hold a type the
new data no longer has. delta-rs does not fail on every such mismatch -- worse, it silently
truncates `2.5` to `2` when writing `Float64` into a `long` column -- and a Delta column's type
cannot be changed in place by `schema_mode="merge"`. So the writer decides, before writing:

* Batches are first unified to one staged type per column: `Null` gives way to any type,
  integers and floats widen to `Float64`, anything else to text (`Utf8`; nested values as JSON).
* That staged type meets the table's type:
  - same type, or a table column that is still `Null` (delta-rs types it on write): as staged;
  - a text column in the table: values are written as text (text holds anything);
  - otherwise each value is cast to the table's type when that is lossless (it casts back to
    the same value: `3.0` into `Int64`, `"12"` into `Float64`);
  - a value that does not fit (`2.5` into `Int64`, `"N/A"` into `Float64`) goes into a sibling
    column `<column>__<type>` (`custom_score__float64`, `priority__text`) that can hold it,
    added to the table by the write, and the column itself is null on that row. Analysts read
    `coalesce(<column>__<type>, <column>)`; nothing is rewritten and nothing is lost.

Every decision is reported as a sentence in `WritePlan.changes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import polars as pl
import pyarrow as pa

Schema = Mapping[str, pl.DataType]
FrameSource = Callable[[Sequence[str]], Iterable[pl.DataFrame]]
"""Yields the staged batches one at a time, restricted to the named columns."""


class Mode(Enum):
    KEEP = "keep"
    TEXT = "text"
    CAST = "cast"
    SPLIT = "split"


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    staged: pl.DataType
    """The batches' unified type."""
    target: pl.DataType
    """The type written into `name`."""
    mode: Mode = Mode.KEEP
    sibling: str | None = None
    sibling_type: pl.DataType | None = None
    castable: bool = True
    """False when polars has no cast from `staged` to `target` (text -> Boolean): then no
    value fits and all of them go to the sibling."""


@dataclass
class WritePlan:
    columns: list[ColumnPlan]
    changes: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    """Table columns no batch has, written as nulls (a merge's insert needs them all)."""

    @property
    def schema(self) -> dict[str, pl.DataType]:
        out: dict[str, pl.DataType] = {}
        for plan in self.columns:
            out[plan.name] = plan.target
            if plan.sibling is not None and plan.sibling_type is not None:
                out[plan.sibling] = plan.sibling_type
        return out

    def ordered(self, first: Sequence[str]) -> list[str]:
        """`first` (the base columns), then every other written column by name."""
        names = self.schema
        head = [n for n in first if n in names]
        return [*head, *sorted(n for n in names if n not in head)]

    def arrow_schema(self, first: Sequence[str]) -> pa.Schema:
        schema = self.schema
        empty = pl.DataFrame(schema={n: schema[n] for n in self.ordered(first)})
        return empty.to_arrow().schema

    def convert(self, frame: pl.DataFrame, first: Sequence[str]) -> pl.DataFrame:
        """One staged batch in the written schema and column order."""
        exprs: list[pl.Expr] = []
        schema = frame.schema  # built anew on every access: once per batch, not per column
        for plan in self.columns:
            exprs.extend(_column_exprs(plan, schema.get(plan.name)))
        converted = frame.select(exprs)
        return converted.select(self.ordered(first))


# --- types -----------------------------------------------------------------------------------


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _is_nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.List | pl.Array | pl.Struct)


def widen(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    """The narrowest type holding both: Null yields, numbers meet at Float64, else text."""
    if a == b:
        return a
    if a == pl.Null:
        return b
    if b == pl.Null:
        return a
    if a.is_integer() and b.is_integer() and pl.UInt64 not in (a, b):
        return pl.Int64
    if a.is_numeric() and b.is_numeric():
        return pl.Float64
    if isinstance(a, pl.List) and isinstance(b, pl.List):
        inner = widen(a.inner, b.inner)
        if a.inner == pl.Null or b.inner == pl.Null or inner.is_numeric():
            return pl.List(inner)
    return pl.String


def as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Text for any type: ISO-8601 for times, JSON for nested values, plain casts otherwise."""
    if _is_text(dtype):
        return expr.cast(pl.String)
    if isinstance(dtype, pl.Datetime):
        zone = "%:z" if dtype.time_zone else ""
        return expr.dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}")
    if dtype == pl.Date:
        return expr.dt.to_string("%Y-%m-%d")
    if _is_nested(dtype):
        # json_encode of a one-field struct gives {"v":<json>}: keep the <json>.
        encoded = pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.head(-1)
        return pl.when(expr.is_null()).then(None).otherwise(encoded)
    return expr.cast(pl.String, strict=False)


def _to(expr: pl.Expr, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """`expr` of type `source` as `target`, where `target` was chosen to hold every value."""
    if source == target:
        return expr
    if target == pl.String:
        return as_text(expr, source)
    return expr.cast(target, strict=False)


def _fits(staged: pl.Expr, source: pl.DataType, target: pl.DataType) -> pl.Expr:
    """True where the value is null or survives the cast to `target` unchanged.

    Text is judged by whether it parses (`"12"` is 12.0 though 12.0 prints as "12.0"); other
    types by a round trip (`2.5` -> 2 -> 2.0 is not 2.5)."""
    converted = staged.cast(target, strict=False)
    if _is_text(source):
        ok = converted.is_not_null()
        if target.is_float():
            ok = ok & converted.is_finite()
    else:
        ok = converted.is_not_null() & (converted.cast(source, strict=False) == staged)
    return staged.is_null() | ok.fill_null(False)


def _slug(dtype: pl.DataType) -> str:
    if _is_text(dtype):
        return "text"
    return re.sub(r"[^0-9a-z]+", "_", str(dtype).lower()).strip("_")


def _column_exprs(plan: ColumnPlan, present: pl.DataType | None) -> list[pl.Expr]:
    if present is None:
        exprs = [pl.lit(None, dtype=plan.target).alias(plan.name)]
        if plan.sibling is not None:
            exprs.append(pl.lit(None, dtype=plan.sibling_type).alias(plan.sibling))
        return exprs
    staged = _to(pl.col(plan.name), present, plan.staged)
    if plan.mode is Mode.KEEP:
        return [staged.alias(plan.name)]
    if plan.mode is Mode.TEXT:
        return [as_text(staged, plan.staged).alias(plan.name)]
    converted = staged.cast(plan.target, strict=False)
    if plan.mode is Mode.CAST:
        return [converted.alias(plan.name)]
    assert plan.sibling is not None and plan.sibling_type is not None
    if plan.castable:
        fits = _fits(staged, plan.staged, plan.target)
    else:
        fits, converted = staged.is_null(), pl.lit(None, dtype=plan.target)
    return [
        pl.when(fits).then(converted).otherwise(None).alias(plan.name),
        pl.when(fits)
        .then(pl.lit(None, dtype=plan.sibling_type))
        .otherwise(_to(staged, plan.staged, plan.sibling_type))
        .alias(plan.sibling),
    ]


# --- planning --------------------------------------------------------------------------------


def _misfits(plan: ColumnPlan, frames: FrameSource) -> tuple[int, bool]:
    """Values of `plan.name` across the staged batches that the table's type cannot hold,
    and whether polars can cast them at all (it says so only when it meets a value)."""
    counts: list[int] = []
    present_values: list[int] = []
    castable = True
    for frame in frames([plan.name]):
        present = frame.schema.get(plan.name)
        if present is None or frame.is_empty():
            continue
        present_values.append(frame.height - frame.get_column(plan.name).null_count())
        staged = _to(pl.col(plan.name), present, plan.staged)
        try:
            counts.append(frame.select((~_fits(staged, plan.staged, plan.target)).sum()).item())
        except pl.exceptions.InvalidOperationError:
            castable = False
    return (sum(counts) if castable else sum(present_values)), castable


def _sibling_name(
    name: str, dtype: pl.DataType, table: Schema, staged: Schema
) -> tuple[str, pl.DataType]:
    """A column for what `name` cannot hold, reused across runs: named after its type, and
    text as the fallback that holds anything."""
    candidates = [(f"{name}__{_slug(dtype)}", dtype), (f"{name}__text", pl.String)]
    candidates += [(f"{name}__text_{i}", pl.String) for i in range(2, 100)]
    for candidate, kind in candidates:
        if candidate in staged:
            continue
        existing = table.get(candidate)
        if existing is None or existing == kind or existing == pl.Null:
            return candidate, kind
    raise RuntimeError(f"no free sibling column name for {name}")  # pragma: no cover


def plan_write(
    declared: Schema,
    batches: Sequence[Schema],
    table: Schema | None,
    frames: FrameSource,
    every_table_column: bool = False,
) -> WritePlan:
    """How to write the staged batches (`batches`: their schemas) into a table with schema
    `table` (None: no table yet). `declared` is the caller's schema for the base columns;
    `every_table_column` adds the table's other columns as nulls (a merge needs them all)."""
    plan = WritePlan(columns=[])
    names: list[str] = list(declared)
    for schema in batches:
        names.extend(n for n in schema if n not in names)
    all_staged: dict[str, pl.DataType] = {}
    for name in names:
        seen = [declared[name]] if name in declared else []
        seen += [schema[name] for schema in batches if name in schema]
        staged = pl.Null
        for dtype in seen:
            staged = widen(staged, dtype)
        all_staged[name] = staged
        kinds = list(dict.fromkeys(str(d) for d in seen if d != pl.Null))
        if len(kinds) > 1:
            plan.changes.append(
                f"{name}: batches disagreed ({', '.join(kinds)}); staged as {staged}"
            )
    for name in names:
        staged = all_staged[name]
        existing = None if table is None else table.get(name)
        if existing is None:
            if table is not None:
                plan.changes.append(f"{name}: new column ({staged})")
            plan.columns.append(ColumnPlan(name, staged, staged))
        elif existing == staged or existing == pl.Null:
            if existing != staged:
                plan.changes.append(f"{name}: Null → {staged} (the table's column had no type)")
            plan.columns.append(ColumnPlan(name, staged, staged))
        elif staged == pl.Null:
            plan.columns.append(ColumnPlan(name, staged, existing, Mode.CAST))
        elif _is_text(existing):
            plan.changes.append(f"{name}: {staged} → {existing} (the table's type; as text)")
            plan.columns.append(ColumnPlan(name, staged, existing, Mode.TEXT))
        else:
            taken = {**all_staged, **plan.schema}  # a sibling must not take a used name
            fitted = _fit_to_table(name, staged, existing, table or {}, taken, frames)
            plan.columns.append(fitted[0])
            plan.changes.append(fitted[1])
    written = set(plan.schema)
    missing = [n for n in (table or {}) if n not in written] if every_table_column else []
    for name in missing:
        dtype = (table or {})[name]
        plan.columns.append(ColumnPlan(name, dtype, dtype))
        plan.filled.append(name)
    return plan


def _fit_to_table(
    name: str,
    staged: pl.DataType,
    existing: pl.DataType,
    table: Schema,
    all_staged: Schema,
    frames: FrameSource,
) -> tuple[ColumnPlan, str]:
    """Cast to the table's type if every value fits, else split off what does not."""
    cast = ColumnPlan(name, staged, existing, Mode.CAST)
    misfits, castable = _misfits(cast, frames)
    if misfits == 0:
        return cast, f"{name}: {staged} → {existing} (the table's type; every value fits)"
    holder = widen(existing, staged)
    if holder == existing:  # e.g. huge Int64 into Float64: only text holds them exactly
        holder = pl.String
    sibling, sibling_type = _sibling_name(name, holder, table, all_staged)
    change = (
        f"{name}: {misfits} value(s) do not fit the table's {existing}; written to {sibling} "
        f"({sibling_type}) and left null in {name}"
    )
    split = ColumnPlan(name, staged, existing, Mode.SPLIT, sibling, sibling_type, castable)
    return split, change
