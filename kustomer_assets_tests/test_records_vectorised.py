"""`RecordMapper.frame` (column by column) against the row-by-row mapping it replaced.

The reference below is a frozen copy of the row-wise implementation as it was before the
columnar one (`records.py` at 24cd164: `_walk`, `convert` and its rules, custom naming and
`RecordMapper.row`/`frame`), so a change to the module's own rules cannot make both sides
drift together unnoticed. Every comparison is exact: same columns in the same order, same
types, same values -- NaN equal to NaN, -0.0 not equal to 0.0, every datetime to the
microsecond -- and the same exception when the reference raises.

Inputs: every entity of the emulator's dataset (several seeds and sizes, with the emulator's
own schema-drift patches), then hand-written drift -- a zoo of odd values (strings where
numbers belong, lists where scalars belong, epochs, offsets, "3,50", huge ints, NaN ...)
placed in every typed column, both one kind per column (the vectorised routes) and mixed
(the rules' route) -- odd shapes (attributes, custom or relationships that are not objects),
unknown attributes, colliding custom keys, and seeded random batches built from all of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pytest

from kustomer_assets import records
from kustomer_assets.emulator import EmulatorConfig
from kustomer_assets.emulator.dataset import generate_dataset
from kustomer_assets.entities import (
    CONVERSATIONS,
    CUSTOMERS,
    ENTITIES,
    MESSAGES,
    SATISFACTION,
    USERS,
    EntitySpec,
)
from kustomer_assets.extract import custom_attribute_records
from kustomer_assets.records import (
    EXTRA_ATTRIBUTES_COLUMN,
    ID_LIST,
    PARTITION_COLUMN,
    TIMESTAMP,
    UNPARSED_COLUMN,
    Column,
    RecordMapper,
    attr,
)

# --- the reference: row-wise mapping, frozen as it was before the columnar path ------------------


class _Unparsable(Enum):
    VALUE = "unparsable"


UNPARSABLE: Final = _Unparsable.VALUE


@dataclass(frozen=True)
class Misfit:
    source: str
    value: Any


def _source_name(steps: Sequence[str]) -> str:
    if len(steps) > 1 and steps[0] == "attributes":
        steps = steps[1:]
    return ".".join(steps)


def _walk(
    value: Any, path: Sequence[str], walked: tuple[str, ...] = ()
) -> tuple[Any, Misfit | None]:
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


def _read(column: Column, resource: Mapping[str, Any]) -> tuple[Any, Misfit | None]:
    raw, misfit = _walk(resource, column.path)
    value = column.derive(raw) if column.derive is not None else raw
    typed = convert(value, column.dtype)
    if typed is UNPARSABLE:
        return None, Misfit(_source_name(column.path), raw)
    return typed, misfit


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_EPOCH_MS_ABOVE = 1e11


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


def _decimal(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
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
        if isinstance(item, Mapping) and "id" in item:
            item = item["id"]
        text = _to_text(item)
        if text is not None:
            out.append(text)
    return out


def convert(value: Any, dtype: pl.DataType) -> Any:
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
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CANONICAL_KEY = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)*")


def snake_case(name: str) -> str:
    spaced = _CAMEL_BOUNDARY.sub("_", name)
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def custom_column_name(attribute: str) -> str:
    snake = snake_case(attribute)
    if _CANONICAL_KEY.fullmatch(attribute):
        return f"custom_{snake}"
    digest = hashlib.sha256(attribute.encode("utf-8")).hexdigest()[:10]
    return f"custom_{snake}__{digest}"


def custom_dtype(attribute: str) -> pl.DataType:
    for suffix in sorted(CUSTOM_SUFFIX_TYPES, key=len, reverse=True):
        if attribute.endswith(suffix) and len(attribute) > len(suffix):
            return CUSTOM_SUFFIX_TYPES[suffix]
    return pl.Utf8


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _row(
    mapper: RecordMapper, resource: Mapping[str, Any], custom_types: dict[str, pl.DataType]
) -> dict:
    row: dict[str, Any] = {}
    unparsed: dict[str, Any] = {}
    for column in mapper.columns:
        row[column.name], misfit = _read(column, resource)
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


def reference_frame(mapper: RecordMapper, resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """`RecordMapper.frame` as it was, row by row."""
    custom_types: dict[str, pl.DataType] = {}
    rows = [_row(mapper, r, custom_types) for r in resources]
    schema = {**mapper.base_schema, **dict(sorted(custom_types.items()))}
    return pl.DataFrame(rows, schema=schema)


# --- exact comparison ----------------------------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
    """Equal, with NaN == NaN, -0.0 != 0.0, and datetimes equal in value and zone."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def assert_same_frame(expected: pl.DataFrame, actual: pl.DataFrame) -> None:
    assert actual.columns == expected.columns
    assert actual.schema == expected.schema
    assert actual.height == expected.height
    for name in expected.columns:
        want, got = expected[name].to_list(), actual[name].to_list()
        bad = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if not same_value(w, g)]
        assert not bad, (name, [(i, want[i], got[i]) for i in bad[:5]])


