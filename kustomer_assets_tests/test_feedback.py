"""The feedback table against the emulator's truth, and incremental builds against full ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.emulator import Emulator
from kustomer_assets.emulator.dataset import ms_to_iso
from kustomer_assets.feedback.build import build_feedback
from kustomer_assets.lake import DeltaStore
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.records import parse_timestamp
from kustomer_assets_tests.conftest import Lake, day_range, emulator_config, materialize_range
from kustomer_assets_tests.conftest import resources as raw_resources

DAYS = 10
BACKFILL_DAYS = 30
"""The issue's acceptance: a 30-day backfill, every joined value equal to the truth."""


def build(lake: Lake, full: bool = False) -> dict:
    result = dg.materialize(
        [feedback],
        resources={"lake": DeltaLakeResource(root=str(lake.root))},
        run_config={"ops": {"feedback": {"config": {"full_rebuild": full}}}},
    )
    event = result.asset_materializations_for_node("feedback")[0]
    return {key: value.value for key, value in event.metadata.items()}


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    lake = Lake(tmp_path_factory.mktemp("feedback") / "delta")
    limits = {"org_rate_limit": 20_000, "search_rate_limit": 2_000}  # first-load GETs
    with Emulator(emulator_config(days=BACKFILL_DAYS, **limits)) as server:
        # History spans BACKFILL_DAYS back from now, which touches BACKFILL_DAYS + 1 dates.
        first, last = day_range(BACKFILL_DAYS + 1)
        materialize_range(entity_assets, first, last, raw_resources(server.base_url, lake))
        metadata = build(lake)
        yield server, lake, metadata


def test_one_row_per_live_conversation_with_the_truths_values(loaded) -> None:
    server, lake, metadata = loaded
    assert metadata["mode"] == "full"
    table = lake.table("feedback")
    live = [
        c
        for c in server.truth("conversation", include_deleted=True)
        if not c["attributes"].get("deleted")
    ]
    assert sorted(table["conversation_id"]) == sorted(c["id"] for c in live)
    rows = {row["conversation_id"]: row for row in table.iter_rows(named=True)}
    customers = by_id(server.truth("customer"))
    users = by_id(server.truth("user"))
    teams = by_id(server.truth("team"))
    tags = by_id(server.truth("tag"))
    responses = by_id(server.truth("satisfaction_response"))
    messages: dict[str, list[dict]] = {}
    for message in server.truth("message"):
        if not message["attributes"].get("deleted"):
            conversation_id = message["relationships"]["conversation"]["data"]["id"]
            messages.setdefault(conversation_id, []).append(message)
    checked_csat = 0
    for conversation in live:
        row = rows[conversation["id"]]
        a = conversation["attributes"]
        customer = customers[conversation["relationships"]["customer"]["data"]["id"]]
        assert row["customer_email"] == customer["attributes"]["emails"][0]["email"]
        assert row["customer_name"] == customer["attributes"]["name"]
        agent = users[a["assignedUsers"][0]]["attributes"]
        assert row["assigned_agent_name"] == agent["name"]
        assert row["assigned_team_names"] == [
            teams[t]["attributes"]["name"] for t in a["assignedTeams"]
        ]
        assert row["tag_names"] == [tags[t]["attributes"]["name"] for t in a["tags"]]
        assert row["csat_score"] == (float(a["satisfaction"]) if a["satisfaction"] else None)
        assert row["reopen_count"] == a["reopenCount"]
        assert row["ended_reason"] == a.get("endedReason")
        first = a.get("firstResponse") or {}
        if first.get("time") is not None:
            assert row["first_response_minutes"] == pytest.approx(first["time"] / 60_000, abs=0.006)
        if (a.get("lastDone") or {}).get("createdAt"):
            done = parse_timestamp(a["lastDone"]["createdAt"])
            began = parse_timestamp(a["createdAt"])
            assert row["resolution_minutes"] == pytest.approx(
                (done - began).total_seconds() / 60, abs=0.006
            )
        else:
            assert row["resolution_minutes"] is None
        level = a.get("satisfactionLevel") or {}
        if level.get("formResponse"):
            answers = responses[level["formResponse"]]["attributes"]["answers"]
            texts = [x["answer"] for x in answers if isinstance(x["answer"], str) and x["answer"]]
            assert row["csat_comment"] == ("\n".join(texts) or None)
            checked_csat += 1
        expected = sorted(
            messages.get(conversation["id"], []),
            key=lambda m: (m["attributes"]["sentAt"], m["id"]),
        )
        assert [e["text"] for e in row["transcript"] or []] == [
            m["attributes"]["preview"] for m in expected
        ]
        assert row["message_count_in"] == sum(
            m["attributes"]["direction"] == "in" for m in expected
        )
        inbound = [
            m["attributes"]["preview"] for m in expected if m["attributes"]["direction"] == "in"
        ]
        assert row["customer_text"] == ("\n".join(inbound) or None)
        if expected:
            assert row["last_message_direction"] == expected[-1]["attributes"]["direction"]
            assert row["last_message_at"] == parse_timestamp(expected[-1]["attributes"]["sentAt"])
        custom = a.get("custom") or {}
        if "orderIdStr" in custom:
            assert row["conversation_custom_order_id_str"] == custom["orderIdStr"]
    assert checked_csat > 10


