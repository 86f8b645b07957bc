"""Push refresh end to end: the emulator's webhooks, the receiver, its SQLite log, the
`kustomer_webhook_events` sensor and the polling sensor's back-off, against real servers on
loopback, a real Dagster instance and real Delta tables."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
from dagster._core.test_utils import create_run_for_test

from kustomer_assets.assets.feedback import feedback
from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.automation import SEARCHED, build_kustomer_changes_sensor
from kustomer_assets.emulator import Emulator
from kustomer_assets.lake.resource import DeltaLakeResource
from kustomer_assets.records import parse_timestamp
from kustomer_assets.timestamps import iso_ms
from kustomer_assets.webhooks import store as store_module
from kustomer_assets.webhooks.events import parse_event
from kustomer_assets.webhooks.receiver import DEFAULT_HEADER, WebhookReceiver
from kustomer_assets.webhooks.sensor import (
    build_kustomer_webhook_events_sensor,
    changes_from_events,
)
from kustomer_assets.webhooks.store import StoredEvent, WebhookStore
from kustomer_assets_tests.conftest import (
    Lake,
    day_range,
    emulator_config,
    materialize_range,
    resources,
)

SECRET = "whsec-test-0123456789-SECRET"
"""Distinctive so a test can grep every log for it."""
WRONG = "whsec-wrong-9876543210-GUESS"
SENSOR_INTERVAL_SECONDS = 30
AUTOMATION_INTERVAL_SECONDS = 30
"""The default_automation_condition_sensor's evaluation interval (Dagster's default)."""
CONVERSATION_RUN = {"conversations", "customers", "satisfaction", "notes"}


def event_body(
    id_: str = "6b0000000000000000000001",
    updated_at: str | None = "2026-11-20T10:00:00.000Z",
    *,
    type_: str = "conversation",
    event_id: str | None = "e0000000000000000000001",
) -> bytes:
    attributes = {"updatedAt": updated_at} if updated_at else {}
    envelope: dict = {
        "name": f"kustomer.{type_}.update",
        "data": {"type": type_, "id": id_, "attributes": attributes},
    }
    if event_id:
        envelope["id"] = event_id
    return json.dumps(envelope).encode()


def post(
    receiver: WebhookReceiver, body: bytes, secret: str | None = SECRET, **headers: str
) -> httpx.Response:
    if secret is not None:
        headers[DEFAULT_HEADER] = secret
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.post(receiver.url, content=body, headers=headers)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, step: float = 0.005) -> float:
    """Seconds until `predicate()` held; fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WebhookStore]:
    with WebhookStore(tmp_path / "webhooks") as opened:
        yield opened


@pytest.fixture
def receiver(store: WebhookStore) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(store, SECRET) as running:
        yield running


# ----------------------------------------------------------------------------- the receiver


