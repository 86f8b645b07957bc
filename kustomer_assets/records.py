"""Turn Kustomer JSON:API resources into typed, snake_case table rows.

Kustomer returns camelCase attributes, relationship objects and an open-ended `custom` map whose
keys carry their type as a suffix (`orderIdStr`, `refundAmountNum`, `vipBool`, `purchasedAt` ...).
Every column's type is decided here, at the boundary, so that each batch of a run -- and each run
of a table -- agrees on the schema: a column that is all-null in one batch must not become a
`Null` column that later fails to merge with a `Float64` one.

Nothing is dropped on the way: an attribute no column maps lands in `extra_attributes`, and a
value that does not fit its column's type (`"N/A"` for a number, `"soon"` for a timestamp, a list
where a scalar belongs) lands, as sent, in `unparsed_values` while the typed column stays null.

A batch is mapped column by column (`RecordMapper.frame`): one pass per level of the column
paths gathers the raw values, Arrow and polars type whole columns, and the row-wise rules below
(`convert`) only decide the rare values the vectorised parsers cannot vouch for. The result is
exactly what mapping row by row (`RecordMapper.row`) gives, which the tests check on generated
and drifting records.

Nothing here calls the network or knows about storage.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cached_property, lru_cache
from itertools import chain, repeat
from json.encoder import c_make_encoder, encode_basestring
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

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
        custom_types: dict[str, pl.DataType] = {}
        rows = [self.row(r, custom_types) for r in resources]
        schema = {**self.base_schema, **dict(sorted(custom_types.items()))}
        return pl.DataFrame(rows, schema=schema)

    @cached_property
    def _path_tree(self) -> dict[tuple[str, ...], list[str]]:
        return _path_tree(self.columns)

    @cached_property
    def _columnar(self) -> bool:
        """Whether `frame` can map this column set column by column: every type is one the
        vectorised rules cover, and no two columns share a name (row by row, the last wins)."""
        names = [c.name for c in self.columns]
        return len(set(names)) == len(names) and all(_kind(c.dtype) for c in self.columns)


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


# --- batches, column by column ---------------------------------------------------------------
#
# `RecordMapper.frame` types a batch a column at a time. One pass per path level gathers the
# raw values of every row (`_Level`, `_gather`); the Python types present in a column pick its
# route (`_typed`): Arrow parses ISO timestamps (Kustomer's documented form without even a
# regex, `_as_documented_timestamps`), polars casts numbers and flags, and whatever the
# vectorised parsers cannot vouch for -- a string that is not plainly shaped (" 7 ", "3,50",
# "2026-11-20 16:34"), an epoch outside the exactly representable range, a column mixing
# strings and numbers -- is decided by `convert`, the row-wise rules, so the two paths cannot
# disagree. Such values are rare, so the cost stays that of the common case. Misfits are
# found per column too; only rows holding one have their `unparsed_values` built in Python.
#
# The shapes below are deliberately narrower than what the rules accept: a value matching one
# must parse the same in Arrow/polars as in Python (no leap second, no year 0 or 9999 that
# `astimezone` would overflow, at most 6 fraction digits, ASCII digits only, no padding).

_NONE_TYPE: Final = type(None)
_dict_get: Final = dict.get
_EMPTY: Final[dict[str, Any]] = {}
"""Stands for a missing object while gathering (never written to)."""

_DATE_TIME = (
    r"[12][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
)
_ZONED_SHAPE: Final = rf"^{_DATE_TIME}(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
_NAIVE_SHAPE: Final = rf"^{_DATE_TIME}$"
_CHRONO_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.f%:z"
_DECIMAL_SHAPE: Final = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"
_DECIMAL_MAX_BYTES: Final = 40
_INTEGER_SHAPE: Final = r"^[+-]?[0-9]{1,18}$"
"""18 digits always fit Int64, so the cast cannot overflow."""
_FLAG_SHAPE: Final = r"^(?:[Tt][Rr][Uu][Ee]|[Yy][Ee][Ss]|1|[Ff][Aa][Ll][Ss][Ee]|[Nn][Oo]|0)$"
"""ASCII spellings only: Python's `lower()` and a Unicode-aware regex disagree on odd letters."""
_EPOCH_SECONDS_FROM: Final = -6 * 10**10
"""Earliest epoch second typed in polars (year 68); earlier ones are left to the rules."""
_EPOCH_MS_UP_TO: Final = 4 * 10**12
"""Largest epoch millisecond typed in polars (year 2096): below 2^32 s, `ms / 1000` as a float
is within a quarter microsecond of the exact value, so Python rounds it to the exact one."""
_TWO_63: Final = 2.0**63
_ARROW_TEXT_LIST: Final = pa.list_(pa.string())
_DOCUMENTED_FROM: Final = pa.scalar(datetime(1000, 1, 2, tzinfo=UTC), pa.timestamp("us", "UTC"))
_DOCUMENTED_UNTIL: Final = pa.scalar(datetime(2999, 12, 31, tzinfo=UTC), pa.timestamp("us", "UTC"))