def test_incremental_build_equals_a_full_rebuild(tmp_path) -> None:
    lake = Lake(tmp_path / "delta")
    with Emulator(emulator_config(days=DAYS)) as server:
        first, last = day_range(DAYS + 1)  # history spans DAYS back from now: DAYS + 1 dates
        res = raw_resources(server.base_url, lake)
        materialize_range(entity_assets, first, last, res)
        assert build(lake)["mode"] == "full"
        total = lake.table("feedback").height

        server.dataset.mutate("conversation", change=20, create=5, delete=3)
        server.dataset.mutate("message", change=10, create=10)
        server.dataset.mutate("customer", change=10)
        server.dataset.mutate("note", create=5, delete=2)
        # A record edited so that it now sits on an older day: a backfill of that day.
        older = (datetime.now(UTC) - timedelta(days=3)).replace(hour=12, minute=0)
        with server.dataset.lock:
            record = next(
                c
                for c in server.dataset.records["conversation"].values()
                if not c["attributes"].get("deleted")
                and c["attributes"]["updatedAt"] < ms_to_iso(int(older.timestamp() * 1000))
            )
            record["attributes"]["status"] = "snoozed"
            record["attributes"]["updatedAt"] = ms_to_iso(int(older.timestamp() * 1000))
        today = last
        materialize_range(entity_assets, today, today, res)
        materialize_range(entity_assets, older.date().isoformat(), older.date().isoformat(), res)

        metadata = build(lake)
        assert metadata["mode"] == "incremental"
        assert 0 < metadata["conversations_rebuilt"] < total / 2
        incremental = lake.table("feedback").sort("conversation_id")
        full = build_feedback(DeltaStore(str(lake.root)), None).sort("conversation_id")
        assert incremental.select(sorted(incremental.columns)).equals(
            full.select(sorted(full.columns))
        )
        row = incremental.filter(pl.col("conversation_id") == record["id"])
        assert row["status"].to_list() == ["snoozed"]
        live = [c for c in server.truth("conversation") if not c["attributes"].get("deleted")]
        assert incremental.height == len(live)
        # Nothing changed since: the next build rebuilds nothing.
        assert build(lake)["conversations_rebuilt"] == 0