def test_refuses_without_the_secret_and_never_logs_it(
    receiver: WebhookReceiver,
    store: WebhookStore,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    missing = post(receiver, event_body(), secret=None)
    wrong = post(receiver, event_body(), secret=WRONG)
    in_query = httpx.post(
        f"{receiver.url}?secret={SECRET}", content=event_body(), trust_env=False
    )  # a misconfigured webhook URL: still refused, and its query string is never logged
    assert (missing.status_code, wrong.status_code, in_query.status_code) == (401, 401, 401)
    assert store.count() == 0
    accepted = post(receiver, event_body())
    assert accepted.status_code == 201 and accepted.json() == {"status": "accepted", "seq": 1}

    # Everything but the test's own HTTP client (which logs the URLs it was given).
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(r.getMessage() for r in server_side) + "".join(capfd.readouterr())
    assert "-> 401" in logged and "-> 201" in logged, "the access log is there"
    for response in (missing, wrong, in_query, accepted):
        assert SECRET not in response.text and WRONG not in response.text
    assert SECRET not in logged and WRONG not in logged
    assert SECRET not in repr(receiver)
    assert SECRET.encode() not in store.path.read_bytes() + (store.body(1) or b"")


def test_redelivery_is_idempotent(receiver: WebhookReceiver, store: WebhookStore) -> None:
    first = post(receiver, event_body())
    again = post(receiver, event_body())  # Kustomer retrying a delivery we answered late
    same_version = post(receiver, event_body(event_id="e-other"))  # same (type, id, updatedAt)
    newer = post(receiver, event_body(updated_at="2026-11-20T10:00:01.000Z", event_id="e3"))
    assert [r.status_code for r in (first, again, same_version, newer)] == [201, 200, 200, 201]
    assert again.json() == {"status": "duplicate", "seq": 1} == same_version.json()
    assert [e.seq for e in store.after(0)] == [1, 2]


def test_huge_bodies_and_malformed_json_are_refused_without_a_row(
    receiver: WebhookReceiver, store: WebhookStore
) -> None:
    huge = event_body()[:-1] + b', "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert post(receiver, huge).status_code == 413
    for body in (b"{not json", b"[1, 2]", json.dumps({"name": "kustomer.x.update"}).encode()):
        response = post(receiver, body)
        assert response.status_code == 400, body
        assert response.json()["status"] == "refused"
    assert store.count() == 0
    assert receiver.stats == {"refused.too_large": 1, "refused.malformed": 3}
    assert post(receiver, event_body()).status_code == 201, "the receiver is still fine"


def test_envelopes_are_read_tolerantly_and_what_was_unreadable_is_recorded(
    receiver: WebhookReceiver, store: WebhookStore
) -> None:
    nested = {
        "event": "kustomer.customer.create",
        "id": "e-nested",
        "data": {"data": {"type": "customer", "id": "c1", "attributes": {"updatedAt": 1.7e12}}},
    }
    bare = {"type": "kustomer.message.create", "data": {"id": "m1"}}
    assert post(receiver, json.dumps(nested).encode()).status_code == 201
    assert post(receiver, json.dumps(bare).encode()).status_code == 201
    customer, message = store.after(0)
    assert (customer.event_name, customer.object_type, customer.object_id) == (
        "kustomer.customer.create",
        "customer",
        "c1",
    )
    assert customer.updated_at == datetime.fromtimestamp(1.7e9, UTC)
    assert customer.problems == ("object nested one level below data",)
    assert (message.object_type, message.object_id, message.updated_at) == ("message", "m1", None)
    assert any("updatedAt" in p for p in message.problems)
    assert message.changed_at == message.received_at, "no updatedAt: when it arrived"
    assert json.loads(store.body(message.seq) or b"") == bare, "the raw body, for replay"
    assert parse_event(event_body()).problems == ()


def test_accepted_events_survive_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "webhooks"
    with WebhookStore(folder) as store, WebhookReceiver(store, SECRET) as first:
        port = first.port
        assert post(first, event_body(event_id="e1")).status_code == 201
        assert post(first, event_body("6b02", event_id="e2")).status_code == 201
    with WebhookStore(folder) as store, WebhookReceiver(store, SECRET, port=port) as second:
        assert post(second, event_body(event_id="e1")).status_code == 200, "still known"
        assert post(second, event_body("6b03", event_id="e3")).json()["seq"] == 3
    with WebhookStore(folder) as reopened:
        assert [e.object_id for e in reopened.after(0)] == [
            "6b0000000000000000000001",
            "6b02",
            "6b03",
        ]


def test_the_command_keeps_what_it_acknowledged_when_killed(tmp_path: Path) -> None:
    """The console command, SIGKILLed right after a 201: the row was committed first."""
    port = free_port()
    env = {
        **os.environ,
        "KUSTOMER_WEBHOOK_SECRET": SECRET,
        "KUSTOMER_DELTA_ROOT": str(tmp_path / "delta"),
    }
    env.pop("KUSTOMER_WEBHOOK_STORE", None)
    command = [sys.executable, "-m", "kustomer_assets.cli", "webhooks", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}/kustomer/webhook"
        with httpx.Client(trust_env=False, timeout=5) as client:

            def up() -> bool:
                try:
                    return client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=15, step=0.05)
            response = client.post(url, content=event_body(), headers={DEFAULT_HEADER: SECRET})
            assert response.status_code == 201
    finally:
        process.send_signal(signal.SIGKILL)
        output = process.communicate(timeout=10)[0]
    assert SECRET not in output
    with WebhookStore(tmp_path / "delta" / "_webhooks") as store:
        assert [e.object_id for e in store.after(0)] == ["6b0000000000000000000001"]