def outcome(build: Callable[[], pl.DataFrame]) -> pl.DataFrame | tuple[str, type]:
    try:
        return build()
    except Exception as error:  # the reference raising is an outcome to match too
        return ("raised", type(error))


def check(mapper: RecordMapper, resources: list[Any]) -> pl.DataFrame | None:
    """The columnar frame equals the reference (or both raise the same exception type)."""
    expected = outcome(lambda: reference_frame(mapper, resources))
    actual = outcome(lambda: mapper.frame(resources))
    if isinstance(expected, tuple) or isinstance(actual, tuple):
        assert actual == expected
        return None
    assert_same_frame(expected, actual)
    assert_same_frame(expected, mapper._frame_rowwise(resources))
    return actual


# --- the emulator's records ----------------------------------------------------------------------


def records_of(spec: EntitySpec, dataset: Any) -> list[dict[str, Any]]:
    if spec.kustomer_type == "metadata":
        return [
            record
            for obj, resource in sorted(dataset.metadata.items())
            for record in custom_attribute_records(obj, resource)
        ]
    return dataset.all(spec.kustomer_type)


NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seed", "days", "scale"), [(1, 6, 0.5), (11, 25, 2.0)])
def test_every_entity_of_the_emulator_maps_exactly_as_row_by_row(
    seed: int, days: int, scale: float
) -> None:
    dataset = generate_dataset(EmulatorConfig(seed=seed, days=days, scale=scale, now=NOW))
    for spec in ENTITIES:
        records = records_of(spec, dataset)
        assert records, spec.name
        for start in range(0, len(records), 5_000):  # batches as the loader stages them
            frame = check(spec.mapper, records[start : start + 5_000])
            assert frame is not None and frame.height, spec.name
        check(spec.mapper, records[:1])


def test_the_emulators_schema_drift_maps_exactly_as_row_by_row() -> None:
    dataset = generate_dataset(EmulatorConfig(seed=4, days=10, scale=1.0, now=NOW))
    drift: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("conversation", {"refundAmountNum": "3,50", "vipBool": "maybe"}, {"priority": "high"}),
        ("conversation", {"purchasedAt": 1763656440123, "orderIdStr": 12}, {"priority": 4.0}),
        ("conversation", {"refundAmountNum": [1, 2], "newThingNum": {"a": 1}}, {"rev": "7"}),
        ("conversation", {}, {"satisfactionLevel": "rated", "firstResponse": [1]}),
        ("message", {"sentimentScoreNum": "0.5", "sentimentStr": None}, {"size": "big"}),
        ("message", {}, {"sentAt": "2026-11-20T17:34:00.123+01:00", "meta": "x"}),
        ("customer", {"lifetimeValueNum": float("nan"), "newsletterBool": 1}, {"emails": "a@b"}),
        ("customer", {"lastOrderAt": "yesterday"}, {"phones": [{"phone": 5}, "x", None]}),
        ("kobject", {"amountNum": "1e3", "skuStr": ["a"]}, {"title": 5}),
        ("note", {}, {"userMentions": [{"id": "u1"}, "u2", None, 3], "deletedAt": 0}),
    ]
    for type_, custom, attributes in drift:
        dataset.patch(type_, n=40, custom=custom, attributes=attributes)
    for spec in ENTITIES:
        records = records_of(spec, dataset)
        for start in range(0, len(records), 5_000):
            check(spec.mapper, records[start : start + 5_000])


