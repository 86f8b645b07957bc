"""`feedback`: full build and a 1% incremental refresh, against the same join in DuckDB.

Issue 9 asks how long the `feedback` table takes to build from raw tables the size of a large
org (1M conversations, 5M messages, 200k customers), next to DuckDB running the same join over
the same Delta files in the same run, and what a refresh after a 1% change costs.

The raw tables are generated directly, vectorised in polars (no HTTP, no mapping): every column
of each entity's `mapper.base_schema` (so the tables have the columns the assets write, most
of them null), with realistic values in those `feedback/build.py` reads, a few `custom_*`
columns, older versions of 20% of conversations and customers (the raw tables keep every
version; the build takes the latest), 0.5% soft-deleted conversations and messages, and
`partition_date` from `updated_at` over `--days` days. They are written as the lake lays them
out (Delta, partitioned by `partition_date`), so `DeltaStore.scan` reads them as it reads the
assets' tables. Sizes: `--conversations`, `--messages`, `--customers`; notes are half the
conversations, CSAT responses a fifth. No `removed_records` table is written: the build then
skips its anti-joins, and so does the DuckDB query.

Timed, in one process, one after the other:

1. ours, full: `build_feedback(store, None)` (the join), then `write_full` (the Delta write);
2. DuckDB: the same rows from the same Delta files (the current version's data files, listed by
   `deltalake.DeltaTable.file_uris()` and read with `read_parquet([...])`: DuckDB's `delta`
   extension is not bundled with the wheel and this machine cannot download it), fetched as an
   Arrow table, as the polars build yields a DataFrame; the result is compared with ours column
   by column (floats within 0.011: the two round halves differently);
3. a 1% change: new versions of 1% of the conversations, written by the real writer
   (`DeltaStore.replace_days` for the next day, as a daily sync would), then the incremental
   refresh the asset runs: `find_changes` -> `build_feedback(store, ids)` -> `merge_changes`,
   on `store.pinned()` as the asset does (its tables' opens are timed in `find`).
   Twice, on the same tables: first with the changed conversations spread uniformly over all
   history (`incremental`: every creation week is touched, so the copy-on-write merge
   rewrites every partition of feedback), then, on the day after, the realistic case
   (`incremental_recent`): the 1% most recently created conversations, since conversations
   change while they are active and those a refresh finds changed are overwhelmingly recent.

Both engines use every core (`--threads`, default all). `--repeat N` runs the two full builds N
times and keeps the fastest of each.

    .venv/bin/python benchmarks/feedback_vs_duckdb.py                 # 100k / 500k / 20k
    .venv/bin/python benchmarks/feedback_vs_duckdb.py --full          # 1M / 5M / 200k
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from deltalake import DeltaTable, write_deltalake

from kustomer_assets.entities import ENTITIES_BY_NAME
from kustomer_assets.feedback.build import FEEDBACK, build_feedback
from kustomer_assets.feedback.incremental import find_changes, merge_changes, write_full
from kustomer_assets.lake import PARTITION_COLUMN, DeltaStore

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "feedback_vs_duckdb.json"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
"""Fixed, so every run generates the same tables."""
DAY_MS = 86_400_000
TS = pl.Datetime("us", "UTC")

SMALL = {"conversations": 100_000, "messages": 500_000, "customers": 20_000}
FULL = {"conversations": 1_000_000, "messages": 5_000_000, "customers": 200_000}
USERS, TEAMS, TAGS, BRANDS = 300, 30, 200, 5

STATUSES = ["open", "snoozed", "done"]
CHANNELS = ["email", "chat", "sms", "voice", "facebook"]
LOCALES = ["en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "pt_BR"]
ZONES = ["America/New_York", "Europe/London", "Europe/Paris", "Asia/Tokyo", "UTC"]
WORDS = [
    "order",
    "refund",
    "delivery",
    "account",
    "password",
    "invoice",
    "shipping",
    "package",
    "damaged",
    "late",
    "help",
    "please",
    "thanks",
    "update",
    "address",
    "card",
    "charge",
    "twice",
    "subscription",
    "cancel",
    "upgrade",
    "login",
    "error",
    "app",
    "crash",
    "email",
    "reset",
    "tracking",
    "number",
    "store",
    "pickup",
    "return",
    "label",
    "warranty",
    "replacement",
]


# ----------------------------------------------------------------------------- generation


def rand(n: int, seed: int, modulo: int) -> pl.Series:
    """`n` pseudo-random ints in [0, modulo): hashes of the row number (no numpy here)."""
    return (pl.select(pl.int_range(n, dtype=pl.UInt64).hash(seed) % modulo).to_series()).cast(
        pl.Int64
    )


def pick(values: list[Any], n: int, seed: int) -> pl.Series:
    return pl.Series(values).gather(rand(n, seed, len(values)))


def ids(prefix: str, numbers: pl.Series) -> pl.Series:
    """Kustomer-like 24-character ids: a prefix letter, then the number, zero-padded."""
    return prefix + numbers.cast(pl.String).str.zfill(23)


def id_expr(prefix: str, column: str) -> pl.Expr:
    return pl.lit(prefix) + pl.col(column).cast(pl.String).str.zfill(23)


def sentences(count: int, seed: int, low: int, high: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."
        for _ in range(count)
    ]


def at(ms: pl.Expr) -> pl.Expr:
    """Milliseconds before NOW -> a UTC timestamp."""
    return (pl.lit(NOW) - pl.duration(milliseconds=ms)).cast(TS)


def complete(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """Every base-schema column of `table` (null where not generated), `custom_*` kept,
    `partition_date` from `updated_at`."""
    schema = ENTITIES_BY_NAME[table].mapper.base_schema
    frame = frame.with_columns(pl.col("updated_at").dt.date().alias(PARTITION_COLUMN))
    columns = [
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    ]
    custom = [c for c in frame.columns if c.startswith("custom_")]
    return frame.select(*columns, *custom)


def with_older_versions(frame: pl.DataFrame, share_modulo: int, changed: dict) -> pl.DataFrame:
    """One older version of every `share_modulo`-th record: updated halfway between its
    creation and its current version, with `changed` columns as they were then."""
    older = frame.filter(pl.int_range(pl.len()) % share_modulo == 0).with_columns(
        (pl.col("created_at") + (pl.col("updated_at") - pl.col("created_at")) / 2).alias(
            "updated_at"
        ),
        *[pl.lit(v).alias(k) for k, v in changed.items()],
    )
    return pl.concat([frame, older], how="vertical_relaxed")


def generate(sizes: dict[str, int], days: int) -> dict[str, pl.DataFrame]:
    """The raw tables `build_feedback` reads, as frames ready to write."""
    n_conv, n_msg, n_cust = sizes["conversations"], sizes["messages"], sizes["customers"]
    span = days * DAY_MS
    tables: dict[str, pl.DataFrame] = {}

    tables["users"] = pl.DataFrame(
        {
            "id": [f"a{i:023d}" for i in range(USERS)],
            "name": [f"Agent {i}" for i in range(USERS)],
            "email": [f"agent{i}@example.com" for i in range(USERS)],
            "user_type": "user",
        }
    ).with_columns(created_at=at(pl.lit(span + DAY_MS)), updated_at=at(pl.lit(span)))
    for name, prefix, count in (
        ("teams", "t", TEAMS),
        ("tags", "g", TAGS),
        ("brands", "b", BRANDS),
    ):
        tables[name] = pl.DataFrame(
            {
                "id": [f"{prefix}{i:023d}" for i in range(count)],
                "name": [f"{name[:-1].title()} {i}" for i in range(count)],
            }
        ).with_columns(created_at=at(pl.lit(span + DAY_MS)), updated_at=at(pl.lit(span)))

    customers = pl.DataFrame({"n": pl.int_range(n_cust, eager=True)}).with_columns(
        id=id_expr("u", "n"),
        created_at=at(rand(n_cust, 11, span) + span),
        updated_at=at(rand(n_cust, 12, span)),
        name=pl.lit("Customer ") + pl.col("n").cast(pl.String),
        emails=pl.concat_list(pl.lit("customer") + pl.col("n").cast(pl.String) + "@example.org"),
        locale=pick(LOCALES, n_cust, 13),
        time_zone=pick(ZONES, n_cust, 14),
        verified=rand(n_cust, 15, 3) > 0,
        external_id=pl.lit("crm-") + pl.col("n").cast(pl.String),
        deleted=pl.lit(False),
        custom_tier_str=pick(["free", "pro", "enterprise"], n_cust, 16),
    )
    customers = with_older_versions(customers, 5, {"custom_tier_str": "free"})
    tables["customers"] = customers.drop("n")

    age = rand(n_conv, 21, span)  # ms before NOW the conversation was created
    first_response = rand(n_conv, 22, 4 * 3_600_000) + 60_000
    resolution = first_response + rand(n_conv, 23, 2 * DAY_MS)
    has_csat = rand(n_conv, 24, 5) == 0
    score = (rand(n_conv, 25, 5) + 1).cast(pl.Float64)
    tag_count = rand(n_conv, 26, 4)
    conversations = pl.DataFrame(
        {
            "n": pl.int_range(n_conv, eager=True),
            "age": age,
            "first_response": first_response,
            "resolution": resolution,
        }
    ).with_columns(
        id=id_expr("c", "n"),
        created_at=at(pl.col("age")),
        updated_at=at((pl.col("age") - pl.col("resolution") - 60_000).clip(lower_bound=0)),
        first_response_at=at((pl.col("age") - pl.col("first_response")).clip(lower_bound=0)),
        first_done_at=at((pl.col("age") - pl.col("resolution")).clip(lower_bound=0)),
        last_done_at=at((pl.col("age") - pl.col("resolution")).clip(lower_bound=0)),
        first_response_time=pl.col("first_response"),
        first_response_business_time=pl.col("first_response") // 2,
        status=pick(STATUSES, n_conv, 27),
        channels=pl.concat_list(pick(CHANNELS, n_conv, 28)),
        direction=pick(["in", "out"], n_conv, 29),
        priority=rand(n_conv, 30, 5) + 1,
        name=pl.Series(sentences(1000, 31, 3, 7)).gather(rand(n_conv, 32, 1000)),
        customer_id=ids("u", rand(n_conv, 33, n_cust)),
        reopen_count=rand(n_conv, 34, 3),
        ended_reason=pl.lit(None, pl.String),
        tag_ids=pl.concat_list(
            ids("g", rand(n_conv, 35, TAGS)),
            ids("g", rand(n_conv, 36, TAGS)),
            ids("g", rand(n_conv, 37, TAGS)),
        ).list.head(pl.lit(tag_count)),
        assigned_user_ids=pl.concat_list(ids("a", rand(n_conv, 38, USERS))).list.head(
            pl.lit((rand(n_conv, 39, 10) > 0).cast(pl.Int64))
        ),
        assigned_team_ids=pl.concat_list(ids("t", rand(n_conv, 40, TEAMS))),
        brand_id=ids("b", rand(n_conv, 41, BRANDS)),
        satisfaction_score=pl.when(has_csat).then(score).otherwise(0.0),
        satisfaction_rating=pl.when(has_csat).then(score),
        message_count=pl.lit(0),
        deleted=rand(n_conv, 42, 200) == 0,
        custom_order_id_str=pl.lit("ord-") + pl.col("n").cast(pl.String),
        custom_vip_bool=rand(n_conv, 43, 10) == 0,
    )
    conversations = with_older_versions(conversations, 5, {"status": "open", "deleted": False})
    tables["conversations"] = conversations.drop("n", "age", "first_response", "resolution")

    # Messages: to random conversations (5 a conversation on average), sent after them.
    current_conversations = conversations.head(n_conv)
    of = rand(n_msg, 51, n_conv)
    base = current_conversations.select("id", "created_at", "customer_id").rename(
        {"id": "conversation_id", "created_at": "_opened"}
    )
    outbound = rand(n_msg, 52, 2) == 1
    messages = base.select(pl.all().gather(of)).with_columns(
        n=pl.int_range(n_msg, eager=True),
        _after=rand(n_msg, 53, 2 * DAY_MS),
        direction=pl.when(outbound).then(pl.lit("out")).otherwise(pl.lit("in")),
        preview_text=pl.Series(sentences(2000, 54, 6, 25)).gather(rand(n_msg, 55, 2000)),
        sent_by_user_id=pl.when(outbound).then(ids("a", rand(n_msg, 56, USERS))),
        channel=pick(CHANNELS, n_msg, 57),
        deleted=rand(n_msg, 58, 200) == 0,
    )
    sent = pl.min_horizontal(
        pl.col("_opened") + pl.duration(milliseconds=pl.col("_after")), pl.lit(NOW)
    ).cast(TS)
    messages = messages.with_columns(
        id=id_expr("m", "n"), created_at=sent, sent_at=sent, updated_at=sent
    ).drop("n", "_after", "_opened")
    tables["messages"] = messages

    n_notes = n_conv // 2
    notes = base.select(pl.all().gather(rand(n_notes, 61, n_conv))).with_columns(
        n=pl.int_range(n_notes, eager=True),
        body=pl.Series(sentences(1000, 62, 5, 30)).gather(rand(n_notes, 63, 1000)),
        created_by_user_id=ids("a", rand(n_notes, 64, USERS)),
        deleted=pl.lit(False),
    )
    note_at = pl.min_horizontal(
        pl.col("_opened") + pl.duration(milliseconds=rand(n_notes, 65, DAY_MS)), pl.lit(NOW)
    ).cast(TS)
    tables["notes"] = notes.with_columns(
        id=id_expr("n", "n"), created_at=note_at, updated_at=note_at
    ).drop("n", "_opened")

    n_csat = n_conv // 5
    responses = base.select(pl.all().gather(rand(n_csat, 71, n_conv))).with_columns(
        n=pl.int_range(n_csat, eager=True),
        rating=(rand(n_csat, 72, 5) + 1).cast(pl.Float64),
        comment=pl.Series(sentences(500, 73, 3, 12)).gather(rand(n_csat, 74, 500)),
        status=pl.lit("rated"),
    )
    answered = pl.min_horizontal(
        pl.col("_opened") + pl.duration(milliseconds=rand(n_csat, 75, 3 * DAY_MS)), pl.lit(NOW)
    ).cast(TS)
    tables["satisfaction"] = responses.with_columns(
        id=id_expr("s", "n"), created_at=answered, submitted_at=answered, updated_at=answered
    ).drop("n", "_opened")
    return {name: complete(frame, name) for name, frame in tables.items()}


def write_tables(store: DeltaStore, tables: dict[str, pl.DataFrame]) -> dict[str, Any]:
    out = {}
    for name, frame in tables.items():
        write_deltalake(
            store.uri(name), frame.to_arrow(), mode="overwrite", partition_by=[PARTITION_COLUMN]
        )
        out[name] = {"rows": frame.height, "files": len(DeltaTable(store.uri(name)).file_uris())}
    return out


# ----------------------------------------------------------------------------- DuckDB

DUCKDB_FEEDBACK = """
WITH
conversations AS (
    SELECT * FROM read_parquet({conversations}, union_by_name = true, hive_partitioning = false)
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
),
base AS (
    SELECT
        id AS conversation_id, created_at, updated_at, first_response_at, first_done_at,
        last_done_at, status, channels, direction, priority, name AS subject, customer_id,
        reopen_count, ended_reason,
        CAST(date_trunc('month', created_at AT TIME ZONE 'UTC') AS DATE) AS created_month,
        CAST(date_trunc('week', created_at AT TIME ZONE 'UTC') AS DATE) AS created_week,
        tag_ids, assigned_user_ids, assigned_team_ids, brand_id,
        CASE WHEN satisfaction_score != 0 THEN satisfaction_score END AS csat_score,
        round(first_response_time / 60000.0, 2) AS first_response_minutes,
        round(first_response_business_time / 60000.0, 2) AS first_response_business_minutes,
        round(date_diff('millisecond', created_at, last_done_at) / 60000.0, 2)
            AS resolution_minutes,
        satisfaction_rating AS conversation_satisfaction_rating,
        {conversation_custom}
    FROM conversations
    WHERE NOT coalesce(deleted, false)
),
customers AS (
    SELECT * FROM read_parquet({customers}, union_by_name = true, hive_partitioning = false)
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
),
users AS (
    SELECT * FROM read_parquet({users}, union_by_name = true, hive_partitioning = false)
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
),
brands AS (
    SELECT * FROM read_parquet({brands}, union_by_name = true, hive_partitioning = false)
    QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
),
tag_names AS (
    SELECT map(list(id), list(name)) AS names FROM (
        SELECT * FROM read_parquet({tags}, union_by_name = true, hive_partitioning = false)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
    )
),
team_names AS (
    SELECT map(list(id), list(name)) AS names FROM (
        SELECT * FROM read_parquet({teams}, union_by_name = true, hive_partitioning = false)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
    )
),
messages AS (
    SELECT
        m.conversation_id, m.id, m.direction, m.preview_text,
        coalesce(m.sent_at, m.created_at) AS msg_at,
        CASE WHEN m.direction = 'in' THEN 'customer' ELSE coalesce(u.name, 'agent') END
            AS speaker
    FROM (
        SELECT * FROM read_parquet({messages}, union_by_name = true, hive_partitioning = false)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
    ) AS m
    LEFT JOIN users AS u ON u.id = m.sent_by_user_id
    WHERE NOT coalesce(m.deleted, false)
),
per_conversation_messages AS (
    SELECT
        conversation_id,
        count(*) FILTER (WHERE direction = 'in') AS message_count_in,
        count(*) FILTER (WHERE direction = 'out') AS message_count_out,
        first(preview_text ORDER BY msg_at, id) FILTER (WHERE direction = 'in')
            AS first_inbound_message_text,
        list({{'sent_at': msg_at, 'direction': direction, 'speaker': speaker,
               'text': preview_text}} ORDER BY msg_at, id) AS transcript,
        string_agg(speaker || ': ' || coalesce(preview_text, ''), E'\\n' ORDER BY msg_at, id)
            AS transcript_text,
        string_agg(preview_text, E'\\n' ORDER BY msg_at, id)
            FILTER (WHERE direction = 'in' AND preview_text IS NOT NULL) AS customer_text,
        last(msg_at ORDER BY msg_at, id) AS last_message_at,
        last(direction ORDER BY msg_at, id) AS last_message_direction
    FROM messages
    GROUP BY conversation_id
),
per_conversation_notes AS (
    SELECT conversation_id, string_agg(body, E'\\n\\n' ORDER BY created_at, id)
        AS internal_notes_text
    FROM (
        SELECT * FROM read_parquet({notes}, union_by_name = true, hive_partitioning = false)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
    )
    WHERE NOT coalesce(deleted, false)
    GROUP BY conversation_id
),
latest_csat AS (
    SELECT conversation_id, rating AS _rating, comment AS csat_comment
    FROM (
        SELECT * FROM read_parquet({satisfaction}, union_by_name = true, hive_partitioning = false)
        QUALIFY row_number() OVER (PARTITION BY id ORDER BY updated_at DESC) = 1
    )
    QUALIFY row_number() OVER (PARTITION BY conversation_id ORDER BY updated_at DESC, id DESC) = 1
)
SELECT
    b.* EXCLUDE (tag_ids, assigned_user_ids, assigned_team_ids, brand_id,
                 conversation_satisfaction_rating),
    c.name AS customer_name, c.emails[1] AS customer_email, c.locale AS customer_locale,
    c.external_id AS customer_external_id, c.verified AS customer_verified,
    c.time_zone AS customer_time_zone,
    {customer_custom}
    br.name AS brand_name,
    list_transform(b.tag_ids, lambda x: tn.names[x]) AS tag_names,
    list_transform(b.assigned_team_ids, lambda x: tm.names[x])
        AS assigned_team_names,
    agent.name AS assigned_agent_name, agent.email AS assigned_agent_email,
    coalesce(pm.message_count_in, 0) AS message_count_in,
    coalesce(pm.message_count_out, 0) AS message_count_out,
    pm.first_inbound_message_text, pm.transcript, pm.transcript_text,
    CASE WHEN pm.customer_text != '' THEN pm.customer_text END AS customer_text,
    pm.last_message_at, pm.last_message_direction,
    pn.internal_notes_text,
    lc.csat_comment,
    coalesce(lc._rating, b.conversation_satisfaction_rating) AS csat_rating