def test_emulator_retries_until_the_receiver_is_back(tmp_path: Path) -> None:
    port = free_port()
    with (
        Emulator(emulator_config(days=1, scale=0.2, webhook_backoff_seconds=0.1)) as server,
        WebhookStore(tmp_path / "webhooks") as store,
    ):
        target = f"http://127.0.0.1:{port}/kustomer/webhook"
        configured = httpx.post(
            f"{server.base_url}/__admin/webhooks",
            json={"url": target, "secret": SECRET},
            trust_env=False,
        ).json()
        assert configured["url"] == target and configured["secret_set"] is True
        assert SECRET not in json.dumps(configured)

        changed = server.dataset.mutate("conversation", change=2)["changed"]
        wait_for(lambda: server.stats.get("webhooks.retried", 0) >= 2)  # nobody listening
        assert server.stats.get("webhooks.sent", 0) == 0
        with WebhookReceiver(store, SECRET, port=port):
            assert server.webhooks.flush(timeout=15)
        stats = server.stats
        assert stats["webhooks.sent"] == stats["webhooks.queued"] == 2
        assert stats.get("webhooks.failed", 0) == 0
        assert sorted(e.object_id for e in store.after(0)) == sorted(changed)

        # A wrong secret is refused every time, until the emulator gives up on the event.
        server.set_webhook(target, WRONG)
        server.webhooks.attempts = 3
        with WebhookReceiver(store, SECRET, port=port):
            server.dataset.mutate("customer", change=1)
            assert server.webhooks.flush(timeout=15)
        assert server.stats["webhooks.failed"] == 1
        assert store.count() == 2


def test_emulator_sends_kustomer_events_for_its_mutations(
    receiver: WebhookReceiver, store: WebhookStore
) -> None:
    config = emulator_config(days=1, scale=0.2, webhook_url=receiver.url, webhook_secret=SECRET)
    with Emulator(config) as server:
        assert SECRET not in repr(server.config)
        ds = server.dataset
        ds.create("message", 1)  # a message.create, and its conversation's update
        ds.mutate("note", create=1)  # no note events: only the conversation it touched
        ds.mutate("team", change=1)
        ds.mutate("user", change=1)
        (pair,) = ds.merge_customers(n=1)
        assert server.webhooks.flush(timeout=10)
        assert server.stats["webhooks.sent"] == server.stats["webhooks.queued"] == store.count()
    events = store.after(0)
    names = {e.event_name for e in events}
    assert {"kustomer.message.create", "kustomer.conversation.update"} <= names
    assert {"kustomer.team.update", "kustomer.user.update", "kustomer.customer.update"} <= names
    assert not any(e.object_type == "note" for e in events)
    survivor = next(e for e in events if e.object_type == "customer")
    assert survivor.object_id == pair[1] and not survivor.problems
    envelope = json.loads(store.body(survivor.seq) or b"")
    assert set(envelope) == {"id", "name", "org", "createdAt", "data", "changes"}
    assert envelope["changes"]["attributes"]["updatedAt"]["after"] == iso_ms(survivor.updated_at)


def test_pruning_never_reuses_a_sequence_number(store: WebhookStore) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(2):
        store.add(parse_event(event_body(f"6b0{n}", event_id=f"e{n}")), b"{}", old)
    assert store.prune(old + timedelta(days=1)) == 2 and store.count() == 0
    inserted, seq = store.add(parse_event(event_body("6b09", event_id="e9")), b"{}", old)
    assert inserted and seq == 3 == store.last_seq()


def test_a_hanging_receiver_never_slows_a_mutation() -> None:
    with socket.socket() as hanging:  # accepts connections (backlog) and never answers
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(16)
        with Emulator(emulator_config(days=1, scale=0.2)) as server:
            server.webhooks.timeout_seconds = 0.3
            server.set_webhook(f"http://127.0.0.1:{hanging.getsockname()[1]}/hook", SECRET)
            started = time.monotonic()
            server.dataset.mutate("conversation", change=5, create=2)
            assert time.monotonic() - started < 0.5
            wait_for(lambda: server.stats.get("webhooks.retried", 0) >= 1)
            server.set_webhook(None)


