"""Generation of the whole org from a seed, shaped to break naive connectors.

Configuration objects first, then customers, conversations day by day (`generate_conversation`),
CRM sync batches that tie customers' `updatedAt`, soft deletes, one bulk update that ties >= 300
conversations to one millisecond, and custom attributes last (the late one depends on the final
`updatedAt`). Everything draws from one `random.Random(seed)` in a fixed order.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from datetime import UTC, datetime
from random import Random
from typing import Any

from .generate_conversation import _gen_conversation
from .jsonapi import _metadata_resource, _rel
from .org_records import (
    _make_brand,
    _make_company,
    _make_customer,
    _make_form,
    _make_klass,
    _make_kobject,
    _make_tag,
    _make_team,
    _make_user,
)
from .state import Dataset
from .timestamps import DAY_MS, HOUR_MS, MINUTE_MS, dt_to_ms, iso_to_ms, ms_to_iso, utcnow_ms
from .values import _custom, _ts
from .vocabulary import BULK_TIE_SIZE, ENTITY_TYPES, METADATA_RESOURCES, TAG_NAMES


def generate_dataset(config: Any) -> Dataset:
    """Build the org described by `config` (an EmulatorConfig or anything with seed/days/now/scale).

    Deterministic from (seed, days, now, scale).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()  # ~15k fresh dicts: cyclic GC passes would double the generation time
    try:
        return _generate(config)
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(config: Any) -> Dataset:
    seed: int = getattr(config, "seed", 7)
    days: int = getattr(config, "days", 30)
    scale: float = getattr(config, "scale", 1.0)
    now_dt: datetime = getattr(config, "now", None) or utcnow_ms()
    if now_dt.tzinfo is None:
        now_dt = now_dt.replace(tzinfo=UTC)
    now_dt = now_dt.replace(microsecond=now_dt.microsecond - now_dt.microsecond % 1000)
    now = dt_to_ms(now_dt)
    start = now - days * DAY_MS
    span = max(now - start, 1)
    rng = Random(seed)
    recs: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in ENTITY_TYPES}

    def put(res: dict[str, Any]) -> dict[str, Any]:
        recs[res["type"]][res["id"]] = res
        return res

    def old(lo_days: int = 60, hi_days: int = 600) -> int:
        return start - rng.randint(lo_days, hi_days) * DAY_MS - rng.randint(0, DAY_MS)

    def later(created: int) -> int:
        return _ts(rng, max(created, start), now) if rng.random() < 0.3 else created

    # Static-ish configuration objects, mostly created before the history window.
    for name in ("Acme Outdoor", "Acme Kids", "Acme Ünlimited"):
        c = old()
        put(_make_brand(rng, c, later(c), name))
    c = old()
    machine = put(_make_user(rng, c, c, "machine"))
    agents = []
    for i in range(24):
        c = old() if i < 20 else _ts(rng, start, now)
        agents.append(put(_make_user(rng, c, later(c), "user")))
    for a in agents[:2]:
        aa = a["attributes"]
        aa["deletedAt"] = ms_to_iso(_ts(rng, iso_to_ms(aa["updatedAt"]) or start, now))
        aa["updatedAt"] = aa["deletedAt"]
    live_agents = [a["id"] for a in agents[2:]]
    teams = []
    for _ in range(6):
        c = old()
        teams.append(put(_make_team(rng, c, later(c), sorted(rng.sample(live_agents, 5)))))
    teams[-1]["attributes"]["deleted"] = True
    team_ids = [t["id"] for t in teams[:-1]]
    tags = []
    for name in TAG_NAMES:
        c = old()
        tags.append(put(_make_tag(rng, c, later(c), name)))
    tags[-1]["attributes"]["deleted"] = True
    tag_ids = [t["id"] for t in tags]
    forms = [put(_make_form(rng, old(), old(1, 50), n)) for n in ("Post-chat CSAT", "Email CSAT")]
    for f in forms:  # keep createdAt <= updatedAt
        a = f["attributes"]
        a["createdAt"], a["updatedAt"] = sorted((a["createdAt"], a["updatedAt"]))
    klasses = [
        put(_make_klass(rng, c, c, n)) for n, c in (("order", old()), ("subscription", old()))
    ]
    companies = []
    for _ in range(max(3, int(15 * scale))):
        c = old(1, 300)
        companies.append(put(_make_company(rng, c, later(c))))

    # Customers: a fifth exist before the window so early conversations always have one.
    n_customers = max(10, int(days * 36 * scale))
    cust_created = sorted(
        old(1, 400) if i < n_customers // 5 else _ts(rng, start, now) for i in range(n_customers)
    )
    customers = []
    for c in cust_created:
        cu = put(_make_customer(rng, c, later(c)))
        if rng.random() < 0.3:
            cu["attributes"]["tags"] = sorted(rng.sample(tag_ids[:-1], rng.randint(1, 3)))
        if rng.random() < 0.3:
            cu["relationships"]["company"] = _rel("company", rng.choice(companies)["id"])
        customers.append(cu)
    cust_ms = cust_created

    for cu in customers:
        if rng.random() < 0.3:
            c = iso_to_ms(cu["attributes"]["createdAt"]) or start
            for _ in range(rng.randint(1, 2)):
                kl = rng.choice(klasses)
                t = _ts(rng, max(c, start), now)
                put(_make_kobject(rng, t, later(t), cu["id"], kl["id"]))

    # Conversations with their messages, notes and CSAT.
    brand_ids = sorted(recs["brand"])
    children: dict[str, dict[str, list[str]]] = {"message": {}, "note": {}}
    per_day = 60 * scale
    convs: list[dict[str, Any]] = []
    for day in range(days):
        day_lo = start + day * DAY_MS
        n = max(0, round(per_day * rng.uniform(0.7, 1.3)))
        for _ in range(n):
            created = _ts(rng, day_lo, min(day_lo + DAY_MS - 1, now))
            k = bisect_right(cust_ms, created)
            customer = customers[rng.randrange(max(k, 1))]
            convs.append(
                _gen_conversation(
                    rng,
                    created,
                    now,
                    customer,
                    brand_ids,
                    live_agents,
                    team_ids,
                    tag_ids,
                    forms,
                    recs,
                    children,
                )
            )

    # A CRM integration syncs customers in batches every few days: small exact ties.
    sync = start + DAY_MS + rng.randint(0, DAY_MS)
    while sync < now:
        sync -= sync % MINUTE_MS
        eligible = [
            cu for cu in customers if (iso_to_ms(cu["attributes"]["updatedAt"]) or 0) < sync
        ]
        for cu in rng.sample(eligible, min(len(eligible), rng.randint(5, 25))):
            ca = cu["attributes"]
            ca["updatedAt"] = ca["modifiedAt"] = ms_to_iso(sync)
            ca["rev"] += 1
        sync += rng.randint(2, 4) * DAY_MS + rng.randint(0, DAY_MS)

    # Customer rollups (counts, latest activity).
    for conv in convs:
        cid = conv["relationships"]["customer"]["data"]["id"]
        counts = recs["customer"][cid]["attributes"]["conversationCounts"]
        counts["all"] += 1
        counts[conv["attributes"]["status"]] += 1

    # A few soft deletes across types, at a moment after their last update.
    soft_deletes = (("conversation", 0.01), ("customer", 0.01), ("message", 0.005), ("note", 0.02))
    for type_, frac in soft_deletes:
        items = sorted(recs[type_])
        for id_ in rng.sample(items, max(1, int(len(items) * frac))) if items else []:
            a = recs[type_][id_]["attributes"]
            t = _ts(rng, iso_to_ms(a["updatedAt"]) or start, now)
            a["deleted"] = True
            a["updatedAt"] = ms_to_iso(t)
            if "modifiedAt" in a:
                a["modifiedAt"] = a["updatedAt"]
            if "deletedAt" in a:
                a["deletedAt"] = a["updatedAt"]

    # Bulk update: >= 300 conversations get one identical updatedAt (a macro / bulk tag run).
    bulk_at: str | None = None
    if convs:
        by_updated = sorted(
            (iso_to_ms(c["attributes"]["updatedAt"]) or 0, c["id"])
            for c in convs
            if not c["attributes"]["deleted"]
        )
        size = min(BULK_TIE_SIZE, len(by_updated))
        if size:
            floor_ms = start + (2 * span) // 3
            t_bulk = max(floor_ms, by_updated[size - 1][0] + HOUR_MS)
            t_bulk = min(t_bulk, now - MINUTE_MS)
            t_bulk -= t_bulk % 1000
            t_bulk += 123  # ms precision matters: a ">" cursor at this instant loses records
            candidates = [i for u, i in by_updated if u < t_bulk]
            chosen = candidates if len(candidates) <= size else rng.sample(candidates, size)
            bulk_tag = tag_ids[0]
            bulk_at = ms_to_iso(t_bulk)
            for id_ in chosen:
                a = recs["conversation"][id_]["attributes"]
                a["updatedAt"] = a["modifiedAt"] = bulk_at
                a["rev"] += 1
                if bulk_tag not in a["tags"]:
                    a["tags"] = [*a["tags"], bulk_tag]

    # Custom attributes last, because the late attribute depends on the final updatedAt.
    mid = start + span // 2
    for conv in convs:
        a = conv["attributes"]
        late = (iso_to_ms(a["updatedAt"]) or 0) >= mid
        a["custom"] = _custom(rng, "conversation", iso_to_ms(a["createdAt"]) or start, late)

    metadata = {obj: _metadata_resource(obj, start - 400 * DAY_MS) for obj in METADATA_RESOURCES}
    ds = Dataset(
        seed=seed,
        days=days,
        start=datetime.fromtimestamp(start / 1000, UTC),
        now=now_dt,
        records=recs,
        metadata=metadata,
        current_user_id=machine["id"],
        children=children,
        bulk_updated_at=bulk_at,
    )
    ds._mut_rng = Random(seed * 1_000_003 + 17)
    return ds
