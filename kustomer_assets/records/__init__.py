"""Turn Kustomer JSON:API resources into typed, snake_case table rows.

Kustomer returns camelCase attributes, relationship objects and an open-ended `custom` map whose
keys carry their type as a suffix (`orderIdStr`, `refundAmountNum`, `vipBool`, `purchasedAt` ...).
Every column's type is decided here, at the boundary, so that each batch of a run -- and each run
of a table -- agrees on the schema: a column that is all-null in one batch must not become a
`Null` column that later fails to merge with a `Float64` one.

Nothing is dropped on the way: an attribute no column maps lands in `extra_attributes`, and a
value that does not fit its column's type (`"N/A"` for a number, `"soon"` for a timestamp, a list
where a scalar belongs) lands, as sent, in `unparsed_values` while the typed column stays null.

A batch is mapped column by column (`RecordMapper.frame`, `vectorised`, `typed_columns`): one
pass per level of the column paths gathers the raw values, Arrow and polars type whole columns,
and the row-wise rules (`values.convert`) only decide the rare values the vectorised parsers
cannot vouch for. The result is exactly what mapping row by row (`rowwise`) gives, which the
tests check on generated and drifting records.

Modules: `values` (scalar rules and dtypes), `columns` (`Column`, `attr`, `rel`, the columns
every table has), `custom` (custom attribute naming and typing), `rowwise`, `vectorised` and
`typed_columns` (the two mappings), `mapper` (`RecordMapper`). Nothing here calls the network;
the partition column is the lake's (`kustomer_assets.lake.PARTITION_COLUMN`).
"""

from kustomer_assets.records.columns import (
    BASE_COLUMN_DESCRIPTIONS,
    EXTRA_ATTRIBUTES_COLUMN,
    PARTITION_COLUMN,
    UNPARSED_COLUMN,
    Column,
    Misfit,
    attr,
    mapped_attribute_names,
    rel,
    rows_with_unparsed_values,
    unparsed_counts,
)
from kustomer_assets.records.custom import (
    CUSTOM_HASH_LENGTH,
    CUSTOM_SUFFIX_TYPES,
    custom_column_name,
    custom_dtype,
    snake_case,
)
from kustomer_assets.records.mapper import RecordMapper
from kustomer_assets.records.typed_columns import _as_documented_timestamps
from kustomer_assets.records.values import (
    ID_LIST,
    TEXT_LIST,
    TIMESTAMP,
    UNPARSABLE,
    coerce,
    convert,
    parse_timestamp,
)

__all__ = [
    "BASE_COLUMN_DESCRIPTIONS",
    "CUSTOM_HASH_LENGTH",
    "CUSTOM_SUFFIX_TYPES",
    "EXTRA_ATTRIBUTES_COLUMN",
    "ID_LIST",
    "PARTITION_COLUMN",
    "TEXT_LIST",
    "TIMESTAMP",
    "UNPARSABLE",
    "UNPARSED_COLUMN",
    "Column",
    "Misfit",
    "RecordMapper",
    "_as_documented_timestamps",
    "attr",
    "coerce",
    "convert",
    "custom_column_name",
    "custom_dtype",
    "mapped_attribute_names",
    "parse_timestamp",
    "rel",
    "rows_with_unparsed_values",
    "snake_case",
    "unparsed_counts",
]