# ----------------------------------------------------------------------------- the sensors


def stored(type_: str, updated_at: str | None, seq: int = 1) -> StoredEvent:
    return StoredEvent(
        seq=seq,
        received_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        event_id=None,
        event_name=f"kustomer.{type_}.update",
        object_type=type_,
        object_id=f"id{seq}",
        updated_at=parse_timestamp(updated_at),
        problems=(),
    )


def test_events_map_to_tables_and_days() -> None:
    events = [
        stored("conversation", "2026-11-20T23:59:59.999Z", 1),
        stored("message", "2026-11-21T00:00:00.000Z", 2),
        stored("team", None, 3),  # no updatedAt: the day it was received
        stored("kobject", "2026-11-21T08:00:00.000Z", 4),
    ]
    changes, skipped = changes_from_events(events, enabled=lambda table: table != "messages")
    days = {c.entity: sorted(d.isoformat() for d in c.days) for c in changes}
    assert days == {
        "conversations": ["2026-11-20", "2026-11-21"],
        "notes": ["2026-11-20"],
        "teams": ["2026-11-21"],
    }
    assert dict(skipped) == {"kobject": 1}


def test_store_defaults_agree_with_the_lake() -> None:
    from kustomer_assets.lake.store import ROOT_VARIABLE
    from kustomer_assets.resources import DEFAULT_DELTA_ROOT

    assert store_module.ROOT_VARIABLE == ROOT_VARIABLE
    assert store_module.DEFAULT_DELTA_ROOT == DEFAULT_DELTA_ROOT


def searches(server: Emulator) -> dict[str, int]:
    return {s.name: server.stats.get(f"search.{s.source.query_context}", 0) for s in SEARCHED}


def test_polling_becomes_a_safety_net_once_webhooks_are_on(
    emulator: Emulator, receiver: WebhookReceiver, store: WebhookStore
) -> None:
    """An hour of 5-minute polling ticks: 12 search rounds without webhooks, 1 with them on
    (events or a quiet org alike), a warning when no event came for longer than expected, and
    every tick again once the webhook sensor stops reading the log."""
    poller = build_kustomer_changes_sensor(clock=emulator.dataset.clock, webhook_store=store.folder)
    webhook_sensor = build_kustomer_webhook_events_sensor(
        store_folder=store.folder, clock=emulator.dataset.clock
    )
    kustomer = resources(emulator.base_url, Lake(Path("unused")))["kustomer"]
    cursor = iso_ms(emulator.dataset.clock() - timedelta(minutes=1))

    def tick() -> dg.SensorResult | dg.SkipReason:
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"kustomer": kustomer}
            )
            return poller(context)

    def read_events() -> None:
        with dg.instance_for_test() as instance:
            webhook_sensor(
                dg.build_sensor_context(instance=instance, resources={"kustomer": kustomer})
            )

    def hour_of_ticks(webhooks_on: bool) -> tuple[int, list]:
        before = sum(searches(emulator).values())
        outcomes = []
        for _ in range(12):
            if webhooks_on:
                read_events()  # the webhook sensor ticks every 30 s in a deployment
            outcomes.append(tick())
            emulator.dataset.advance(5 * 60)
        return sum(searches(emulator).values()) - before, outcomes

    # Events arrive but nobody works them off yet: polling every tick.
    assert post(receiver, event_body()).status_code == 201
    before = searches(emulator)
    tick()
    assert {k: v - before[k] for k, v in searches(emulator).items()} == {
        s.name: 1 for s in SEARCHED
    }
    # The webhook sensor reads them: polling rests, without a warning while events flow.
    read_events()
    rested = tick()
    assert isinstance(rested, dg.SkipReason) and "Webhook events are arriving" in str(rested)

    # The webhook sensor stops reading: after the quiet period polling is back to every tick.
    emulator.dataset.advance(16 * 60)
    polling_only, _ = hour_of_ticks(webhooks_on=False)
    assert polling_only == 12 * len(SEARCHED)

    # Webhooks on and a quiet org: one safety-net round in the hour, and the ticks warn.
    quiet_org, outcomes = hour_of_ticks(webhooks_on=True)
    assert quiet_org <= len(SEARCHED), quiet_org
    assert polling_only >= 5 * quiet_org, (polling_only, quiet_org)
    rests = [str(o) for o in outcomes if isinstance(o, dg.SkipReason)]
    assert len(rests) >= 11
    assert all("No webhook event" in r and "Outbound webhooks" in r for r in rests)
    print(f"\nsearches in an hour: polling only {polling_only}, webhooks on {quiet_org}")

    # A change whose webhook was dropped: the next safety-net search requests its day.
    (changed,) = emulator.dataset.mutate("conversation", change=1)["changed"]
    day = emulator.truth("conversation")
    stamp = next(r for r in day if r["id"] == changed)["attributes"]["updatedAt"]
    emulator.dataset.advance(61 * 60)
    read_events()
    caught = tick()
    assert isinstance(caught, dg.SensorResult), caught
    assert stamp[:10] in {r.partition_key for r in caught.run_requests or []}


