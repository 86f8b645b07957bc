"""Every table reads alike through deltalake, polars and DuckDB (via Arrow), as README shows.

README's "Reading the tables" promises that any Delta-aware reader sees the same rows and
columns; this holds it to that for every raw table, `removed_records` and `feedback` of a small
backfill that has been re-materialized once (so replaced files exist), and shows why a Parquet
glob must not be used: it also counts the replaced files.
"""

from collections.abc import Iterator

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.assets.removals import removed_records
from kustomer_assets.emulator import Emulator
from kustomer_assets.entities import ENTITIES
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.maintenance import list_tables
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    materialize_range,
    resources,
)

DAYS = 5
TABLES = sorted({spec.name for spec in ENTITIES} | {"removed_records", "feedback"})


def read_deltalake(uri: str, options: dict[str, str] | None = None) -> pa.Table:
    return DeltaTable(uri, storage_options=options).to_pyarrow_table()


def read_polars(uri: str, options: dict[str, str] | None = None) -> pl.DataFrame:
    return pl.scan_delta(uri, storage_options=options).collect()


def read_duckdb(uri: str, options: dict[str, str] | None = None) -> pa.Table:
    """DuckDB over the table's Arrow dataset: deltalake picks the live files from the log,
    DuckDB scans them (its own `delta` extension needs a download, so is not used here)."""
    dataset = DeltaTable(uri, storage_options=options).to_pyarrow_dataset()
    with duckdb.connect() as con:
        # A fully read Table, not the lazy reader `.arrow()` returns: a reader left open at
        # interpreter exit aborts the process ("terminate called without an active exception").
        return con.from_arrow(dataset).to_arrow_table()


def normalized(data_type: pa.DataType) -> str:
    """A type up to representation details that are not a difference in meaning: 32- or 64-bit
    offsets (`string`/`large_string`, `list`/`large_list`), list item field names, and the
    name of the UTC zone (DuckDB says `Etc/UTC`, or the session's zone for the same instant)."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_string_view(data_type):
        return "string"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"list<{normalized(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        fields = ", ".join(f"{f.name}: {normalized(f.type)}" for f in data_type)
        return f"struct<{fields}>"
    if pa.types.is_timestamp(data_type):
        return f"timestamp[{data_type.unit}, {'tz' if data_type.tz else 'naive'}]"
    return str(data_type)


def assert_readers_agree(uri: str, options: dict[str, str] | None = None) -> int:
    """Same row count, column names (in order) and compatible types from the three readers;
    returns the row count."""
    by_deltalake = read_deltalake(uri, options)
    by_polars = read_polars(uri, options).to_arrow()
    by_duckdb = read_duckdb(uri, options)
    assert by_deltalake.num_rows == by_polars.num_rows == by_duckdb.num_rows, uri
    assert by_deltalake.column_names == by_polars.column_names == by_duckdb.column_names, uri
    for name in by_deltalake.column_names:
        types = {
            reader: normalized(table.schema.field(name).type)
            for reader, table in (
                ("deltalake", by_deltalake),
                ("polars", by_polars),
                ("duckdb", by_duckdb),
            )
        }
        assert len(set(types.values())) == 1, f"{uri}: column {name} read as {types}"
    return by_deltalake.num_rows


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    lake = Lake(tmp_path_factory.mktemp("readers") / "delta")
    with Emulator(emulator_config(days=DAYS)) as server:
        first, last = day_range(DAYS + 1)
        res = resources(server.base_url, lake)
        materialize_range(entity_assets, first, last, res)
        # Replaced files: the glob test below needs a day that was written twice.
        materialize_range(entity_assets, first, last, res)
        dg.materialize([removed_records], resources=res)
        dg.materialize([feedback], resources={"lake": DeltaLakeResource(root=str(lake.root))})
    yield lake


def test_every_table_reads_the_same_through_deltalake_polars_and_duckdb(lake: Lake) -> None:
    assert list_tables(DeltaStore(str(lake.root))) == TABLES
    rows = {name: assert_readers_agree(str(lake.root / name)) for name in TABLES}
    assert rows["conversations"] > 100 and rows["feedback"] > 100 and rows["messages"] > 100


def test_readme_duckdb_sql_over_the_arrow_dataset(lake: Lake) -> None:
    """README's three lines: a DuckDB query names the dataset variable (replacement scan)."""
    conversations = DeltaTable(str(lake.root / "conversations")).to_pyarrow_dataset()
    with duckdb.connect() as con:
        con.register("conversations", conversations)
        by_status = con.sql(
            "select status, count(*) as n from conversations group by status order by status"
        ).pl()
    expected = (
        pl.scan_delta(str(lake.root / "conversations"))
        .group_by("status")
        .agg(n=pl.len())
        .sort("status")
        .collect()
    )
    assert by_status["status"].to_list() == expected["status"].to_list()
    assert by_status["n"].to_list() == expected["n"].to_list()


def test_a_parquet_glob_over_counts_after_a_rerun(lake: Lake) -> None:
    """Why README says never to glob: replaced files stay on disk until a vacuum."""
    folder = lake.root / "conversations"
    with duckdb.connect() as con:
        (globbed,) = con.sql(
            f"select count(*) from read_parquet('{folder}/**/*.parquet')"
        ).fetchall()[0]
    live = DeltaTable(str(folder)).count()
    assert globbed >= 2 * live > 0


def test_duckdb_delta_scan_when_the_extension_is_installed(lake: Lake) -> None:
    """`delta_scan` reads the log itself; the extension comes from DuckDB's own download
    server, which this machine cannot reach, so this runs only where it was installed."""
    with duckdb.connect(config={"autoinstall_known_extensions": "false"}) as con:
        installed = con.sql(
            "select installed from duckdb_extensions() where extension_name = 'delta'"
        ).fetchall()
        if not installed or not installed[0][0]:
            pytest.skip("DuckDB's delta extension is not installed (INSTALL delta downloads it)")
        con.sql("LOAD delta")
        uri = str(lake.root / "conversations")
        (count,) = con.sql(f"select count(*) from delta_scan('{uri}')").fetchall()[0]
    assert count == DeltaTable(uri).count()
