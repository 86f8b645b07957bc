"""One generated conversation with its history: messages alternating sides with realistic gaps
(bursts share a millisecond), notes, status and lifecycle, CSAT offered or answered, and a late
touch for some; it also moves its customer's `updatedAt`.
"""

from __future__ import annotations

from random import Random
from typing import Any

from .conversation_records import _make_message, _make_note, _make_response
from .jsonapi import _oid, _rel, _resource
from .timestamps import DAY_MS, HOUR_MS, MINUTE_MS, iso_to_ms, ms_to_iso
from .values import _ts
from .vocabulary import CHANNEL_WEIGHTS, CHANNELS


def _gen_conversation(
    rng: Random,
    created: int,
    now: int,
    customer: dict[str, Any],
    brand_ids: list[str],
    agents: list[str],
    team_ids: list[str],
    tag_ids: list[str],
    forms: list[dict[str, Any]],
    recs: dict[str, dict[str, dict[str, Any]]],
    children: dict[str, dict[str, list[str]]],
) -> dict[str, Any]:
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    customer_id = customer["id"]
    agent = rng.choice(agents)
    team = rng.choice(team_ids)
    outbound = rng.random() < 0.08
    conv_id = _oid(rng, created)

    # Messages: alternate customer/agent with gaps of minutes to hours; ties are common.
    n_msgs = rng.choices(range(1, 10), (6, 10, 14, 16, 16, 13, 10, 8, 7))[0]
    t = created
    msg_ids: list[str] = []
    first_in: int | None = None
    first_out: int | None = None
    last_t = created
    out_count = 0
    preview = ""
    direction = "out" if outbound else "in"
    for i in range(n_msgs):
        if i:
            previous = direction
            direction = "out" if direction == "in" else "in"
            if rng.random() < 0.2:
                direction = "in"
            # Bursts from one side can share a millisecond; an agent reply takes a while.
            gap = 0 if direction == previous and rng.random() < 0.5 else MINUTE_MS
            t = min(now, t + gap + rng.choice((0, rng.randint(0, 6 * HOUR_MS))))
            if rng.random() < 0.5:
                t -= t % MINUTE_MS
                t = max(t, last_t)
        m = _make_message(rng, conv_id, customer_id, agent, t, direction, channel)
        ma = m["attributes"]
        if rng.random() < 0.1:  # read receipts etc. arrive later
            ma["updatedAt"] = ma["modifiedAt"] = ms_to_iso(_ts(rng, t, min(now, t + 3 * DAY_MS)))
        recs["message"][m["id"]] = m
        msg_ids.append(m["id"])
        if direction == "in" and first_in is None:
            first_in = t
        if direction == "out":
            out_count += 1
            if first_out is None and first_in is not None:
                first_out = t
        last_t = max(last_t, t)
        preview = ma["preview"]
    children["message"][conv_id] = msg_ids

    # Notes.
    note_ids: list[str] = []
    for _ in range(rng.choices((0, 1, 2), (50, 35, 15))[0]):
        nt = _ts(rng, created, max(created, last_t))
        note = _make_note(rng, conv_id, customer_id, agent, nt)
        if rng.random() < 0.1:
            na = note["attributes"]
            na["updatedAt"] = na["modifiedAt"] = ms_to_iso(_ts(rng, nt, min(now, nt + 2 * DAY_MS)))
        recs["note"][note["id"]] = note
        note_ids.append(note["id"])
    children["note"][conv_id] = note_ids

    # Status and lifecycle.
    age = now - last_t
    if age > 2 * DAY_MS:
        status = "done" if rng.random() < 0.93 else rng.choice(("open", "snoozed"))
    else:
        status = rng.choices(("open", "snoozed", "done"), (4, 1, 5))[0]
    updated = last_t
    first_done = last_done = None
    reopen = 0
    done_at: int | None = None
    if status == "done":
        done_at = _ts(rng, last_t, min(now, last_t + 4 * HOUR_MS))
        updated = done_at
        reopen = rng.choices((0, 1, 2), (85, 12, 3))[0]
        first_done = {
            "createdAt": ms_to_iso(done_at),
            "time": done_at - created,
            "businessTime": int((done_at - created) * 0.6),
            "assignedUsers": [agent],
            "assignedTeams": [team],
            "createdBy": agent,
        }
        last_done = dict(first_done)
    first_response = None
    if first_in is not None and first_out is not None:
        first_response = {
            "createdAt": ms_to_iso(first_out),
            "time": first_out - first_in,
            "businessTime": int((first_out - first_in) * 0.7),
            "assignedUsers": [agent],
            "assignedTeams": [team],
            "sentBy": agent,
        }

    # CSAT: a third of closed conversations are rated, a sixth offered but unanswered.
    satisfaction = 0
    sat_level: dict[str, Any] | None = None
    if done_at is not None:
        r = rng.random()
        form = rng.choice(forms)
        if r < 0.5:
            sent = min(now, done_at + rng.randint(1, 60) * MINUTE_MS)
            sat_level = {
                "formResponse": None,
                "form": form["id"],
                "score": None,
                "rating": None,
                "status": "offered",
                "channel": channel,
                "sentByTeams": [team],
                "createdAt": ms_to_iso(sent),
                "updatedAt": ms_to_iso(sent),
            }
            updated = max(updated, sent)
            if r < 0.33:
                answered = _ts(rng, sent, min(now, sent + 2 * DAY_MS))
                resp = _make_response(rng, answered, conv_id, customer_id, form["id"], agent, team)
                recs["satisfaction_response"][resp["id"]] = resp
                ra = resp["attributes"]
                satisfaction = ra["rating"]
                sat_level.update(
                    formResponse=resp["id"],
                    score=ra["score"],
                    rating=ra["rating"],
                    status="rated",
                    updatedAt=ms_to_iso(answered),
                )
                updated = max(updated, answered)

    # Some conversations are touched again days later (tagging, merges, re-opens).
    if rng.random() < 0.15:
        updated = _ts(rng, updated, min(now, updated + rng.randint(1, 10) * DAY_MS))
    updated = min(updated, now)

    tags = sorted(rng.sample(tag_ids[:-1], rng.choices((0, 1, 2, 3), (30, 40, 20, 10))[0]))
    attrs: dict[str, Any] = {
        "name": preview[:60] if not outbound else "Proactive outreach",
        "channels": [channel],
        "status": status,
        "priority": rng.randint(1, 5),
        "direction": "out" if outbound else "in",
        "preview": preview,
        "messageCount": n_msgs,
        "noteCount": len(note_ids),
        "outboundMessageCount": out_count,
        "satisfaction": satisfaction,
        "satisfactionLevel": sat_level,
        "tags": tags,
        "suggestedTags": [],
        "assignedUsers": [agent],
        "assignedTeams": [team],
        "queue": None,
        "firstResponse": first_response,
        "firstDone": first_done,
        "lastDone": last_done,
        "lastMessageAt": ms_to_iso(last_t),
        "reopenCount": reopen,
        "snooze": None,
        "ended": status == "done",
        "endedAt": ms_to_iso(done_at) if done_at is not None else None,
        "endedReason": "done" if status == "done" else None,
        "externalId": f"zd-{rng.randint(100000, 999999)}" if rng.random() < 0.2 else None,
        "deleted": False,
        "createdAt": ms_to_iso(created),
        "updatedAt": ms_to_iso(updated),
        "modifiedAt": ms_to_iso(updated),
        "rev": 1 + n_msgs + len(note_ids),
        "custom": {},
    }
    res = _resource(
        "conversation",
        conv_id,
        attrs,
        {
            "customer": _rel("customer", customer_id),
            "brand": _rel("brand", rng.choice(brand_ids)),
            "createdBy": _rel("user", agent if outbound else None),
            "modifiedBy": _rel("user", agent),
            "messages": {"links": {"self": f"/v1/conversations/{conv_id}/messages"}},
        },
    )
    recs["conversation"][conv_id] = res
    # The customer's record moves with their conversations.
    ca = customer["attributes"]
    if (iso_to_ms(ca["updatedAt"]) or 0) < created:
        ca["updatedAt"] = ca["modifiedAt"] = ca["lastActivityAt"] = ms_to_iso(created)
    return res