def test_no_second_run_for_a_day_whose_run_is_still_queued(
    receiver: WebhookReceiver, store: WebhookStore
) -> None:
    sensor = build_kustomer_webhook_events_sensor(store_folder=store.folder)
    kustomer = resources("http://127.0.0.1:1", Lake(Path("unused")))["kustomer"]
    today = datetime.now(UTC)
    assert post(receiver, event_body(updated_at=iso_ms(today))).status_code == 201
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"kustomer": kustomer})
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        (request,) = result.run_requests or []
        assert request.partition_key == today.date().isoformat()
        create_run_for_test(
            instance,
            status=dg.DagsterRunStatus.NOT_STARTED,  # QUEUED needs a code location
            tags={"dagster/partition": request.partition_key},
            asset_selection=frozenset(request.asset_selection or ()),
        )
        later = iso_ms(today + timedelta(milliseconds=5))
        assert post(receiver, event_body(updated_at=later, event_id="e2")).status_code == 201
        context = dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources={"kustomer": kustomer}
        )
        again = sensor(context)
        assert isinstance(again, dg.SensorResult)
        assert not again.run_requests and again.cursor == "2"


# ----------------------------------------------------------------------------- end to end


def build_feedback(lake: Lake, instance: dg.DagsterInstance) -> None:
    dg.materialize(
        [feedback], resources={"lake": DeltaLakeResource(root=str(lake.root))}, instance=instance
    )


def feedback_requested(instance: dg.DagsterInstance, cursor: object) -> tuple[int, object]:
    from kustomer_assets.definitions import defs

    result = dg.evaluate_automation_conditions(
        defs=defs,
        instance=instance,
        asset_selection=dg.AssetSelection.assets("feedback"),
        cursor=cursor,
    )
    return result.total_requested, result.cursor