# --- a zoo of odd values -------------------------------------------------------------------------

TIMESTAMP_TEXTS = [
    "2026-11-20T16:34:00.123Z",
    "2026-11-20T16:34:00Z",
    "2026-11-20T16:34:00.1Z",
    "2026-11-20T16:34:00.123456Z",
    "2026-11-20T16:34:00.1234567Z",
    "2026-11-20T17:34:00.123+01:00",
    "2026-11-20T11:04:00.123-05:30",
    "2026-11-20T16:34:00-00:00",
    "2026-11-20T16:34:00+23:59",
    "2026-11-20T16:34:00",
    "2026-11-20T16:34:00.5",
    "2026-11-20 16:34:00Z",
    "2026-11-20",
    "2026-11-20T16:34Z",
    "2026-11-20T16Z",
    "2026-02-30T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2026-04-31T00:00:00.000Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T23:59:60Z",
    "2026-11-20T23:60:00Z",
    "2026-13-01T00:00:00Z",
    "2026-00-10T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1000-01-01T00:00:00Z",
    "1000-01-01T00:30:00+01:00",
    "2999-12-31T23:59:59.999999Z",
    "3000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59.999Z",
    "2026-11-20T16:34:00.123z",
    "2026-11-20T16:34:00+0100",
    "2026-11-20T16:34:00+01",
    "  2026-11-20T16:34:00Z ",
    "2026-11-20T16:34:00.123ZZ",
    "2026-W47-5",
    "20261120T163400Z",
    "2026-11-20T16:34:00,5Z",
    "2026-11-20T16:34:00.Z",
    "\uff12\uff10\uff12\uff16-11-20T16:34:00Z",  # full-width digits
    "soon",
]
NUMBER_TEXTS = [
    "12.5",
    " 7 ",
    "7",
    "+7",
    "-0",
    "0",
    "007",
    "1e3",
    "1E+03",
    "1e-400",
    "1e400",
    "1e999999999",
    "1e99999999999999999999",
    "2.0",
    "2.5",
    "5.",
    ".5",
    "-.5e-3",
    "00.1",
    "3,50",
    "1_000",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "0x10",
    "$5",
    "\u0663",  # Arabic-Indic three: Python's \d takes it
    "\uff11\uff12",  # full-width 12
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "123456789012345678",
    "1234567890123456789",
    "9007199254740993",
    "2.2250738585072011e-308",
    "0.1000000000000000055511151231257827",
    "1" * 60,
    "1763656440123",
    "1763656440",
    "N/A",
]
FLAG_TEXTS = [
    "true",
    "True",
    "TRUE",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "false",
    "FALSE",
    "0",
    "1",
    " yes ",
    "\tno\n",
    "on",
    "off",
    "t",
    "ye\u017f",  # long s: a Unicode-aware (?i) regex would read "yes"
    "maybe",
    "\uff34\uff32\uff35\uff25",  # full-width TRUE
]
OTHER_TEXTS = [
    "",
    " ",
    "\t\n",
    "\u00a0",
    "\u2003",
    "café ☕",
    'quote " and back\\slash',
    "control \x00 \x1f \x7f",
    "line\u2028sep",
    "emoji 😀🇯🇵",
    "x" * 1500,
]
INTS = [
    0,
    1,
    -1,
    5,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**20,
    2**64 + 3,
    -(2**80) - 1,
    1763656440,
    1763656440123,
    10**11,
    10**11 + 1,
    -(10**11) - 1,
    4 * 10**12,
    4 * 10**12 + 1,
    -4 * 10**12,
    -6 * 10**10,
    -6 * 10**10 - 1,
    253402300799,
    10**15,
    -62135596800,
    2**31,
]
FLOATS = [
    0.0,
    -0.0,
    1.0,
    5.5,
    -3.25,
    1e300,
    1e-300,
    0.1,
    float("nan"),
    float("inf"),
    float("-inf"),
    2.0**63,
    -(2.0**63),
    2.0**53 + 2,
    1763656440.5,
    1763656440123.0,
    1e11,
    4e12,
]
BOOLS = [True, False]
CONTAINERS = [
    [],
    [1, 2],
    ["a", None, "b"],
    ["x"],
    [{"id": "i1"}, {"name": "y"}, None, 5, 1.5, True, ["n"]],
    {},
    {"a": 1},
    {"id": "z"},
    {"when": "later", "b": [1, {"c": None}]},
]
ODD_PYTHON = [
    ("t", "u"),
    Decimal("1.5"),
    datetime(2026, 11, 20, 16, 34, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 11, 20, 16, 34),
    date(2026, 11, 20),
    b"bytes",
]
FAMILIES: dict[str, list[Any]] = {
    "timestamp texts": TIMESTAMP_TEXTS,
    "number texts": NUMBER_TEXTS,
    "flag texts": FLAG_TEXTS,
    "other texts": OTHER_TEXTS,
    "ints": INTS,
    "floats": FLOATS,
    "bools": BOOLS,
    "containers": CONTAINERS,
    "ints and floats": INTS[:12] + FLOATS,
    "strings and nulls": [None, *TIMESTAMP_TEXTS[:5], None, *NUMBER_TEXTS[:5]],
    "nulls": [None],
    "everything": [
        *TIMESTAMP_TEXTS,
        *NUMBER_TEXTS,
        *FLAG_TEXTS,
        *OTHER_TEXTS,
        *INTS,
        *FLOATS,
        *BOOLS,
        *CONTAINERS,
        *ODD_PYTHON,
        None,
    ],
}
"""Odd values by Python type: a column filled from one family takes that type's vectorised
route; "everything" mixes them, which types the column by the rules."""