FROM base AS b
LEFT JOIN customers AS c ON c.id = b.customer_id AND b.customer_id IS NOT NULL
LEFT JOIN brands AS br ON br.id = b.brand_id
LEFT JOIN users AS agent ON agent.id = b.assigned_user_ids[1]
LEFT JOIN per_conversation_messages AS pm USING (conversation_id)
LEFT JOIN per_conversation_notes AS pn USING (conversation_id)
LEFT JOIN latest_csat AS lc USING (conversation_id)
CROSS JOIN tag_names AS tn
CROSS JOIN team_names AS tm
ORDER BY conversation_id
"""


def duckdb_query(store: DeltaStore, custom: dict[str, list[str]]) -> str:
    """The feedback join in DuckDB SQL over each table's current data files."""

    def files(table: str) -> str:
        uris = DeltaTable(store.uri(table)).file_uris()
        return "[" + ", ".join("'" + u.removeprefix("file://") + "'" for u in uris) + "]"

    def renamed(alias: str, prefix: str, columns: list[str]) -> str:
        return "".join(f"{alias}{c} AS {prefix}_{c}, " for c in columns)

    tables = ("conversations", "customers", "users", "brands", "tags", "teams", "messages")
    return DUCKDB_FEEDBACK.format(
        **{t: files(t) for t in (*tables, "notes", "satisfaction")},
        conversation_custom=renamed("", "conversation", custom["conversations"]).rstrip(", "),
        customer_custom=renamed("c.", "customer", custom["customers"]),
    )