class _RowwiseOnly(Exception):
    """The batch has a shape the columnar path leaves to `_frame_rowwise`."""


def _kind(dtype: Any) -> str | None:
    """Which vectorised rule set types `dtype` exactly as `convert` does (None: none does)."""
    if isinstance(dtype, pl.List):
        return "list" if dtype == ID_LIST else None
    if dtype == pl.Utf8:
        return "text"
    if isinstance(dtype, pl.Datetime):
        return "timestamp" if dtype == TIMESTAMP else None
    if dtype == pl.Float64:
        return "float"
    if dtype == pl.Int64:
        return "int"
    if dtype == pl.Boolean:
        return "bool"
    return None


@lru_cache(maxsize=4096)
def _custom_column(key: str) -> tuple[str, pl.DataType]:
    """Name and type of custom attribute `key` (the same keys come back batch after batch)."""
    return custom_column_name(key), custom_dtype(key)


def _json_encoder() -> Callable[[Any], str]:
    """`_json` for one value, without the JSONEncoder that `json.dumps` builds on every call.

    Made once per batch (the C encoder is what `json.dumps` ends up calling, with the same
    options), so its cycle markers start empty each batch.
    """
    if c_make_encoder is None:  # pragma: no cover - CPython ships the C encoder
        return _json
    encode = c_make_encoder({}, str, encode_basestring, None, ": ", ", ", True, False, True)
    return lambda value: "".join(encode(value, 0))