DRIFT_ATTRIBUTES = [
    "updatedAt",
    "createdAt",
    "priority",
    "messageCount",
    "satisfaction",
    "ended",
    "deleted",
    "name",
    "preview",
    "channels",
    "tags",
    "assignedUsers",
    "lastMessageAt",
    "endedAt",
    "externalId",
    "brandNewAttribute",
]
"""Conversation attributes of every column type (and one no column maps)."""
DRIFT_CUSTOM = ["amountNum", "vipBool", "shippedAt", "noteStr", "bodyTxt", "plain"]


def conversation(n: int, attributes: dict[str, Any] | None = None, **top: Any) -> dict:
    base: dict[str, Any] = {
        "updatedAt": f"2026-11-{1 + n % 28:02d}T16:34:00.123Z",
        "createdAt": "2026-11-19T08:00:00.000Z",
        "status": "open",
        "channels": ["email", "chat"],
        "messageCount": 4,
        "assignedUsers": ["5f1e00000000000000000001"],
        "firstResponse": {"createdAt": "2026-11-19T09:00:00.000Z", "time": 3600000},
        "satisfactionLevel": {"score": 1, "rating": 5, "formResponse": "ab" * 12},
        "custom": {"orderIdStr": f"A-{n}"},
    }
    base.update(attributes or {})
    resource = {
        "type": "conversation",
        "id": f"{n:024x}",
        "attributes": base,
        "relationships": {"customer": {"data": {"type": "customer", "id": "c" * 24}}},
    }
    resource.update(top)
    return resource


def family_batch(values: list[Any]) -> list[dict[str, Any]]:
    """Rows where every drift attribute and custom key takes values from `values`, each at its
    own offset, so every value meets every column type."""
    keys = DRIFT_ATTRIBUTES + [f"custom.{k}" for k in DRIFT_CUSTOM]
    rows = []
    for n in range(max(3 * len(values), 3)):
        attributes: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for offset, key in enumerate(keys):
            value = values[(n + 7 * offset) % len(values)]
            if key.startswith("custom."):
                custom[key.removeprefix("custom.")] = value
            else:
                attributes[key] = value
        attributes["custom"] = custom
        rows.append(conversation(n, attributes))
    return rows


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_odd_values_map_exactly_as_row_by_row(family: str) -> None:
    batch = family_batch(FAMILIES[family])
    frame = check(CONVERSATIONS.mapper, batch)
    if family != "nulls":
        assert frame is not None and frame[UNPARSED_COLUMN].null_count() < frame.height


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_odd_value_in_a_plain_column_maps_exactly(family: str) -> None:
    """A value of its own among well-formed ones: the vectorised route settles the plain
    values and leaves the odd one to the rules."""
    for value in FAMILIES[family]:
        batch = [conversation(n) for n in range(20)]
        batch[7]["attributes"].update(
            {key: value for key in ("updatedAt", "priority", "satisfaction", "ended", "tags")}
        )
        batch[7]["attributes"]["custom"] = {key: value for key in DRIFT_CUSTOM}
        check(CONVERSATIONS.mapper, batch)