def run_duckdb(
    store: DeltaStore, custom: dict[str, list[str]], threads: int, memory_limit: str | None
) -> Any:
    """DuckDB's result as an Arrow table; it spills to a folder beside the tables (its
    default, `.tmp` in the working directory, would be the repo)."""
    config = {"threads": threads, "temp_directory": str(Path(store.root).parent / "duckdb-tmp")}
    if memory_limit:
        config["memory_limit"] = memory_limit
    connection = duckdb.connect(config=config)
    try:
        return connection.sql(duckdb_query(store, custom)).arrow()
    finally:
        connection.close()


def compare(ours: pl.DataFrame, theirs: pl.DataFrame) -> dict[str, Any]:
    """Which of our columns DuckDB's result matches (same rows, same order; floats ~0.011)."""
    differing, missing = [], []
    if ours.height != theirs.height:
        return {"equal": False, "rows": [ours.height, theirs.height]}
    for name, dtype in ours.schema.items():
        if name not in theirs.columns:
            missing.append(name)
            continue
        mine = ours[name]
        try:
            other = theirs[name].cast(dtype)
        except Exception:
            differing.append(name)
            continue
        if dtype.is_float():
            same = ((mine - other).abs() <= 0.011) | (mine.is_null() & other.is_null())
            ok = bool(same.fill_null(False).all())
        else:
            ok = mine.equals(other)
        if not ok:
            differing.append(name)
    return {
        "equal": not differing and not missing,
        "rows": ours.height,
        "columns_compared": ours.width - len(missing),
        "differing": differing,
        "missing_in_duckdb": missing,
    }


