"""Custom attributes: the column name and type of each key of a record's open `custom` map.

Kustomer types a custom attribute by its name's suffix; the column name is a function of the
key alone, so every batch and run of a table agrees on it.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import polars as pl

from kustomer_assets.records.values import TIMESTAMP

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


@lru_cache(maxsize=4096)
def _custom_column(key: str) -> tuple[str, pl.DataType]:
    """Name and type of custom attribute `key` (the same keys come back batch after batch)."""
    return custom_column_name(key), custom_dtype(key)