def test_odd_shapes_map_exactly_as_row_by_row() -> None:
    weird_relationships = [
        {"customer": {"data": [{"id": "c1"}, {"id": "c2"}]}},
        {"customer": {"data": "c3"}},
        {"customer": "c4"},
        {"customer": {"data": {"id": 5}}},
        {"customer": {"data": {"id": None}}},
        {"customer": {"data": {}}},
        {"customer": None},
        "relationships",
        [1, 2],
        None,
        {},
    ]
    batch = [
        conversation(0, attributes=None),
        conversation(1, {"firstResponse": "fast", "satisfactionLevel": [5], "queue": 7}),
        conversation(2, {"firstResponse": {"time": "soon", "createdAt": 5}, "queue": {"id": 3}}),
        conversation(3, {"satisfactionLevel": None, "firstDone": "", "lastDone": 0}),
        conversation(4, {"custom": "oops"}),
        conversation(5, {"custom": [1, 2]}),
        conversation(6, {"custom": 0}),
        conversation(7, {"custom": None}),
        conversation(8, {"custom": {}}),
        {"type": "conversation", "id": "no-attributes"},
        {"type": "conversation", "id": "attributes-null", "attributes": None},
        {"id": None, "attributes": "a string", "relationships": None},
        {"id": 12345, "attributes": ["a", "list"]},
        {"id": {"nested": "id"}, "attributes": 0},
        {"id": "empty", "attributes": {}},
        {},
    ]
    batch += [conversation(20 + i, relationships=r) for i, r in enumerate(weird_relationships)]
    check(CONVERSATIONS.mapper, batch)
    for start in range(len(batch)):  # every odd shape also alone, and in every company
        check(CONVERSATIONS.mapper, batch[start : start + 1])
        check(CONVERSATIONS.mapper, batch[start:])


def test_an_int_too_large_for_a_float_maps_exactly() -> None:
    """10**400 is no number a column can hold; in a timestamp column the rules themselves
    raise (`value / 1000` overflows), and the columnar path must raise alike."""
    batch = [
        conversation(0, {"priority": 10**400, "custom": {"aNum": 10**400, "bNum": 10**400}}),
        conversation(1, {"custom": {"bNum": 1.5}}),
    ]
    assert isinstance(check(CONVERSATIONS.mapper, batch), pl.DataFrame)
    batch = [conversation(0, {"endedAt": 10**400}), conversation(1)]
    assert check(CONVERSATIONS.mapper, batch) is None


def test_unknown_attributes_and_colliding_custom_keys_map_exactly() -> None:
    custom = {
        "vipBool": True,
        "vip_bool": "gold",
        "vip_Bool": "yes",
        "VipBool": 0,
        "vip bool": 1,
        "vip__bool": None,
        "vipBOOL": "no",
        "": "empty key",
        "At": "2026-11-20T00:00:00Z",
        "prénomStr": "Zoë",
        "URLPathStr": "/x",
        "x.yNum": "1.5",
        'we"ird\\Num': 2,
    }
    unknown = {
        "brandNewField": {"a": 1, "b": [1.5, None, "x"]},
        "zeta": None,
        "alpha": 'é\n"quoted"',
        "ünïcodeKey": [],
        'we"ird\\key': True,
        "new\nline": float("nan"),
        "number": 10**30,
        "float": -0.0,
        "when": datetime(2026, 1, 1, tzinfo=UTC),
    }
    batch = [
        conversation(0, {"custom": custom, **unknown}),
        conversation(1, {"custom": dict(reversed(list(custom.items())))}),
        conversation(2, {"brandNewField": None}),
        conversation(3),
    ]
    check(CONVERSATIONS.mapper, batch)
    check(CONVERSATIONS.mapper, batch[2:])
    check(USERS.mapper, batch)  # keep_custom=False: custom is neither a column nor an extra