# ----------------------------------------------------------------------------- the run


def peak_mb() -> int:
    """This process's peak RSS so far (Linux: KiB); read after each phase, it shows which
    phase set a new high."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def timed(step: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    out = step()
    return out, time.perf_counter() - began


def change_conversations(
    store: DeltaStore, share: float, days_after: int, recent: bool
) -> dict[str, Any]:
    """New versions of `share` of the conversations, dated `days_after` days after the history,
    written by the real writer as that day's sync would write them: chosen uniformly (by a
    hash of the id), or the most recently created ones (`recent`)."""
    spec = ENTITIES_BY_NAME["conversations"]
    latest = store.scan("conversations").sort("updated_at").group_by("id").last()
    if recent:
        count = round(share * latest.select(pl.len()).collect().item())
        current = latest.top_k(count, by=["created_at", "id"]).collect()
    else:
        current = latest.filter(pl.col("id").hash(99) % 10_000 < share * 10_000).collect()
    day = (NOW + timedelta(days=days_after)).date()
    changed = current.with_columns(
        pl.lit(datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9))
        .cast(TS)
        .alias("updated_at"),
        pl.lit("done").alias("status"),
        pl.lit(day).alias(PARTITION_COLUMN),
    )
    began = time.perf_counter()
    with store.replace_days(
        "conversations", day, day + timedelta(days=1), spec.mapper.base_schema
    ) as w:
        w.add(changed)
        summary = w.commit()
    return {
        "conversations": summary.rows,
        "write_seconds": round(time.perf_counter() - began, 2),
        "created_from": current["created_at"].min().isoformat(),  # type: ignore[union-attr]
    }


def partitions(store: DeltaStore) -> dict[str, set[str]]:
    """Feedback's data files by partition folder."""
    files: dict[str, set[str]] = {}
    for uri in DeltaTable(store.uri(FEEDBACK)).file_uris():
        files.setdefault(uri.rsplit("/", 2)[-2], set()).add(uri)
    return files