def test_sensor_runs_then_feedback_equals_a_full_rebuild(tmp_path) -> None:
    """Issue acceptance: 50 conversations change; one tick requests their days; after those
    runs, the incrementally refreshed feedback equals a full rebuild and the truth."""
    from kustomer_assets.automation import build_kustomer_changes_sensor
    from kustomer_assets.kustomer.resource import KustomerResource
    from kustomer_assets_tests.conftest import TEST_KEY

    lake = Lake(tmp_path / "delta")
    with Emulator(emulator_config(days=DAYS)) as server:
        first, last = day_range(DAYS + 1)  # history spans DAYS back from now: DAYS + 1 dates
        res = raw_resources(server.base_url, lake)
        materialize_range(entity_assets, first, last, res)
        build(lake)
        sensor = build_kustomer_changes_sensor(clock=server.dataset.clock)
        kustomer = KustomerResource(api_key=TEST_KEY, base_url=server.base_url)

        def tick(cursor: str | None):
            with dg.instance_for_test() as instance:
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources={"kustomer": kustomer}
                )
                return sensor(context)

        cursor = tick(None).cursor
        changed = server.dataset.mutate("conversation", change=50)["changed"]
        result = tick(cursor)
        requests = result.run_requests or []
        assert requests
        for request in requests:
            dg.materialize(
                entity_assets,
                selection=request.asset_selection,
                partition_key=request.partition_key,
                resources=res,
            )
        metadata = build(lake)
        assert metadata["mode"] == "incremental"
        assert metadata["conversations_rebuilt"] >= len(set(changed))
        table = lake.table("feedback").sort("conversation_id")
        full = build_feedback(DeltaStore(str(lake.root)), None).sort("conversation_id")
        assert table.select(sorted(table.columns)).equals(full.select(sorted(full.columns)))
        truth = {c["id"]: c for c in server.truth("conversation")}
        stored = dict(zip(table["conversation_id"], table["updated_at"], strict=True))
        for conversation_id in changed:
            if not truth[conversation_id]["attributes"].get("deleted"):
                expected = truth[conversation_id]["attributes"]["updatedAt"]
                assert (
                    stored[conversation_id].isoformat(timespec="milliseconds")[:23] == expected[:23]
                )


def test_feedback_is_requested_after_its_inputs_change_with_partial_history() -> None:
    """Plain eager() waits for every daily partition since the start date, which a partial
    backfill never has; ours fires once conversations exist and again after inputs change."""
    from kustomer_assets.definitions import defs

    selection = dg.AssetSelection.assets("feedback")
    today = datetime.now(UTC).date()

    def load(name: str, days: int = 3) -> None:
        for back in range(days):
            day = (today - timedelta(days=back)).isoformat()
            instance.report_runless_asset_event(dg.AssetMaterialization(name, partition=day))

    def requested(cursor=None):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=cursor
        )
        return result.total_requested, result.cursor

    with dg.instance_for_test() as instance:
        load("notes")
        count, cursor = requested()
        assert count == 0, "nothing to build without conversations"
        load("conversations")
        count, cursor = requested(cursor)
        assert count == 1
        instance.report_runless_asset_event(dg.AssetMaterialization("feedback"))
        count, cursor = requested(cursor)
        assert count == 0, "its own build is not a change"
        load("messages", days=1)
        count, _ = requested(cursor)
        assert count == 1


def test_the_ui_schema_is_the_written_one_with_types_and_custom_columns(loaded) -> None:
    _, lake, metadata = loaded
    schema = metadata["dagster/column_schema"]
    written = lake.table("feedback").schema
    by_name = {c.name: c for c in schema.columns}
    assert list(by_name) == list(written)
    assert by_name["csat_score"].type == "Float64"
    assert by_name["transcript"].type.startswith("List(Struct")
    custom = [name for name in by_name if name.startswith("conversation_custom_")]
    assert custom and all(by_name[name].description for name in custom)
    assert all(c.description for c in schema.columns), [
        c.name for c in schema.columns if not c.description
    ]


def test_a_build_before_its_inputs_warns_and_fails_the_inputs_check(tmp_path) -> None:
    """Only conversations loaded: feedback still builds, and its check names what is missing."""
    from kustomer_assets.checks.quality import FEEDBACK_INPUTS_LOADED, feedback_inputs_check
    from kustomer_assets.feedback.incremental import INPUTS

    lake = Lake(tmp_path / "delta")
    conversations = [a for a in entity_assets if a.key.path[-1] == "conversations"]
    check = feedback_inputs_check(INPUTS)
    with Emulator(emulator_config(days=3)) as server, dg.instance_for_test() as instance:
        first, last = day_range(2)
        res = raw_resources(server.base_url, lake)
        materialize_range(conversations, first, last, res, instance=instance)
        result = dg.materialize(
            [feedback, check],
            resources={"lake": res["lake"]},
            instance=instance,
            selection=[feedback.key],
        )
    metadata = result.asset_materializations_for_node("feedback")[0].metadata
    assert "messages" in metadata["inputs_absent"].value
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == FEEDBACK_INPUTS_LOADED and not evaluation.passed
    assert "messages" in (evaluation.description or "")
    assert "conversations" not in evaluation.metadata["never_loaded"].value
