"""A live org: churn while paging, hard deletes, merges, drift, a shared budget, restarts.

These are the conditions under which an extraction silently loses or misreports records; each
test drives the emulator over real HTTP and checks the result against `emu.truth(...)`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kustomer_assets.emulator import NO_SEARCH_KEY, Emulator, EmulatorConfig
from kustomer_assets.emulator.server import NO_SEARCH_ROLES, READ_ROLES, SEARCH_ROLES

NOW = datetime(2026, 11, 20, 16, 34, tzinfo=UTC)
KEY = "emulator-key"
SEARCH = "/v1/customers/search"


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _config(**kw: Any) -> EmulatorConfig:
    base: dict[str, Any] = {"now": NOW, "days": 10, "scale": 0.3}
    base.update(kw)
    return EmulatorConfig(**base)


def _client(emu: Emulator, key: str = KEY) -> httpx.Client:
    return httpx.Client(
        base_url=emu.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def _admin(emu: Emulator, method: str, route: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{emu.base_url}/__admin/{route}", json=body, timeout=10)


def _window_body(lo: str, hi: str) -> dict[str, Any]:
    return {
        "queryContext": "conversation",
        "and": [
            {"conversation_updated_at": {"gte": lo}},
            {"conversation_updated_at": {"lt": hi}},
        ],
        "sort": [{"conversation_updated_at": "asc"}],
    }


def _search_ids(c: httpx.Client, body: dict[str, Any]) -> set[str]:
    """Every id a body matches right now (churn must be off while this runs)."""
    ids: set[str] = set()
    url: str | None = f"{SEARCH}?page=1&pageSize=500"
    while url:
        doc = c.post(url, json=body).json()
        ids.update(r["id"] for r in doc["data"])
        url = doc["links"]["next"]
    return ids


def _list_ids(c: httpx.Client, path: str) -> set[str]:
    ids: set[str] = set()
    url: str | None = f"{path}?pageSize=100"
    while url:
        doc = c.get(url).json()
        ids.update(x["id"] for x in doc["data"])
        url = doc["links"]["next"]
    return ids


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(_config()) as e:
        yield e
    assert not e.errors, e.errors


# ----------------------------------------------------------------------------- churn


def test_page_number_paging_under_churn_loses_untouched_records_cursor_does_not() -> None:
    """The hazard this emulator exists to show: paging a moving list by page number skips rows.

    Each churned record on a page already served leaves its place, every later record moves up
    one, and the record at the next page boundary is never served. Row counts still add up to
    meta.total (the changed record comes back at the end), so only ids reveal the loss.
    """
    cfg = _config(scale=3.0, churn={"conversation": 2})
    with Emulator(cfg) as e, _client(e) as c:
        lo, hi = _iso(NOW - timedelta(days=10)), _iso(NOW + timedelta(days=1))
        body = _window_body(lo, hi)
        in_window = {r["id"] for r in e.truth("conversation", include_deleted=False)}
        assert len(in_window) > 1000

        rows: list[dict[str, Any]] = []
        page, total = 1, -1
        while True:
            doc = c.post(f"{SEARCH}?page={page}&pageSize=100", json=body).json()
            rows.extend(doc["data"])
            total = doc["meta"]["total"]
            if not doc["links"]["next"]:
                break
            page += 1
        untouched = in_window - e.churned("conversation")
        lost = untouched - {r["id"] for r in rows}
        assert page > 10 and len(rows) == total  # the counts look complete...
        assert len(lost) >= 1, "page-number paging should skip untouched records under churn"

        # A cursor client: each next query starts at the last updatedAt seen (gte), page 1 only,
        # de-duplicated on (id, updatedAt). pageSize 500 because the org's bulk tie (320 rows at
        # one millisecond) must fit in a page, or a pure updatedAt cursor cannot move past it.
        _admin(e, "POST", "churn", {"conversation": 2, "reset": True})
        seen: set[tuple[str, str]] = set()
        cursor, requests = lo, 0
        while True:
            b = _window_body(cursor, hi)
            data = c.post(f"{SEARCH}?page=1&pageSize=500", json=b).json()["data"]
            requests += 1
            seen.update((r["id"], r["attributes"]["updatedAt"]) for r in data)
            if len(data) < 500:
                break
            assert data[-1]["attributes"]["updatedAt"] > cursor  # progress, or we would loop
            cursor = data[-1]["attributes"]["updatedAt"]
        assert requests >= 3 and e.churned("conversation")
        assert in_window - {i for i, _ in seen} == set()
        assert e.stats["churn.changed"] == 2 * (page + requests)
    assert not e.errors, e.errors


def test_churn_changes_matching_records_after_the_page_is_built() -> None:
    with Emulator(_config()) as e, _client(e) as c:
        body = {
            "queryContext": "conversation",
            "and": [{"conversation_status": {"equals": "done"}}],
            "sort": [{"conversation_updated_at": "asc"}],
        }
        matching = _search_ids(c, body)
        assert len(matching) > 20
        before = {r["id"]: r for r in e.truth("conversation")}
        version = e.dataset.version

        r = _admin(e, "POST", "churn", {"conversation": 2})
        assert r.status_code == 200 and r.json() == {"churn": {"conversation": 2}}
        doc = c.post(f"{SEARCH}?page=1&pageSize=10", json=body).json()
        served = {x["id"]: x for x in doc["data"]}
        churned = e.churned("conversation")
        assert len(churned) == 2 and churned <= matching
        assert len(churned & set(served)) == 1  # one on the page just served, one further on
        assert e.dataset.version > version  # so the cached result is not served again
        after = {x["id"]: x for x in e.truth("conversation")}
        for id_ in churned:
            old, new = before[id_]["attributes"], after[id_]["attributes"]
            assert new["updatedAt"] > old["updatedAt"] and new["updatedAt"] >= _iso(NOW)
            assert new["rev"] == old["rev"] + 1
            if id_ in served:  # the response shows the state from before the change
                assert served[id_] == before[id_]
        assert e.stats["churn.changed"] == 2

        # changes plus creations; the admin view lists every churned id
        r = _admin(e, "POST", "churn", {"conversation": {"change": 1, "create": 1}})
        assert r.status_code == 200
        c.post(f"{SEARCH}?page=2&pageSize=10", json=body)
        assert len(e.churned("conversation")) == 4 and e.stats["churn.created"] == 1
        listed = _admin(e, "GET", "churned").json()
        assert set(listed["conversation"]) == e.churned("conversation")
        assert set(listed["conversation"]) - set(before)  # the created one is new
        assert set(listed["conversation"]) <= {x["id"] for x in e.truth("conversation")}

        # {"reset": true} alone forgets the ids but keeps churning; {} turns churn off
        _admin(e, "POST", "churn", {"reset": True})
        assert e.churned("conversation") == set()
        c.post(f"{SEARCH}?page=1&pageSize=10", json=body)
        assert len(e.churned("conversation")) == 2
        _admin(e, "POST", "churn", {})
        version = e.dataset.version
        c.post(f"{SEARCH}?page=1&pageSize=10", json=body)
        c.post(SEARCH, json={"queryContext": "customer"})
        assert e.dataset.version == version and len(e.churned("conversation")) == 2
        for bad in ({"planet": 1}, {"conversation": -1}, {"conversation": {"chnage": 1}}):
            assert _admin(e, "POST", "churn", bad).status_code == 400
    assert not e.errors, e.errors


# ----------------------------------------------------------------------------- hard deletes


def test_hard_delete_removes_records_everywhere(emu: Emulator) -> None:
    with _client(emu) as c:
        conv = next(
            r
            for r in emu.truth("conversation", include_deleted=False)
            if r["attributes"]["messageCount"] >= 2
        )
        msgs = c.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
        target_msg = msgs[0]["id"]
        one = {"type": "message", "hard_delete": 1, "ids": [target_msg]}
        r = _admin(emu, "POST", "mutate", one)
        assert r.status_code == 200 and r.json()["hard_deleted"] == [target_msg]
        left = c.get(f"/v1/conversations/{conv['id']}/messages").json()["data"]
        assert target_msg not in {m["id"] for m in left} and len(left) == len(msgs) - 1
        assert target_msg not in {m["id"] for m in emu.truth("message")}

        r = _admin(emu, "POST", "mutate", {"type": "conversation", "hard_delete": 2})
        gone = r.json()["hard_deleted"]
        assert len(gone) == 2
        body = {"queryContext": "conversation", "includeDeleted": True}
        assert _search_ids(c, body).isdisjoint(gone)
        for id_ in gone:
            assert c.get(f"/v1/conversations/{id_}").status_code == 404
            assert c.get(f"/v1/conversations/{id_}/messages").status_code == 404
        assert {x["id"] for x in emu.truth("conversation")}.isdisjoint(gone)

        cust = emu.dataset.hard_delete("customer", 1)
        listed = _list_ids(c, "/v1/customers")
        assert cust[0] not in listed and c.get(f"/v1/customers/{cust[0]}").status_code == 404

        removed = emu.removed()
        assert removed["message"] == [target_msg] and removed["conversation"] == gone
        assert removed["customer"] == cust
        doc = _admin(emu, "GET", "removed").json()
        assert doc["conversation"] == gone and doc["merged"] == emu.merged()

        # an unknown id refuses the whole request; ids also target change and soft delete
        alive = sorted(x["id"] for x in emu.truth("tag", include_deleted=False))[:2]
        bad = {"type": "tag", "change": 1, "ids": [alive[0], "ffffffffffffffffffffffff"]}
        before = emu.truth("tag")
        assert _admin(emu, "POST", "mutate", bad).status_code == 400
        assert emu.truth("tag") == before
        r = _admin(emu, "POST", "mutate", {"type": "tag", "change": 1, "delete": 1, "ids": alive})
        assert r.json()["changed"] == alive and r.json()["deleted"] == alive
        assert all(t["attributes"]["deleted"] for t in emu.truth("tag") if t["id"] in alive)


# ----------------------------------------------------------------------------- merges


def _customer_with_conversations(e: Emulator, skip: set[str]) -> str:
    counts: dict[str, int] = {}
    for conv in e.truth("conversation", include_deleted=False):
        cid = conv["relationships"]["customer"]["data"]["id"]
        counts[cid] = counts.get(cid, 0) + 1
    return max((n, cid) for cid, n in counts.items() if cid not in skip)[1]


def test_customer_merge_repoints_children_and_hides_the_loser(emu: Emulator) -> None:
    with _client(emu) as c:
        loser = _customer_with_conversations(emu, set())
        survivor = _customer_with_conversations(emu, {loser})
        before = {t: {r["id"]: r for r in emu.truth(t)} for t in ("conversation", "message")}
        old_survivor = emu.dataset.get("customer", survivor)
        assert old_survivor is not None

        def linked(type_: str) -> set[str]:
            return {
                i
                for i, r in before[type_].items()
                if (r["relationships"].get("customer") or {}).get("data", {}).get("id") == loser
            }

        moved = {"conversation": linked("conversation"), "message": linked("message")}
        assert moved["conversation"] and moved["message"]

        r = _admin(emu, "POST", "merge", {"pairs": [[loser, survivor]]})
        assert r.status_code == 200 and r.json() == {"pairs": [[loser, survivor]]}
        for type_, ids in moved.items():
            now = {x["id"]: x for x in emu.truth(type_)}
            for id_ in ids:
                assert now[id_]["relationships"]["customer"]["data"]["id"] == survivor
                old_at = before[type_][id_]["attributes"]["updatedAt"]
                assert now[id_]["attributes"]["updatedAt"] > old_at
        got = c.get(f"/v1/customers/{survivor}").json()["data"]
        assert got["attributes"]["updatedAt"] > old_survivor["attributes"]["updatedAt"]
        assert got["attributes"]["rev"] == old_survivor["attributes"]["rev"] + 1

        # the loser: gone from search, lists and truth; a lookup answers with the survivor
        assert loser not in _search_ids(c, {"queryContext": "customer", "includeDeleted": True})
        listed = _list_ids(c, "/v1/customers")
        assert loser not in listed and survivor in listed
        assert loser not in {x["id"] for x in emu.truth("customer")}
        lookup = c.get(f"/v1/customers/{loser}")
        assert lookup.status_code == 200 and lookup.json()["data"]["id"] == survivor
        conv_id = next(iter(moved["conversation"]))
        conv = c.get(f"/v1/conversations/{conv_id}").json()["data"]
        assert conv["relationships"]["customer"]["data"]["id"] == survivor

        # random pairs, and a chain resolves to the last survivor
        pairs = _admin(emu, "POST", "merge", {"n": 2}).json()["pairs"]
        assert len(pairs) == 2 and len({i for p in pairs for i in p}) == 4
        _admin(emu, "POST", "merge", {"pairs": [[survivor, pairs[0][1]]]})
        assert c.get(f"/v1/customers/{loser}").json()["data"]["id"] == pairs[0][1]
        merged = _admin(emu, "GET", "removed").json()["merged"]
        assert merged[loser] == survivor and merged[survivor] == pairs[0][1]
        assert all(merged[a] == b for a, b in pairs)
        assert _admin(emu, "POST", "merge", {"pairs": [[loser, survivor]]}).status_code == 400
        assert _admin(emu, "POST", "merge", {"pairs": [[survivor, survivor]]}).status_code == 400


def test_merged_lookup_can_answer_404() -> None:
    with Emulator(_config(merged_lookup="404")) as e, _client(e) as c:
        (loser, survivor), *_ = e.dataset.merge_customers(n=1)
        assert c.get(f"/v1/customers/{loser}").status_code == 404
        assert c.get(f"/v1/customers/{survivor}").status_code == 200
        assert e.merged() == {loser: survivor}
    with pytest.raises(ValueError, match="merged_lookup"):
        Emulator(_config(merged_lookup="redirect"))


# ----------------------------------------------------------------------------- roles


def test_default_keys_include_one_without_search_roles(emu: Emulator) -> None:
    assert EmulatorConfig().api_keys == {KEY: None, NO_SEARCH_KEY: NO_SEARCH_ROLES}
    assert set(READ_ROLES.values()) == NO_SEARCH_ROLES and NO_SEARCH_ROLES.isdisjoint(SEARCH_ROLES)
    with _client(emu, NO_SEARCH_KEY) as c:
        assert c.get("/v1/customers").status_code == 200
        assert c.get("/v1/metadata/conversation").status_code == 200
        r = c.post(SEARCH, json={"queryContext": "conversation"})
        assert r.status_code == 403
        err = r.json()["errors"][0]
        assert err["status"] == 403 and err["code"] == "forbidden"
        assert "org.permission.search.create" in err["detail"]
        assert err["meta"] == {
            "role": "org.permission.search.create",
            "roles": ["org.permission.search.create"],
        }
    with _client(emu) as c:
        assert c.post(SEARCH, json={"queryContext": "conversation"}).status_code == 200


def test_search_roles_without_customer_read_name_the_read_role() -> None:
    roles = frozenset(SEARCH_ROLES) | {READ_ROLES["conversation"]}
    with Emulator(_config(api_keys={"k": roles})) as e, _client(e, "k") as c:
        assert c.post(SEARCH, json={"queryContext": "conversation"}).status_code == 200
        r = c.post(SEARCH, json={"queryContext": "customer"})
        assert r.status_code == 403
        err = r.json()["errors"][0]
        assert "org.permission.customer.read" in err["detail"]
        assert err["meta"]["role"] == "org.permission.customer.read"
        assert err["meta"]["roles"] == ["org.permission.customer.read"]


# ----------------------------------------------------------------------------- drift


def test_patch_injects_drifted_values(emu: Emulator) -> None:
    with _client(emu) as c:
        body = {"queryContext": "conversation"}
        c.post(f"{SEARCH}?pageSize=500", json=body)  # warm the search cache
        before = {r["id"]: r for r in emu.truth("conversation")}
        payload = {
            "type": "conversation",
            "n": 2,
            "custom": {"refundAmountNum": "N/A", "vip_bool": True, "orderIdStr": None},
            "attributes": {"priority": "high", "tags": "billing", "snooze": {"until": [1, 2]}},
        }
        r = _admin(emu, "POST", "patch", payload)
        assert r.status_code == 200
        ids = r.json()["ids"]
        assert len(ids) == 2
        for id_ in ids:
            got = c.get(f"/v1/conversations/{id_}").json()["data"]["attributes"]
            old = before[id_]["attributes"]
            assert got["updatedAt"] > old["updatedAt"] and got["rev"] == old["rev"] + 1
            custom = got["custom"]
            assert custom["refundAmountNum"] == "N/A" and custom["vip_bool"] is True
            assert "orderIdStr" in custom and custom["orderIdStr"] is None
            kept = set(old["custom"]) - set(payload["custom"])
            assert all(custom[k] == old["custom"][k] for k in kept)
            assert got["priority"] == "high" and got["tags"] == "billing"
            assert got["snooze"] == {"until": [1, 2]}
        fresh = {x["id"]: x for x in c.post(f"{SEARCH}?pageSize=500", json=body).json()["data"]}
        fresh.update(
            {x["id"]: x for x in c.post(f"{SEARCH}?page=2&pageSize=500", json=body).json()["data"]}
        )
        assert all(fresh[i]["attributes"]["priority"] == "high" for i in ids)

        target = sorted(before)[0]
        assert emu.dataset.patch("conversation", ids=[target], custom={"x_num": [1]}) == [target]
        assert emu.truth("conversation")[0]["attributes"]["custom"]["x_num"] == [1]
        assert _admin(emu, "POST", "patch", {"type": "nope", "n": 1}).status_code == 400
        bad = {"type": "conversation", "ids": ["ffffffffffffffffffffffff"]}
        assert _admin(emu, "POST", "patch", bad).status_code == 400


# ----------------------------------------------------------------------------- budget + restart


def test_consume_spends_the_shared_budget() -> None:
    cfg = _config(org_rate_limit=10, search_rate_limit=5)
    with Emulator(cfg) as e, _client(e) as c:
        for _attempt in range(2):  # the fixed window may roll over mid-test; retry once
            r = _admin(e, "POST", "consume", {"org": 8, "search": 4})
            assert r.status_code == 200
            doc = r.json()
            first = c.post(SEARCH, json={"queryContext": "note"})
            second = c.post(SEARCH, json={"queryContext": "note"})
            if doc["reset"]["org"] <= time.time():
                continue
            break
        assert doc["remaining"] == {"org": 2, "search": 1}
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining"] == "0"
        assert first.headers["x-ratelimit-limit"] == "5"
        assert second.status_code == 429
        assert e.consume(org=100)["remaining"]["org"] == 0
        assert c.get("/v1/tags").status_code == 429


def test_restart_keeps_state_and_drops_requests_in_flight() -> None:
    with Emulator(_config(slow_seconds=0.6)) as e, _client(e) as c:
        removed = e.dataset.hard_delete("conversation", 1)
        e.consume(org=3)
        truth = e.truth("conversation")
        url, port = e.base_url, e.port
        outcome: list[BaseException | int] = []

        def slow_request() -> None:
            try:
                with _client(e) as slow:
                    outcome.append(slow.get("/v1/tags").status_code)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        e.set_faults(1.0, slow=1)
        worker = threading.Thread(target=slow_request)
        worker.start()
        deadline = time.monotonic() + 2
        while e.stats.get("faults.slow", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert e.stats.get("faults.slow") == 1  # the request is now sleeping inside the server
        e.set_faults(0.0)
        t_restart = time.monotonic()
        e.restart()
        worker.join(timeout=3)
        assert len(outcome) == 1 and isinstance(
            outcome[0], httpx.RemoteProtocolError | httpx.ReadError
        ), outcome

        assert e.base_url == url and e.port == port
        r = c.get("/v1/tags")  # the pooled connection died with the old server; httpx reconnects
        assert r.status_code == 200
        assert int(r.headers["x-ratelimit-remaining"]) <= 1000 - 3 - 1
        assert e.truth("conversation") == truth and e.removed() == {"conversation": removed}
        assert e.stats["restarts"] == 1
        time.sleep(max(0.0, t_restart + 0.7 - time.monotonic()))  # the old handler's write fails
    assert not e.errors, e.errors  # ...quietly: the drop was intended
