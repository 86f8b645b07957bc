"""The emulator must reproduce the API's hard parts faithfully, or connector tests prove nothing."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kustomer_assets.emulator import Dataset, Emulator, EmulatorConfig, generate_dataset
from kustomer_assets.emulator.dataset import (
    CUSTOM_SUFFIXES,
    LATE_CUSTOM_ATTRIBUTE,
    custom_suffix,
    iso_to_ms,
)

NOW = datetime(2026, 11, 20, 16, 34, tzinfo=UTC)
KEY = "emulator-key"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ID_RE = re.compile(r"^[0-9a-f]{24}$")
SEARCH = "/v1/customers/search"


def _client(emu: Emulator, key: str = KEY) -> httpx.Client:
    return httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _config(**kw: Any) -> EmulatorConfig:
    base: dict[str, Any] = {"now": NOW, "days": 10, "scale": 0.3}
    base.update(kw)
    return EmulatorConfig(**base)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(now=NOW, days=30, scale=0.5)) as e:
        yield e
    assert not e.errors, e.errors


@pytest.fixture(scope="module")
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with _client(emu) as c:
        yield c


def _search_all(
    c: httpx.Client, body: dict[str, Any], page_size: int = 500
) -> tuple[list[dict[str, Any]], int]:
    """Follow links.next (a host-relative path), re-posting the body; returns (records, total)."""
    url: str | None = f"{SEARCH}?page=1&pageSize={page_size}"
    out: list[dict[str, Any]] = []
    total = -1
    while url:
        r = c.post(url, json=body)
        assert r.status_code == 200, r.text
        doc = r.json()
        out.extend(doc["data"])
        total = doc["meta"]["total"]
        url = doc["links"]["next"]
        assert url is None or url.startswith("/v1/")
    return out, total


# ----------------------------------------------------------------------------- dataset


def test_generation_is_deterministic_fast_and_well_formed() -> None:
    cfg = _config(days=30, scale=1.0, seed=11)
    t0 = time.perf_counter()
    a = generate_dataset(cfg)
    elapsed = time.perf_counter() - t0
    b = generate_dataset(cfg)
    assert json.dumps(a.records, sort_keys=True) == json.dumps(b.records, sort_keys=True)
    other = generate_dataset(_config(days=30, scale=1.0, seed=12))
    assert set(a.records["conversation"]) != set(other.records["conversation"])
    # Only a guard against pathological slowness (~0.4 s locally; 1.7 s seen on a loaded
    # 2-core machine): speed is measured by benchmarks, not by timed unit tests.
    assert elapsed < 10
    counts = a.counts()
    assert 1400 <= counts["conversation"] <= 2300
    assert counts["message"] >= 4 * counts["conversation"]
    for type_, recs in a.records.items():
        assert recs, f"no {type_} records"
        for res in list(recs.values())[:50]:
            assert res["type"] == type_ and ID_RE.match(res["id"])
            attrs = res["attributes"]
            assert TS_RE.match(attrs["createdAt"]) and TS_RE.match(attrs["updatedAt"])
            assert attrs["updatedAt"] >= attrs["createdAt"]
            assert res["links"]["self"].endswith(res["id"])


def test_messages_carry_text_and_relationships(emu: Emulator) -> None:
    messages = emu.truth("message")
    assert all(m["attributes"]["preview"] for m in messages)
    assert max(len(m["attributes"]["preview"]) for m in messages) == 1000
    assert any(any(ord(ch) > 0x3000 for ch in m["attributes"]["preview"]) for m in messages)
    conv_ids = set(emu.dataset.records["conversation"])
    assert all(m["relationships"]["conversation"]["data"]["id"] in conv_ids for m in messages)
    emails = [m for m in messages if m["attributes"]["channel"] == "email"]
    assert emails and all("subject" in m["attributes"]["meta"] for m in emails)


def test_bulk_update_ties_at_least_300_conversations(emu: Emulator) -> None:
    counts = Counter(r["attributes"]["updatedAt"] for r in emu.truth("conversation"))
    stamp, n = counts.most_common(1)[0]
    assert n >= 300 and stamp == emu.dataset.bulk_updated_at
    assert not stamp.endswith(":00.000Z")  # ms precision matters in the tie
    # smaller ties everywhere
    for type_ in ("message", "customer", "note"):
        ties = Counter(r["attributes"]["updatedAt"] for r in emu.truth(type_))
        assert sum(1 for v in ties.values() if v > 1) > 5, type_


def test_every_custom_suffix_with_nulls_and_missing_keys(emu: Emulator) -> None:
    for obj in ("conversation", "customer"):
        records = emu.truth(obj)
        seen = {custom_suffix(k) for r in records for k in r["attributes"]["custom"]}
        if obj == "conversation":
            assert seen >= set(CUSTOM_SUFFIXES)
        customs = [r["attributes"]["custom"] for r in records]
        assert any(v is None for c in customs for v in c.values())
        keys = {k for c in customs for k in c}
        assert any(len(c) < len(keys) for c in customs)  # some keys missing
    customer_suffixes = {
        custom_suffix(k) for r in emu.truth("customer") for k in r["attributes"]["custom"]
    }
    assert customer_suffixes >= set(CUSTOM_SUFFIXES)


def test_late_custom_attribute_only_in_later_half(emu: Emulator) -> None:
    ds = emu.dataset
    mid = ds.start + (ds.now - ds.start) / 2
    mid_iso = mid.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    having = [
        r for r in emu.truth("conversation") if LATE_CUSTOM_ATTRIBUTE in r["attributes"]["custom"]
    ]
    assert len(having) > 20
    assert all(r["attributes"]["updatedAt"] >= mid_iso for r in having)


def test_metadata_and_lists_answer(client: httpx.Client, emu: Emulator) -> None:
    meta = client.get("/v1/metadata/conversation").json()["data"]
    assert LATE_CUSTOM_ATTRIBUTE in meta["attributes"]["properties"]
    assert client.get("/v1/metadata/nothing").status_code == 404
    for path in ("/v1/users", "/v1/teams", "/v1/tags", "/v1/brands", "/v1/satisfaction"):
        r = client.get(path)
        assert r.status_code == 200 and r.json()["data"], path
    me = client.get("/v1/users/current").json()["data"]
    assert me["attributes"]["userType"] == "machine"
    conv = next(
        r
        for r in emu.truth("conversation")
        if (r["attributes"]["satisfactionLevel"] or {}).get("formResponse")
    )
    resp_id = conv["attributes"]["satisfactionLevel"]["formResponse"]
    resp = client.get(f"/v1/satisfaction-responses/{resp_id}").json()["data"]
    assert resp["relationships"]["conversation"]["data"]["id"] == conv["id"]
    assert any(a["type"] == "text" for a in resp["attributes"]["answers"])
    got = client.get(f"/v1/conversations/{conv['id']}").json()["data"]
    assert got == conv
    msgs = client.get(f"/v1/conversations/{conv['id']}/messages").json()
    assert len(msgs["data"]) == conv["attributes"]["messageCount"]


# ----------------------------------------------------------------------------- paging + search


def test_list_paging_links_and_page_size_cap(client: httpx.Client, emu: Emulator) -> None:
    url: str | None = "/v1/customers?page=1&pageSize=1000"
    ids: list[str] = []
    pages = 0
    while url:
        doc = client.get(url).json()
        assert doc["meta"]["pageSize"] == 100  # capped
        ids.extend(r["id"] for r in doc["data"])
        url = doc["links"]["next"]
        pages += 1
    assert pages == doc["meta"]["totalPages"]
    assert doc["links"]["prev"] == f"/v1/customers?page={pages - 1}&pageSize=100"
    assert len(ids) == len(set(ids)) == len(emu.truth("customer")) == doc["meta"]["total"]
    users = client.get("/v1/users?pageSize=1000").json()
    assert users["meta"]["pageSize"] == 500


def test_search_window_pages_through_ties_stably(client: httpx.Client, emu: Emulator) -> None:
    bulk = emu.dataset.bulk_updated_at
    assert bulk is not None
    lo = datetime.fromisoformat(bulk.replace("Z", "+00:00")) - timedelta(hours=6)
    hi = lo + timedelta(hours=12)
    body = {
        "queryContext": "conversation",
        "and": [
            {"conversation_updated_at": {"gte": lo.isoformat()}},  # "+00:00" form on purpose
            {"conversation_updated_at": {"lt": hi.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        ],
        "sort": [{"conversation_updated_at": "asc"}],
        "includeDeleted": True,
    }
    first = client.post(f"{SEARCH}?page=1&pageSize=2000", json=body).json()
    assert first["meta"]["pageSize"] == 500
    assert first["meta"]["timed_out"] is False and first["meta"]["aggregations"] == {}
    got, total = _search_all(client, body, page_size=50)
    keys = [(r["attributes"]["updatedAt"], r["id"]) for r in got]
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == total
    lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
    expected = {
        r["id"]
        for r in emu.truth("conversation")
        if lo_ms <= (iso_to_ms(r["attributes"]["updatedAt"]) or 0) < hi_ms
    }
    assert {r["id"] for r in got} == expected and total >= 300
    # an exact-instant equals in another spelling of the same instant
    eq = {
        "queryContext": "conversation",
        "and": [{"conversation_updated_at": {"equals": bulk.replace("Z", "+00:00")}}],
    }
    tie, tie_total = _search_all(client, eq, page_size=100)
    assert tie_total >= 300 and [r["id"] for r in tie] == sorted(r["id"] for r in tie)


def test_search_criteria_sort_and_deleted(client: httpx.Client, emu: Emulator) -> None:
    body: dict[str, Any] = {
        "queryContext": "conversation",
        "and": [
            {"conversation_status": {"equals": "done"}},
            {"conversation_custom_vipBool": {"equals": True}},
        ],
        "sort": [{"conversation_created_at": "desc"}],
    }
    got, total = _search_all(client, body)
    assert got and total == len(got)
    assert all(r["attributes"]["status"] == "done" for r in got)
    assert all(r["attributes"]["custom"]["vipBool"] is True for r in got)
    created = [r["attributes"]["createdAt"] for r in got]
    assert created == sorted(created, reverse=True)
    deleted = {r["id"] for r in emu.truth("conversation") if r["attributes"]["deleted"]}
    assert deleted
    plain, _ = _search_all(client, {"queryContext": "conversation"})
    assert deleted.isdisjoint(r["id"] for r in plain)
    withdel, _ = _search_all(client, {"queryContext": "conversation", "includeDeleted": True})
    assert deleted <= {r["id"] for r in withdel}
    # default sort is updatedAt asc then id asc
    keys = [(r["attributes"]["updatedAt"], r["id"]) for r in plain]
    assert keys == sorted(keys)
    nums = _search_all(
        client,
        {"queryContext": "customer", "or": [{"customer_custom_lifetimeValueNum": {"gt": 1500}}]},
    )[0]
    assert nums and all(r["attributes"]["custom"]["lifetimeValueNum"] > 1500 for r in nums)
    bad = client.post(SEARCH, json={"queryContext": "conversation", "and": [{"nope": {"gt": 1}}]})
    assert bad.status_code == 400 and bad.json()["errors"][0]["status"] == 400
    assert client.post(SEARCH, json={"queryContext": "planet"}).status_code == 400


def test_search_only_covers_two_years() -> None:
    cfg = _config(days=800, scale=0.02)
    with Emulator(cfg) as e, _client(e) as c:
        got, _ = _search_all(c, {"queryContext": "conversation", "includeDeleted": True})
        cutoff = e.dataset.clock_ms() - 730 * 86_400_000
        assert got
        assert all((iso_to_ms(r["attributes"]["updatedAt"]) or 0) >= cutoff for r in got)
        older = [
            r
            for r in e.truth("conversation")
            if (iso_to_ms(r["attributes"]["updatedAt"]) or 0) < cutoff
        ]
        assert older


@pytest.mark.parametrize("mode", ["missing_next", "404", "400"])
def test_deep_paging_refusal(mode: str) -> None:
    with Emulator(_config(search_max_pages=2, deep_paging_refusal=mode)) as e, _client(e) as c:
        body = {"queryContext": "message"}
        p2 = c.post(f"{SEARCH}?page=2&pageSize=100", json=body).json()
        assert p2["meta"]["total"] > 300
        p3 = c.post(f"{SEARCH}?page=3&pageSize=100", json=body)
        lst = c.get("/v1/customers?page=3&pageSize=100")
        if mode == "missing_next":
            assert p2["links"]["next"] is None  # although meta.total says more remain
            assert p3.status_code == 200 and p3.json()["data"] == []
            assert lst.status_code == 200 and lst.json()["data"] == []
        else:
            assert p2["links"]["next"] == "/v1/customers/search?page=3&pageSize=100"
            assert p3.status_code == int(mode)
            assert p3.json()["errors"][0]["status"] == int(mode)
            assert lst.status_code == int(mode) and "message" in lst.json()
        assert e.stats["deep_paging_refusals"] >= 1


def test_deep_paging_by_result_count() -> None:
    with Emulator(_config(search_max_results=150)) as e, _client(e) as c:
        body = {"queryContext": "message"}
        got, total = _search_all(c, body, page_size=50)
        assert len(got) == 150 < total


# ----------------------------------------------------------------------------- auth + roles


def test_auth_failures() -> None:
    cfg = _config(expired_keys={"old"}, wrong_pod_keys={"eu"})
    with Emulator(cfg) as e:
        for key, text in (("nope", "Unauthorized"), ("old", "Expired token"), ("eu", "prod2")):
            with _client(e, key) as c:
                r = c.get("/v1/users/current")
                assert r.status_code == 401 and text in r.json()["message"]
                assert "x-ratelimit-remaining" in r.headers
        r = httpx.get(f"{e.base_url}/v1/users/current")
        assert r.status_code == 401 and r.json() == {
            "code": "unauthorized",
            "message": "Unauthorized",
        }


@pytest.mark.parametrize("status", [403, 401])
def test_missing_roles(status: int) -> None:
    roles = frozenset({"org.permission.conversation.read", "org.permission.search.create"})
    cfg = _config(api_keys={"limited": roles, KEY: None}, permission_error_status=status)
    with Emulator(cfg) as e, _client(e, "limited") as c:
        assert c.get("/v1/users/current").status_code == 200
        assert c.post(SEARCH, json={"queryContext": "conversation"}).status_code == 200
        r = c.post(SEARCH, json={"queryContext": "customer"})
        assert r.status_code == status
        assert "org.permission.customer.read" in r.json()["errors"][0]["detail"]
        r = c.get("/v1/customers")
        assert r.status_code == status
        assert "org.permission.customer.read" in r.json()["message"]
        assert r.json()["meta"]["role"] == "org.permission.customer.read"
        r = c.get("/v1/metadata/customer")
        assert "org.permission.metadata.read" in r.json()["message"]
    nosearch = frozenset({"org.permission.conversation.read"})
    with Emulator(_config(api_keys={"k": nosearch})) as e, _client(e, "k") as c:
        r = c.post(SEARCH, json={"queryContext": "conversation"})
        assert r.status_code == 403 and "search" in r.json()["errors"][0]["detail"]


# ----------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("reset_mode", ["epoch", "seconds"])
def test_rate_limits(reset_mode: str) -> None:
    cfg = _config(org_rate_limit=5, search_rate_limit=2, reset_header_mode=reset_mode)
    with Emulator(cfg) as e, _client(e) as c:
        # search budget: third search in the window is refused
        codes = [c.post(SEARCH, json={"queryContext": "note"}).status_code for _ in range(3)]
        if codes != [200, 200, 429]:  # the fixed window rolled over mid-test; retry once
            time.sleep(0.05)
            codes = [c.post(SEARCH, json={"queryContext": "note"}).status_code for _ in range(3)]
        assert 429 in codes
        results = [c.get("/v1/tags") for _ in range(5)]
        limited = [r for r in results if r.status_code == 429]
        assert limited
        r = limited[0]
        reset = int(r.headers["x-ratelimit-reset"])
        assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "0"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        if reset_mode == "epoch":
            assert reset > 1e9
        else:
            assert 0 <= reset <= 60
        assert e.stats["rate_limited"] >= 2
    with Emulator(_config(org_rate_limit=1, send_retry_after=False)) as e, _client(e) as c:
        rs = [c.get("/v1/tags") for _ in range(3)]
        assert any(r.status_code == 429 and "Retry-After" not in r.headers for r in rs)


def test_rate_window_resets() -> None:
    with Emulator(_config(org_rate_limit=2, rate_window_seconds=0.5)) as e, _client(e) as c:
        codes = [c.get("/v1/tags").status_code for _ in range(4)]
        assert 429 in codes
        time.sleep(0.55)
        assert c.get("/v1/tags").status_code == 200


# ----------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def faulty() -> Iterator[Emulator]:
    with Emulator(_config(slow_seconds=0.3)) as e:
        yield e
    assert not e.errors, e.errors


@pytest.mark.parametrize(
    ("kind", "status"), [("500", 500), ("502", 502), ("503_html", 503), ("429", 429)]
)
def test_status_faults(faulty: Emulator, kind: str, status: int) -> None:
    faulty.set_faults(1.0, **{kind: 1})
    try:
        with _client(faulty) as c:
            r = c.get("/v1/tags")
        assert r.status_code == status
        if kind == "500":
            assert r.json()["code"] == "internal_error"
        if kind == "503_html":
            assert r.headers["content-type"].startswith("text/html") and "<html" in r.text
        assert "x-ratelimit-remaining" in r.headers
        if kind == "429":
            assert r.headers["Retry-After"] == "1" and r.headers["x-ratelimit-remaining"] == "0"
        # admin endpoints are never faulted
        assert httpx.get(f"{faulty.base_url}/__admin/stats").status_code == 200
    finally:
        faulty.set_faults(0.0)
    assert faulty.stats[f"faults.{kind}"] >= 1


@pytest.mark.parametrize("kind", ["truncated", "drop"])
def test_connection_faults(faulty: Emulator, kind: str) -> None:
    faulty.set_faults(1.0, **{kind: 1})
    try:
        with _client(faulty) as c, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            c.get("/v1/customers")
    finally:
        faulty.set_faults(0.0)
    with _client(faulty) as c:  # the server survives
        assert c.get("/v1/tags").status_code == 200
    assert faulty.stats[f"faults.{kind}"] >= 1


def test_slow_fault_and_admin_faults_endpoint(faulty: Emulator) -> None:
    r = httpx.post(
        f"{faulty.base_url}/__admin/faults", json={"fault_rate": 1, "fault_kinds": {"slow": 1}}
    )
    assert r.status_code == 200 and r.json()["fault_kinds"]["slow"] == 1
    try:
        with _client(faulty) as c:
            t0 = time.perf_counter()
            assert c.get("/v1/tags").status_code == 200
            assert time.perf_counter() - t0 >= 0.3
    finally:
        httpx.post(f"{faulty.base_url}/__admin/faults", json={"fault_rate": 0})


def test_fault_rate_is_seeded() -> None:
    def run() -> list[int]:
        cfg = _config(fault_rate=0.5, fault_kinds={"500": 1, "503_html": 1}, fault_seed=3)
        with Emulator(cfg) as e, _client(e) as c:
            return [c.get("/v1/tags").status_code for _ in range(20)]

    a = run()
    assert a == run() and {200, 500, 503} <= set(a)


# ----------------------------------------------------------------------------- mutations


def test_mutate_bumps_updated_at_to_now() -> None:
    with Emulator(_config()) as e, _client(e) as c:
        before = {r["id"]: r for r in e.truth("conversation")}
        r = httpx.post(
            f"{e.base_url}/__admin/mutate",
            json={"type": "conversation", "change": 5, "create": 2, "delete": 1},
        )
        assert r.status_code == 200
        res = r.json()
        assert len(res["changed"]) == 5 and len(res["created"]) == 2 and len(res["deleted"]) == 1
        now_iso = NOW.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        after = {r["id"]: r for r in e.truth("conversation")}
        for id_ in res["changed"] + res["deleted"]:
            upd = after[id_]["attributes"]["updatedAt"]
            assert TS_RE.match(upd) and upd >= now_iso
            assert upd > before[id_]["attributes"]["updatedAt"]
        assert after[res["deleted"][0]]["attributes"]["deleted"] is True
        for id_ in res["created"]:
            assert id_ not in before and after[id_]["attributes"]["createdAt"] >= now_iso
        body = {
            "queryContext": "conversation",
            "and": [{"conversation_updated_at": {"gte": now_iso}}],
            "includeDeleted": True,
        }
        fresh, _ = _search_all(c, body)
        assert set(res["changed"] + res["created"] + res["deleted"]) <= {r["id"] for r in fresh}
        # new messages attach to a conversation, which moves too
        msg = e.dataset.mutate("message", create=1)["created"][0]
        m = e.dataset.get("message", msg)
        assert m is not None
        conv_id = m["relationships"]["conversation"]["data"]["id"]
        listed = c.get(f"/v1/conversations/{conv_id}/messages?pageSize=100").json()["data"]
        assert msg in {x["id"] for x in listed}
        assert httpx.get(f"{e.base_url}/__admin/truth/message").json()["meta"]["total"] == len(
            e.truth("message")
        )


def test_dataset_clock_and_changes_are_strictly_increasing() -> None:
    ds: Dataset = generate_dataset(_config())
    ds.advance(3600)
    assert ds.clock() >= NOW + timedelta(hours=1)
    id_ = ds.change("customer", 1)[0]
    first = ds.records["customer"][id_]["attributes"]["updatedAt"]
    second_ids = [ds.change("customer", 1)[0] for _ in range(3)]
    assert all(
        TS_RE.match(ds.records["customer"][i]["attributes"]["updatedAt"]) for i in second_ids
    )
    assert first >= NOW.isoformat()[:19]


def test_stop_is_clean_with_open_keep_alive_connection() -> None:
    e = Emulator(_config()).start()
    c = _client(e)
    assert c.get("/v1/users/current").status_code == 200  # connection stays pooled
    t0 = time.perf_counter()
    e.stop()
    assert time.perf_counter() - t0 < 2
    c.close()