def refresh(
    store: DeltaStore, change: dict[str, Any], share: float, full_total: float, ours_full: float
) -> dict[str, Any]:
    """The asset's incremental refresh after `change`, timed step by step, with the feedback
    partitions whose files the merge rewrote."""
    before = partitions(store)
    pinned = store.pinned()  # as the asset runs it: each table opened once, within `find`
    found, find_seconds = timed(lambda: find_changes(pinned, FEEDBACK))
    ids = found.conversation_ids
    rebuilt, build_seconds = timed(lambda: build_feedback(pinned, ids))
    _, merge_seconds = timed(
        lambda: merge_changes(pinned, FEEDBACK, rebuilt, ids, found.input_versions)
    )
    after = partitions(store)
    rewritten = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    incremental = find_seconds + build_seconds + merge_seconds
    return {
        "change_share": share,
        "changed_conversations": change["conversations"],
        "changed_created_from": change["created_from"],
        "change_write_seconds": change["write_seconds"],
        "conversations_rebuilt": len(ids),
        "mode": "full" if found.full else "incremental",
        "find_seconds": round(find_seconds, 2),
        "build_seconds": round(build_seconds, 2),
        "merge_seconds": round(merge_seconds, 2),
        "total_seconds": round(incremental, 2),
        "ratio_of_full_build_with_write": round(incremental / full_total, 4),
        "ratio_of_full_join": round(incremental / ours_full, 4),
        "partitions_rewritten": len(rewritten),
        "partitions": len(after),
    }