def test_list_items_and_derived_columns_map_exactly() -> None:
    emails: list[Any] = [
        [{"email": "a@x"}, {"email": "b@x"}],
        [{"email": "a@x"}, "b@x"],
        [{"email": None}, {"type": "home"}],
        [{"email": 5}, {"email": {"nested": 1}}],
        [],
        "a@x",
        {"email": "a@x"},
        None,
        [[{"email": "deep"}]],
    ]
    customers = [
        {
            "type": "customer",
            "id": f"{n:024x}",
            "attributes": {"updatedAt": "2026-11-20T00:00:00Z", "emails": e, "phones": e},
        }
        for n, e in enumerate(emails)
    ]
    check(CUSTOMERS.mapper, customers)
    answers: list[Any] = [
        [{"answer": 5}, {"answer": " Great "}],
        [{"answer": ""}, {"answer": "  "}],
        [{"answer": ["x"]}, "not an answer", None],
        "plain text",
        {"answer": "x"},
        None,
        [],
    ]
    responses = [
        {
            "type": "satisfaction_response",
            "id": f"{n:024x}",
            "attributes": {"updatedAt": "2026-11-20T00:00:00Z", "answers": a, "rating": a},
        }
        for n, a in enumerate(answers)
    ]
    check(SATISFACTION.mapper, responses)


def test_a_derive_that_turns_nothing_into_something_maps_exactly() -> None:
    mapper = RecordMapper(
        columns=(
            Column("id", ("id",), pl.Utf8, "id"),
            attr("updated_at", "updatedAt", TIMESTAMP, "when"),
            Column("score", ("attributes", "x", "y"), pl.Int64, "d", derive=lambda v: "n/a"),
            Column("tags", ("attributes", "t"), ID_LIST, "d", derive=lambda v: v or ["none"]),
        ),
        mapped_attributes=frozenset({"updatedAt"}),
    )
    batch = [
        {"id": "1", "attributes": {"updatedAt": "2026-11-20T00:00:00Z", "x": "flat"}},
        {"id": "2", "attributes": {"x": {"y": 1}, "t": ["a"]}},
        {"id": "3", "attributes": "flat"},
    ]
    check(mapper, batch)
    text_updated_at = RecordMapper(columns=(attr("updated_at", "updatedAt", pl.Utf8, "text"),))
    check(text_updated_at, batch)  # no timestamp, so no partition day
    check(RecordMapper(columns=(Column("id", ("id",), pl.Utf8, "id"),)), batch)


def test_shapes_the_columnar_path_leaves_to_the_rules_map_exactly() -> None:
    plain = conversation(1)
    batches: list[list[Any]] = [
        [OrderedDict(plain)],
        [MappingProxyType(conversation(2))],
        [conversation(3, attributes=None) | {"attributes": OrderedDict(a=1)}],
        [conversation(4, {"custom": MappingProxyType({"xNum": 1})})],
        [conversation(5, {"custom": {1: "int key"}})],
        [conversation(6) | {"attributes": {1: "int key", "updatedAt": "2026-11-20T00:00:00Z"}}],
        [conversation(7, {"satisfactionLevel": OrderedDict(rating=4)})],
        [conversation(8), "not a resource"],
    ]
    for batch in batches:
        check(CONVERSATIONS.mapper, batch)
    duplicate_names = RecordMapper(
        columns=(
            Column("id", ("id",), pl.Utf8, "id"),
            attr("x", "a", pl.Int64, "first"),
            attr("x", "b", pl.Utf8, "second"),
        )
    )
    check(duplicate_names, [{"id": "1", "attributes": {"a": "1", "b": 2}}])
    other_types = RecordMapper(
        columns=(
            Column("id", ("id",), pl.Utf8, "id"),
            attr("n", "n", pl.Int32, "an Int32"),
        )
    )
    check(other_types, [{"id": "1", "attributes": {"n": "x"}}])


def test_a_generator_and_an_empty_batch_map_exactly() -> None:
    for spec in ENTITIES:
        assert_same_frame(reference_frame(spec.mapper, []), spec.mapper.frame([]))
    batch = [conversation(n) for n in range(5)]
    assert_same_frame(
        reference_frame(CONVERSATIONS.mapper, batch),
        CONVERSATIONS.mapper.frame(r for r in batch),
    )