def _text(value: Any, encode: Callable[[Any], str]) -> str | None:
    """`_to_text` with a prebuilt encoder."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return encode(value)


def _text_list(value: Any, encode: Callable[[Any], str]) -> list[str] | None:
    """`_to_text_list` with a prebuilt encoder."""
    if value is None:
        return None
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, Mapping) and "id" in item:  # relationship identifiers
            item = item["id"]
        text = _text(item, encode)
        if text is not None:
            out.append(text)
    return out


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


def _typed(
    values: list[Any], dtype: pl.DataType, kind: str, encode: Callable[[Any], str]
) -> tuple[pl.Series, list[int]]:
    """The column `convert` gives for `values`, and the rows whose value did not fit.

    The Python types present pick the route; any mix the routes do not cover (a number column
    holding strings and ints, booleans where numbers belong ...) is typed by the rules.
    """
    if kind == "text":
        try:  # strict: takes str (and subclasses) and None only, as `_to_text` passes through
            return pl.Series(values, dtype=pl.Utf8, strict=True), []
        except (TypeError, ValueError):
            return pl.Series([_text(v, encode) for v in values], dtype=pl.Utf8), []
    if kind in ("timestamp", "bool"):  # the common cases, without a pass over the types
        try:  # strict: str (and subclasses) and None only, which the rules read as text
            strings = pl.Series(values, dtype=pl.Utf8, strict=True) if kind == "timestamp" else None
        except (TypeError, ValueError):
            strings = None
        if strings is not None and strings.null_count() < len(values):
            return _from_strings(values, dtype, kind, strings)
        if kind == "bool":
            try:  # strict: bools and None only
                return pl.Series(values, dtype=pl.Boolean, strict=True), []
            except (TypeError, ValueError):
                pass
    kinds = set(map(type, values))
    kinds.discard(_NONE_TYPE)
    if kind == "list":
        if kinds <= {list}:
            items = set(map(type, chain.from_iterable(filter(None, values))))
            if items <= {str, _NONE_TYPE}:  # Arrow converts lists ~50x faster than polars
                series = pl.Series(pa.array(values, type=_ARROW_TEXT_LIST))
                return (series.list.drop_nulls() if _NONE_TYPE in items else series), []
        texts = [_text_list(v, encode) for v in values]
        return pl.Series(pa.array(texts, type=_ARROW_TEXT_LIST)), []
    if not kinds:
        return pl.Series(values, dtype=dtype), []
    if kinds == {str}:
        return _from_strings(values, dtype, kind, pl.Series(values, dtype=pl.Utf8))
    if kinds == {int}:
        try:
            ints = pl.Series(values, dtype=pl.Int64)
        except (TypeError, OverflowError):  # beyond Int64: the rules say what fits
            return _by_rules(values, dtype)
        return _from_ints(values, dtype, kind, ints)
    if kinds == {float} and kind != "timestamp":
        return _from_floats(values, dtype, kind)
    if kinds == {int, float} and kind == "float":
        try:
            return pl.Series(values, dtype=pl.Float64), []
        except (TypeError, OverflowError):
            return _by_rules(values, dtype)
    if kinds == {bool} and kind == "bool":
        return pl.Series(values, dtype=pl.Boolean), []
    return _by_rules(values, dtype)


def _by_rules(values: list[Any], dtype: pl.DataType) -> tuple[pl.Series, list[int]]:
    """Type a whole column with `convert` (odd mixes of value types only)."""
    typed: list[Any] = []
    unparsable: list[int] = []
    for i, value in enumerate(values):
        converted = convert(value, dtype)
        if converted is UNPARSABLE:
            unparsable.append(i)
            converted = None
        typed.append(converted)
    return pl.Series(typed, dtype=dtype), unparsable


def _settle(
    values: list[Any], dtype: pl.DataType, typed: pl.Series, settled: pl.Series
) -> tuple[pl.Series, list[int]]:
    """Let `convert` decide the rows the vectorised parse did not settle (`settled` false):
    an odd shape, or a plain one that failed, such as February 30th."""
    todo = (~settled).arg_true().to_list()
    if not todo:
        return typed, []
    decided: list[Any] = []
    unparsable: list[int] = []
    for i in todo:
        converted = convert(values[i], dtype)
        if converted is UNPARSABLE:
            unparsable.append(i)
            converted = None
        decided.append(converted)
    typed = typed.clone()
    typed.scatter(todo, pl.Series(decided, dtype=dtype))
    return typed, unparsable


def _from_strings(
    values: list[str | None], dtype: pl.DataType, kind: str, strings: pl.Series
) -> tuple[pl.Series, list[int]]:
    """Strings (`strings`, as polars holds `values`) in a timestamp, number or flag column:
    plainly shaped ones are parsed here."""
    if kind == "timestamp":
        array = strings.to_arrow()
        typed = _as_documented_timestamps(array)
        if typed is not None:
            return typed, []
        if pc.all(pc.match_substring_regex(array, _ZONED_SHAPE)).as_py():
            try:  # other plain shapes: offsets, other fractions
                return pl.Series(array.cast(pa.timestamp("us", "UTC"))), []
            except pa.ArrowInvalid:  # a plain shape with an impossible date
                pass
        frame = pl.DataFrame({"s": strings}).select(
            pl.when(pl.col("s").str.contains(_NAIVE_SHAPE))
            .then(pl.col("s") + "+00:00")
            .when(pl.col("s").str.contains(_ZONED_SHAPE))
            .then(pl.col("s").str.replace("Z$", "+00:00"))
            .str.to_datetime(
                _CHRONO_FORMAT, time_unit="us", time_zone="UTC", strict=False, cache=False
            )
            .alias("typed")
        )
        typed = frame.to_series()
        return _settle(values, dtype, typed, strings.is_null() | typed.is_not_null())
    if kind == "float":
        shaped = strings.str.contains(_DECIMAL_SHAPE) & (
            strings.str.len_bytes() <= _DECIMAL_MAX_BYTES
        )
        number = strings.cast(pl.Float64, strict=False)
        typed = pl.select(pl.when(shaped & number.is_finite()).then(number)).to_series()
        return _settle(values, dtype, typed, strings.is_null() | typed.is_not_null())
    if kind == "int":
        shaped = strings.str.contains(_INTEGER_SHAPE)
        typed = pl.select(pl.when(shaped).then(strings.cast(pl.Int64, strict=False))).to_series()
        return _settle(values, dtype, typed, strings.is_null() | shaped)
    shaped = strings.str.contains(_FLAG_SHAPE)  # kind == "bool"
    truthy = strings.str.to_lowercase().is_in(sorted(_TRUE))
    typed = pl.select(pl.when(shaped).then(truthy)).to_series()
    return _settle(values, dtype, typed, strings.is_null() | shaped)


def _as_documented_timestamps(array: pa.Array) -> pl.Series | None:
    """Arrow's parse of a column entirely in Kustomer's documented form, or None.

    24 characters ending in `Z` leave Arrow's ISO-8601 grammar one layout,
    `YYYY-MM-DD(T| )HH:MM:SS.fffZ`, which Python reads alike; Arrow refuses impossible
    fields (Feb 30, 24:00, a leap second, year 0) as Python does, and years outside
    1000-2999 go the regex's way, like Python's overflows near year 1 and 9999. That saves the
    regex on the common case; the test suite fuzzes the claim against Python.
    """
    if not (
        pc.all(pc.equal(pc.utf8_length(array), 24)).as_py()
        and pc.all(pc.ends_with(array, "Z")).as_py()
    ):
        return None
    try:
        stamps = array.cast(pa.timestamp("us", "UTC"))
    except pa.ArrowInvalid:
        return None
    inside = pc.and_(pc.greater_equal(stamps, _DOCUMENTED_FROM), pc.less(stamps, _DOCUMENTED_UNTIL))
    return pl.Series(stamps) if pc.all(inside).as_py() else None


def _from_ints(
    values: list[int | None], dtype: pl.DataType, kind: str, ints: pl.Series
) -> tuple[pl.Series, list[int]]:
    """Python ints (no bools) already in an Int64 series."""
    if kind == "int":
        return ints, []
    if kind == "float":  # Int64 -> Float64 rounds to nearest, as float(int) does
        return ints.cast(pl.Float64), []
    if kind == "bool":
        flag = ints.is_in([0, 1])
        typed = pl.select(pl.when(flag).then(ints == 1)).to_series()
        return _settle(values, dtype, typed, ints.is_null() | flag)
    seconds = ints.is_between(_EPOCH_SECONDS_FROM, int(_EPOCH_MS_ABOVE))  # kind == "timestamp"
    millis = ints.is_between(int(_EPOCH_MS_ABOVE) + 1, _EPOCH_MS_UP_TO) | ints.is_between(
        -_EPOCH_MS_UP_TO, -int(_EPOCH_MS_ABOVE) - 1
    )
    micros = pl.select(
        pl.when(seconds).then(ints * 1_000_000).when(millis).then(ints * 1_000)
    ).to_series()
    typed = micros.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return _settle(values, dtype, typed, ints.is_null() | seconds | millis)


def _from_floats(
    values: list[float | None], dtype: pl.DataType, kind: str
) -> tuple[pl.Series, list[int]]:
    """Python floats in a number or flag column (epoch floats are left to the rules)."""
    floats = pl.Series(values, dtype=pl.Float64)
    if kind == "float":  # NaN and infinities stay, as float() keeps them
        return floats, []
    if kind == "int":  # integral, finite and in range; 5.5 is never truncated
        fits = (
            floats.is_finite()
            & (floats == floats.floor())
            & (floats >= -_TWO_63)
            & (floats < _TWO_63)
        )
        typed = pl.select(pl.when(fits).then(floats.cast(pl.Int64, strict=False))).to_series()
        return _settle(values, dtype, typed, floats.is_null() | fits)
    flag = (floats == 0.0) | (floats == 1.0)  # kind == "bool"
    typed = pl.select(pl.when(flag).then(floats == 1.0)).to_series()
    return _settle(values, dtype, typed, floats.is_null() | flag)


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
