"""Scalar rules: one JSON value -> the Python value polars expects for a column's type.

These are the row-wise rules every value is judged by (the vectorised path in `typed_columns`
defers to them for any value it cannot vouch for), kept apart so both paths import one copy.
Times are read by the one parser (`kustomer_assets.timestamps.parse_time`, epoch numbers
included); the tables keep their own reading of `Z` before it (see `_to_timestamp`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final

import polars as pl

from kustomer_assets.timestamps import parse_time

TIMESTAMP = pl.Datetime("us", "UTC")
ID_LIST = pl.List(pl.Utf8)
TEXT_LIST = pl.List(pl.Utf8)


class _Unparsable(Enum):
    """Marks a value that does not fit its type (a sentinel, since None means 'no value')."""

    VALUE = "unparsable"


UNPARSABLE: Final = _Unparsable.VALUE


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


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_timestamp(value: Any) -> datetime | _Unparsable:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return UNPARSABLE
    if isinstance(value, int | float):
        moment = parse_time(value, epoch=True)
        return UNPARSABLE if moment is None else moment
    if isinstance(value, str):
        # The client's parser, after the tables' own reading of UTC: every `Z` is `+00:00`
        # and a lower-case `z` is not UTC (the client reads a final `Z` or `z` only). Tables
        # have always been typed that way, and the vectorised path is checked against it.
        text = value.strip()
        parsed = None if text.endswith("z") else parse_time(text.replace("Z", "+00:00"))
        return UNPARSABLE if parsed is None else parsed
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


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
