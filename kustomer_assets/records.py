"""Turn Kustomer JSON:API resources into typed, snake_case table rows.

Kustomer returns camelCase attributes, relationship objects and an open-ended `custom` map whose
keys carry their type as a suffix (`orderIdStr`, `refundAmountNum`, `vipBool`, `purchasedAt` ...).
Every column's type is decided here, at the boundary, so that each batch of a run -- and each run
of a table -- agrees on the schema: a column that is all-null in one batch must not become a
`Null` column that later fails to merge with a `Float64` one.

Nothing is dropped on the way: an attribute no column maps lands in `extra_attributes`, and a
value that does not fit its column's type (`"N/A"` for a number, `"soon"` for a timestamp, a list
where a scalar belongs) lands, as sent, in `unparsed_values` while the typed column stays null.

Nothing here calls the network or knows about storage.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final

import polars as pl

TIMESTAMP = pl.Datetime("us", "UTC")
ID_LIST = pl.List(pl.Utf8)
TEXT_LIST = pl.List(pl.Utf8)

PARTITION_COLUMN = "partition_date"
"""UTC day of `updated_at`: the Dagster partition a row belongs to."""

EXTRA_ATTRIBUTES_COLUMN = "extra_attributes"
"""Attributes this version does not map yet, kept as JSON so an API addition is never lost."""

UNPARSED_COLUMN = "unparsed_values"
"""Values that did not fit their column's type, kept as sent so a bad value is never lost."""

BASE_COLUMN_DESCRIPTIONS: Final[dict[str, str]] = {
    EXTRA_ATTRIBUTES_COLUMN: (
        "Attributes Kustomer sent that have no column of their own yet, as a JSON object "
        "(attribute name -> value as sent). Null when every attribute has a column."
    ),
    UNPARSED_COLUMN: (
        'Values Kustomer sent that did not fit their column\'s type, e.g. "N/A" or "3,50" in '
        'a number field or "soon" in a date field: a JSON object from the source attribute '
        "(`priority`, `custom.refundAmountNum` ...) to the value exactly as sent. The typed "
        "column is null on that row, so look here before reading a null as 'no value'. Null "
        "when every value fit."
    ),
    PARTITION_COLUMN: "UTC day of `updated_at`: the daily partition the row belongs to.",
}
"""What analysts read about the columns every table has (the UI's column schema)."""


# --- walking a resource ----------------------------------------------------------------------


class _Unparsable(Enum):
    """Marks a value that does not fit its type (a sentinel, since None means 'no value')."""

    VALUE = "unparsable"


UNPARSABLE: Final = _Unparsable.VALUE


@dataclass(frozen=True)
class Misfit:
    """A value at `source` that could not be read as its column needs, kept as sent."""

    source: str
    value: Any


def _source_name(steps: Sequence[str]) -> str:
    """Name an analyst recognises: the attribute path as Kustomer spells it (`priority`,
    `satisfactionLevel.rating`), or the full path outside `attributes` (`relationships.x.data`)."""
    if len(steps) > 1 and steps[0] == "attributes":
        steps = steps[1:]
    return ".".join(steps)


def _walk(
    value: Any, path: Sequence[str], walked: tuple[str, ...] = ()
) -> tuple[Any, Misfit | None]:
    """Follow `path`; a non-container met where the path goes on is a misfit, not a silent null
    (`firstResponse: "x"` must not quietly erase what `firstResponse.time` would have held)."""
    for i, step in enumerate(path):
        if value is None:
            return None, None
        if step == "*":
            if not isinstance(value, list):
                return None, Misfit(_source_name(walked), value)
            rest = path[i + 1 :]
            items = [_walk(item, rest, walked) for item in value]
            misfit = Misfit(_source_name(walked), value) if any(m for _, m in items) else None
            return [item for item, _ in items], misfit
        if not isinstance(value, Mapping):
            return None, Misfit(_source_name(walked), value)
        value = value.get(step)
        walked = (*walked, step)
    return value, None


@dataclass(frozen=True)
class Column:
    """One typed column taken from a path inside a JSON:API resource.

    `path` walks dicts by key; the special step `"*"` maps the rest of the path over a list,
    which is how relationship lists (`relationships.assignedUsers.data[*].id`) become id lists.
    """

    name: str
    path: tuple[str, ...]
    dtype: pl.DataType
    description: str
    derive: Callable[[Any], Any] | None = None
    """Optional step applied to the value at `path` before coercion (e.g. pick free-text
    answers out of a CSAT answer list)."""

    @property
    def source(self) -> str:
        return _source_name(self.path)

    def read(self, resource: Mapping[str, Any]) -> tuple[Any, Misfit | None]:
        """The typed value, and what could not be typed (as sent) when something did not fit."""
        raw, misfit = _walk(resource, self.path)
        value = self.derive(raw) if self.derive is not None else raw
        typed = convert(value, self.dtype)
        if typed is UNPARSABLE:
            return None, Misfit(self.source, raw)
        return typed, misfit

    def extract(self, resource: Mapping[str, Any]) -> Any:
        """The typed value alone (None when it did not fit)."""
        return self.read(resource)[0]


