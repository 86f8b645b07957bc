"""Typing one gathered column at once, exactly as the row-wise rules (`values.convert`) would.

`RecordMapper.frame` types a batch a column at a time. One pass per path level gathers the
raw values of every row (`_Level`, `_gather`); the Python types present in a column pick its
route (`_typed`): Arrow parses ISO timestamps (Kustomer's documented form without even a
regex, `_as_documented_timestamps`), polars casts numbers and flags, and whatever the
vectorised parsers cannot vouch for -- a string that is not plainly shaped (" 7 ", "3,50",
"2026-11-20 16:34"), an epoch outside the exactly representable range, a column mixing
strings and numbers -- is decided by `convert`, the row-wise rules, so the two paths cannot
disagree. Such values are rare, so the cost stays that of the common case. Misfits are
found per column too; only rows holding one have their `unparsed_values` built in Python.

The shapes below are deliberately narrower than what the rules accept: a value matching one
must parse the same in Arrow/polars as in Python (no leap second, no year 0 or 9999 that
`astimezone` would overflow, at most 6 fraction digits, ASCII digits only, no padding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from itertools import chain
from json.encoder import c_make_encoder, encode_basestring
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kustomer_assets.records.values import (
    _TRUE,
    ID_LIST,
    TIMESTAMP,
    UNPARSABLE,
    _json,
    convert,
)
from kustomer_assets.timestamps import EPOCH_MS_ABOVE as _EPOCH_MS_ABOVE

_NONE_TYPE: Final = type(None)

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