# --- seeded random batches -----------------------------------------------------------------------


def random_timestamp_text(rng: random.Random) -> str:
    """Mostly the plain shape, with out-of-range fields, offsets and fractions of any length."""
    year = rng.choice([rng.randint(1000, 2999), rng.randint(0, 9999), 2026])
    text = (
        f"{year:04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}T"
        f"{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}"
    )
    if rng.random() < 0.7:
        text += "." + "".join(rng.choices("0123456789", k=rng.randint(1, 8)))
    zone = rng.random()
    if zone < 0.5:
        text += "Z"
    elif zone < 0.85:
        text += f"{rng.choice('+-')}{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}"
    return text


def random_number_text(rng: random.Random) -> str:
    text = rng.choice(["", "+", "-"]) + "".join(rng.choices("0123456789", k=rng.randint(0, 22)))
    if rng.random() < 0.5:
        text += "." + "".join(rng.choices("0123456789", k=rng.randint(0, 20)))
    if rng.random() < 0.3:
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
    return text


def random_epoch(rng: random.Random) -> int | float:
    bound = rng.choice([10**9, 10**11, 2 * 10**11, 4 * 10**12, 10**13, 10**16])
    value = rng.randint(-bound, bound)
    return value if rng.random() < 0.8 else value / rng.choice([1, 10, 1000])


@pytest.mark.parametrize("seed", range(6))
def test_random_batches_map_exactly_as_row_by_row(seed: int) -> None:
    rng = random.Random(seed)
    makers: dict[str, Callable[[], Any]] = {
        "timestamp": lambda: random_timestamp_text(rng),
        "number": lambda: random_number_text(rng),
        "epoch": lambda: random_epoch(rng),
        "flag": lambda: rng.choice(FLAG_TEXTS),
        "anything": lambda: rng.choice(FAMILIES["everything"]),
    }
    for _ in range(4):
        # Within one batch each column keeps one maker, so whole columns take one route.
        chosen = {key: rng.choice(list(makers)) for key in DRIFT_ATTRIBUTES + DRIFT_CUSTOM}
        batch = []
        for n in range(rng.randint(1, 400)):
            attributes: dict[str, Any] = {}
            custom: dict[str, Any] = {}
            for key, maker in chosen.items():
                if rng.random() < 0.1:
                    continue  # missing
                value = None if rng.random() < 0.1 else makers[maker]()
                (custom if key in DRIFT_CUSTOM else attributes)[key] = value
            attributes["custom"] = custom
            batch.append(conversation(n, attributes))
        check(CONVERSATIONS.mapper, batch)
        check(MESSAGES.mapper, batch)


def test_documented_timestamps_parse_as_python_does() -> None:
    """The regex-free route for Kustomer's documented form (24 characters ending in Z) must
    agree with Python on every string Arrow accepts, impossible fields and odd characters
    included; outside it the regex route and the rules decide."""
    rng = random.Random(7)
    digits = "0123456789"
    accepted = 0
    for _ in range(20_000):
        text = (
            f"{''.join(rng.choices(digits, k=4))}-{rng.randint(0, 19):02d}-"
            f"{rng.randint(0, 39):02d}{rng.choice('TTTTt _/:-')}{rng.randint(0, 29):02d}:"
            f"{rng.randint(0, 69):02d}:{rng.randint(0, 69):02d}."
            f"{''.join(rng.choices(digits, k=3))}Z"
        )
        if rng.random() < 0.1:
            at = rng.randrange(len(text))
            text = text[:at] + rng.choice("0123456789-:.TZz +a\u0663") + text[at + 1 :]
        typed = records._as_documented_timestamps(pa.array([text], type=pa.string()))
        if typed is None:
            continue
        accepted += 1
        expected = _to_timestamp(text)
        assert expected is not UNPARSABLE, text
        assert typed.to_list() == [expected], text
    assert accepted > 300  # the route is taken, not only refused (most fields are invalid)
    batch = [conversation(n, {"endedAt": f"2026-02-{n:02d}T00:00:00.000Z"}) for n in range(1, 32)]
    check(CONVERSATIONS.mapper, batch)  # Feb 29-31 are refused, the rest typed