def attr(name: str, key: str, dtype: pl.DataType, description: str) -> Column:
    """A column read from `attributes.<key>`."""
    return Column(name, ("attributes", *key.split(".")), dtype, description)


def rel(name: str, relationship: str, description: str) -> Column:
    """An id column read from a to-one relationship (`relationships.<rel>.data.id`)."""
    return Column(name, ("relationships", relationship, "data", "id"), pl.Utf8, description)


# --- scalar conversion -----------------------------------------------------------------------
#
# Rules, strict on purpose: a value is typed only when its meaning is unambiguous, otherwise it
# is kept as sent (UNPARSABLE) rather than guessed. So "12.5" and " 12 " are numbers, but "3,50"
# (decimal comma or thousands separator?), "1_000", "nan", "$5" and `true` are not; 5.5 is not
# an integer (it is never truncated to 5); 5 is not a boolean (only 0 and 1 are). Null and blank
# strings mean "no value" for typed columns. Text columns take any value: non-strings are
# stored as JSON text, which loses nothing.

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_EPOCH_MS_ABOVE = 1e11
"""Epoch numbers above this are milliseconds (1e11 s is year 5138; 1e11 ms is 1973)."""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_timestamp(value: Any) -> datetime | _Unparsable:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return UNPARSABLE
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > _EPOCH_MS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return UNPARSABLE
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return UNPARSABLE
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return UNPARSABLE


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with `Z` or an offset) or epoch seconds/milliseconds -> aware UTC datetime.

    Kustomer documents `2026-11-20T16:34:00.000Z`; epoch numbers and offsets are accepted so a
    server that deviates does not turn every timestamp into null. None when it is not a time.
    """
    if _is_blank(value):
        return None
    parsed = _to_timestamp(value)
    return None if parsed is UNPARSABLE else parsed


def _decimal(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid decimals
        return None


def _to_float(value: Any) -> float | _Unparsable:
    if isinstance(value, bool):
        return UNPARSABLE
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return UNPARSABLE
    if isinstance(value, str):
        number = _decimal(value)
        if number is None:
            return UNPARSABLE
        result = float(number)
        return result if math.isfinite(result) else UNPARSABLE
    return UNPARSABLE


def _to_int(value: Any) -> int | _Unparsable:
    if isinstance(value, bool):
        return UNPARSABLE
    number: int | float | Decimal | None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = value if math.isfinite(value) and value.is_integer() else None
    elif isinstance(value, str):
        number = _decimal(value)
        if number is not None and number != number.to_integral_value():
            number = None
    else:
        number = None
    # Range first: int() of a huge decimal like "1e999999999" would build a billion digits.
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        return UNPARSABLE
    return int(number)


def _to_bool(value: Any) -> bool | _Unparsable:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return UNPARSABLE


def _to_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _to_text_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping) and "id" in item:  # relationship identifiers
            item = item["id"]
        text = _to_text(item)
        if text is not None:
            out.append(text)
    return out


def convert(value: Any, dtype: pl.DataType) -> Any:
    """Bring a JSON value to the Python type polars expects for `dtype`; None for no value,
    `UNPARSABLE` when there is a value that does not fit (the caller keeps it as sent)."""
    if isinstance(dtype, pl.List):
        return _to_text_list(value)
    if dtype == pl.Utf8:
        return _to_text(value)
    if _is_blank(value):
        return None
    if dtype == TIMESTAMP:
        return _to_timestamp(value)
    if dtype == pl.Float64:
        return _to_float(value)
    if dtype == pl.Int64:
        return _to_int(value)
    if dtype == pl.Boolean:
        return _to_bool(value)
    return _to_text(value)


def coerce(value: Any, dtype: pl.DataType) -> Any:
    """Like `convert`, with None for a value that does not fit (for callers that only need the
    typed value; row mapping keeps the value itself)."""
    converted = convert(value, dtype)
    return None if converted is UNPARSABLE else converted


# --- custom attributes -----------------------------------------------------------------------

CUSTOM_SUFFIX_TYPES: dict[str, pl.DataType] = {
    "Str": pl.Utf8,
    "Txt": pl.Utf8,
    "Tree": pl.Utf8,
    "Url": pl.Utf8,
    "Id": pl.Utf8,
    "Num": pl.Float64,
    "Bool": pl.Boolean,
    "At": TIMESTAMP,
}
"""Kustomer types a custom attribute by its name's suffix (see the API notes)."""

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CANONICAL_KEY = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)*")
"""Kustomer's camelCase: lower-case start, then words of ONE capital and lower-case letters or
digits. Snake-casing such a key can be undone (a `_` before each capital), so it is lossless."""