def test_a_change_reaches_feedback_through_a_webhook_within_90_seconds(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "delta")
    with (
        Emulator(emulator_config(days=2, scale=0.3)) as server,
        dg.instance_for_test() as instance,
        WebhookStore(tmp_path / "webhooks") as store,
        WebhookReceiver(store, SECRET) as receiver,
    ):
        res = resources(server.base_url, lake)
        first, last = day_range(3, server.dataset.clock().date())
        materialize_range(entity_assets, first, last, res, instance=instance)
        build_feedback(lake, instance)
        _, automation_cursor = feedback_requested(instance, None)
        target = server.truth("conversation", include_deleted=False)[0]["id"]
        server.set_webhook(receiver.url, SECRET)
        sensor = build_kustomer_webhook_events_sensor(
            store_folder=store.folder, clock=server.dataset.clock
        )

        subject = "Where is my parcel? (edited, pushed by webhook)"
        started = time.monotonic()
        patched = httpx.post(
            f"{server.base_url}/__admin/patch",
            json={"type": "conversation", "ids": [target], "attributes": {"name": subject}},
            trust_env=False,
        )
        assert patched.json() == {"ids": [target]}
        wait_for(lambda: store.count() == 1)
        delivered = time.monotonic() - started

        mark = time.monotonic()
        context = dg.build_sensor_context(
            instance=instance, cursor=None, resources={"kustomer": res["kustomer"]}
        )
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        (request,) = result.run_requests or []
        updated = next(c for c in server.truth("conversation") if c["id"] == target)
        assert request.partition_key == updated["attributes"]["updatedAt"][:10]
        assert {k.path[-1] for k in request.asset_selection or []} == CONVERSATION_RUN
        evaluated = time.monotonic() - mark

        mark, calls = time.monotonic(), dict(server.stats)
        run = dg.materialize(
            entity_assets,
            selection=request.asset_selection,
            partition_key=request.partition_key,
            resources=res,
            instance=instance,
            tags=request.tags,
        )
        assert run.success
        ran = time.monotonic() - mark
        cost = {
            k: server.stats.get(k, 0) - calls.get(k, 0) for k in ("requests", "requests.search")
        }
        requested, _ = feedback_requested(instance, automation_cursor)
        assert requested == 1, "feedback's automation condition fires after the run"

        mark = time.monotonic()
        build_feedback(lake, instance)
        rebuilt = time.monotonic() - mark
        row = lake.table("feedback").filter(pl.col("conversation_id") == target)
        assert row["subject"].to_list() == [subject]

        measured = time.monotonic() - started
        latency = delivered + SENSOR_INTERVAL_SECONDS + evaluated + ran + rebuilt
        worst = latency + AUTOMATION_INTERVAL_SECONDS
        print(
            f"\nmutation -> feedback row: webhook delivered and stored {delivered:.3f} s, "
            f"sensor wait <= {SENSOR_INTERVAL_SECONDS} s (simulated), sensor evaluation "
            f"{evaluated:.2f} s, run {ran:.2f} s, feedback build {rebuilt:.2f} s: "
            f"{latency:.1f} s (measured without the waits: {measured:.1f} s); with the "
            f"automation sensor's {AUTOMATION_INTERVAL_SECONDS} s interval too: {worst:.1f} s. "
            f"The run made {cost['requests']} API requests ({cost['requests.search']} searches)."
        )
        assert latency < 90
        assert worst < 90

        context = dg.build_sensor_context(
            instance=instance, cursor=result.cursor, resources={"kustomer": res["kustomer"]}
        )
        quiet = sensor(context)
        assert isinstance(quiet, dg.SensorResult) and not quiet.run_requests
        assert "No webhook event after #1" in str(quiet.skip_reason)

        # Two changes on two days: an edit Kustomer stamped on an older day (a message) and a
        # customer renamed today. Exactly those days are requested, each with its tables.
        today = server.dataset.clock().date().isoformat()
        message = next(
            m
            for m in server.truth("message", include_deleted=False)
            if m["attributes"]["updatedAt"][:10] < today
        )
        stamp = parse_timestamp(message["attributes"]["updatedAt"]) + timedelta(milliseconds=1)
        preview = "Edited message text, pushed by webhook"
        customer = updated["relationships"]["customer"]["data"]["id"]
        for patch in (
            {
                "type": "message",
                "ids": [message["id"]],
                "attributes": {"preview": preview, "updatedAt": iso_ms(stamp)},
            },
            {"type": "customer", "ids": [customer], "attributes": {"name": "Renamed Customer"}},
        ):
            httpx.post(f"{server.base_url}/__admin/patch", json=patch, trust_env=False)
        wait_for(lambda: store.count() == 3)
        second = sensor(
            dg.build_sensor_context(
                instance=instance, cursor=quiet.cursor, resources={"kustomer": res["kustomer"]}
            )
        )
        assert isinstance(second, dg.SensorResult)
        planned = {
            r.partition_key: {k.path[-1] for k in r.asset_selection or []}
            for r in second.run_requests or []
        }
        assert planned == {
            stamp.date().isoformat(): {"messages", "conversations", "customers", "satisfaction"},
            today: {"customers"},
        }
        for request in second.run_requests or []:
            dg.materialize(
                entity_assets,
                selection=request.asset_selection,
                partition_key=request.partition_key,
                resources=res,
                instance=instance,
            )
        build_feedback(lake, instance)
        table = lake.table("feedback")
        conversation = message["relationships"]["conversation"]["data"]["id"]
        texts = table.filter(pl.col("conversation_id") == conversation)["transcript_text"]
        assert preview in texts.to_list()[0]
        names = table.filter(pl.col("customer_id") == customer)["customer_name"].unique()
        assert names.to_list() == ["Renamed Customer"]