def report(label: str, inc: dict[str, Any]) -> None:
    print(
        f"{inc['change_share']:.0%} change, {label} ({inc['changed_conversations']:,} "
        f"conversations created from {inc['changed_created_from'][:10]}, written in "
        f"{inc['change_write_seconds']:.2f} s): find {inc['find_seconds']:.2f} s + build "
        f"{inc['build_seconds']:.2f} s + merge {inc['merge_seconds']:.2f} s = "
        f"{inc['total_seconds']:.2f} s -> {inc['ratio_of_full_build_with_write']:.1%} of the "
        f"full build with its write ({inc['ratio_of_full_join']:.1%} of the join alone); "
        f"{inc['partitions_rewritten']} of {inc['partitions']} feedback partitions rewritten"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=SMALL["conversations"])
    parser.add_argument("--messages", type=int, default=SMALL["messages"])
    parser.add_argument("--customers", type=int, default=SMALL["customers"])
    parser.add_argument("--full", action="store_true", help="1M / 5M / 200k (the issue's size)")
    parser.add_argument("--days", type=int, default=180, help="history span of the raw tables")
    parser.add_argument("--change", type=float, default=0.01, help="share of conversations")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--duckdb-memory-limit", help="e.g. 40%% or 8GB (default: DuckDB's, 80%% of RAM)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, help="write the tables here and keep them")
    args = parser.parse_args()
    sizes = dict(FULL) if args.full else {k: getattr(args, k) for k in SMALL}
    os.environ.setdefault("POLARS_MAX_THREADS", str(args.threads))
    began = time.perf_counter()
    root = args.keep or Path(tempfile.mkdtemp(prefix="feedback-bench-"))
    try:
        result = run(args, sizes, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    result["seconds_in_all"] = round(time.perf_counter() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({result['seconds_in_all']} s in all)")


def run(args: argparse.Namespace, sizes: dict[str, int], root: Path) -> dict[str, Any]:
    print(
        f"generating {sizes['conversations']:,} conversations, {sizes['messages']:,} messages, "
        f"{sizes['customers']:,} customers over {args.days} days ...",
        flush=True,
    )
    began = time.perf_counter()
    tables = generate(sizes, args.days)
    generate_seconds = time.perf_counter() - began
    store = DeltaStore(str(root / "lake"))
    began = time.perf_counter()
    written = write_tables(store, tables)
    write_seconds = time.perf_counter() - began
    custom = {
        t: [c for c in tables[t].columns if c.startswith("custom_")]
        for t in ("conversations", "customers")
    }
    del tables
    peaks = {"generate_and_write": peak_mb()}
    print(f"generated in {generate_seconds:.1f} s, written in {write_seconds:.1f} s:")
    for name, info in written.items():
        print(f"  {name:<14}{info['rows']:>11,} rows in {info['files']:>4} files")

    ours_times, duck_times = [], []
    rows = pl.DataFrame()
    duck: Any = None
    for _ in range(args.repeat):
        rows, seconds = timed(lambda: build_feedback(store, None))
        ours_times.append(seconds)
        peaks["ours_full_build"] = peak_mb()
        duck, seconds = timed(
            lambda: run_duckdb(store, custom, args.threads, args.duckdb_memory_limit)
        )
        duck_times.append(seconds)
        peaks["duckdb"] = peak_mb()
    ours_full, duck_full = min(ours_times), min(duck_times)
    check = compare(rows, pl.from_arrow(duck))  # type: ignore[arg-type]
    del duck
    peaks["compare"] = peak_mb()
    changes = find_changes(store, FEEDBACK)
    began = time.perf_counter()
    write_full(store, FEEDBACK, rows, changes.input_versions)
    write_full_seconds = time.perf_counter() - began
    feedback_rows = rows.height
    del rows
    print(
        f"full build: ours {ours_full:.2f} s (+ {write_full_seconds:.2f} s Delta write), "
        f"DuckDB {duck_full:.2f} s -> ours/DuckDB {ours_full / duck_full:.2f}x; "
        f"{feedback_rows:,} rows; results equal: {check['equal']}"
        + ("" if check["equal"] else f" (differ: {check.get('differing')})")
    )

    full_total = ours_full + write_full_seconds
    uniform = change_conversations(store, args.change, days_after=1, recent=False)
    incremental = refresh(store, uniform, args.change, full_total, ours_full)
    report("uniform over all history", incremental)
    peaks["incremental"] = peak_mb()
    recent = change_conversations(store, args.change, days_after=2, recent=True)
    incremental_recent = refresh(store, recent, args.change, full_total, ours_full)
    report("the most recently created (realistic)", incremental_recent)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes,
        "days": args.days,
        "threads": args.threads,
        "duckdb_memory_limit": args.duckdb_memory_limit or "DuckDB's default (80% of RAM)",
        "repeat": args.repeat,
        "tables": written,
        "generate_seconds": round(generate_seconds, 2),
        "write_tables_seconds": round(write_seconds, 2),
        "duckdb_reads": "read_parquet over DeltaTable.file_uris() (delta extension unavailable)",
        "full": {
            "ours_build_seconds": round(ours_full, 2),
            "ours_build_runs": [round(s, 2) for s in ours_times],
            "ours_write_seconds": round(write_full_seconds, 2),
            "duckdb_seconds": round(duck_full, 2),
            "duckdb_runs": [round(s, 2) for s in duck_times],
            "ratio_ours_over_duckdb": round(ours_full / duck_full, 3),
            "rows": feedback_rows,
            "same_result": check,
        },
        "incremental": incremental,
        "incremental_recent": incremental_recent,
        "peak_rss_mb": peak_mb(),
        "peak_rss_mb_after": {**peaks, "incremental_recent": peak_mb()},
    }


if __name__ == "__main__":
    main()