CUSTOM_HASH_LENGTH = 10
"""Hex digits of SHA-256 appended to a lossy name: 40 bits. Only keys that snake-case alike
can meet at all (a handful at most), and any two of them do with odds of 2^-40 (1 in 10^12)."""


def snake_case(name: str) -> str:
    """`contactReasonTree` -> `contact_reason_tree`; also folds odd characters to `_`."""
    spaced = _CAMEL_BOUNDARY.sub("_", name)
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def custom_column_name(attribute: str) -> str:
    """The column for custom attribute `attribute`: a function of the key alone, so it is the
    same in every batch and run whatever other keys exist, and distinct for distinct keys.

    A canonical camelCase key keeps the plain name (`orderIdStr` -> `custom_order_id_str`), so
    existing tables keep their columns. Any other key (`vip_bool`, `URLPathStr`, `vip bool`,
    `prénomStr`) snake-cases lossily -- `vip_bool` and `vipBool` would meet -- so it gets
    `__` and a hash of the exact key: `custom_vip_bool__<10 hex>`. A canonical name never holds
    `__` (snake_case never emits two `_` in a row), so the two forms cannot meet either.
    """
    snake = snake_case(attribute)
    if _CANONICAL_KEY.fullmatch(attribute):
        return f"custom_{snake}"
    digest = hashlib.sha256(attribute.encode("utf-8")).hexdigest()[:CUSTOM_HASH_LENGTH]
    return f"custom_{snake}__{digest}"


def custom_dtype(attribute: str) -> pl.DataType:
    """Type from the suffix; the longest matching suffix wins (`...At` vs `...Str`).

    The suffix is matched case-sensitively on the exact key, canonical or not: `vip_Bool` is a
    Boolean, `vip_bool` is text. A wrong guess costs nothing, since a value that does not fit
    is kept in `unparsed_values`.
    """
    for suffix in sorted(CUSTOM_SUFFIX_TYPES, key=len, reverse=True):
        if attribute.endswith(suffix) and len(attribute) > len(suffix):
            return CUSTOM_SUFFIX_TYPES[suffix]
    return pl.Utf8


# --- rows ------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


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
        row: dict[str, Any] = {}
        unparsed: dict[str, Any] = {}
        for column in self.columns:
            row[column.name], misfit = column.read(resource)
            if misfit is not None:
                unparsed[misfit.source] = misfit.value
        attributes = resource.get("attributes")
        if not isinstance(attributes, Mapping):
            if attributes is not None:
                unparsed["attributes"] = attributes
            attributes = {}
        custom = attributes.get("custom") if self.keep_custom else None
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
            if k not in self.mapped_attributes and k != "custom" and v is not None
        }
        row[EXTRA_ATTRIBUTES_COLUMN] = _json(extra) if extra else None
        row[UNPARSED_COLUMN] = _json(unparsed) if unparsed else None
        updated_at = row.get("updated_at")
        row[PARTITION_COLUMN] = updated_at.date() if isinstance(updated_at, datetime) else None
        return row

    def frame(self, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """A typed frame for one batch; custom columns present in the batch get suffix types."""
        custom_types: dict[str, pl.DataType] = {}
        rows = [self.row(r, custom_types) for r in resources]
        schema = {**self.base_schema, **dict(sorted(custom_types.items()))}
        return pl.DataFrame(rows, schema=schema)


def mapped_attribute_names(columns: Iterable[Column]) -> frozenset[str]:
    """Top-level attribute keys a column set already covers (so they stay out of extras)."""
    return frozenset(c.path[1] for c in columns if len(c.path) > 1 and c.path[0] == "attributes")


def unparsed_counts(frame: pl.DataFrame) -> Counter[str]:
    """Rows per source attribute whose value was kept in `unparsed_values`, for run metadata
    (e.g. `{"custom.refundAmountNum": 3}`); only rows that have such values are decoded."""
    counts: Counter[str] = Counter()
    if UNPARSED_COLUMN not in frame.columns:
        return counts
    for text in frame.get_column(UNPARSED_COLUMN).drop_nulls():
        counts.update(json.loads(text).keys())
    return counts


def rows_with_unparsed_values(frame: pl.DataFrame) -> int:
    """Rows that kept at least one value in `unparsed_values`."""
    if UNPARSED_COLUMN not in frame.columns:
        return 0
    return frame.height - frame.get_column(UNPARSED_COLUMN).null_count()
