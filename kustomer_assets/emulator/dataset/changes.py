"""What a mutation writes: the attributes a `change` moves per type, and the records `create`
makes (a new message or note also touches its conversation).
"""

from __future__ import annotations

from random import Random
from typing import TYPE_CHECKING, Any

from .conversation_records import (
    _comment_answer,
    _make_conversation_shell,
    _make_message,
    _make_note,
    _make_response,
)
from .jsonapi import is_deleted
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
from .timestamps import iso_to_ms
from .values import _custom, _custom_value
from .vocabulary import LATE_CUSTOM_ATTRIBUTE

if TYPE_CHECKING:
    from .state import Dataset


def _apply_change(rng: Random, type_: str, res: dict[str, Any], ds: Dataset) -> None:
    attrs = res["attributes"]
    t_ms = iso_to_ms(attrs["updatedAt"]) or ds.clock_ms()
    if type_ == "conversation":
        attrs["status"] = rng.choice(("open", "snoozed", "done"))
        attrs["priority"] = rng.randint(1, 5)
        tags = list(ds.records.get("tag", {}))
        if tags:
            attrs["tags"] = sorted(set(attrs.get("tags", [])) | {rng.choice(tags)})
        custom = attrs.setdefault("custom", {})
        custom[LATE_CUSTOM_ATTRIBUTE] = _custom_value(rng, LATE_CUSTOM_ATTRIBUTE, t_ms)
        custom["refundAmountNum"] = _custom_value(rng, "refundAmountNum", t_ms)
    elif type_ in ("customer", "company", "kobject"):
        obj = "company" if type_ == "company" else "customer"
        if type_ == "kobject":
            attrs["title"] = f"{attrs.get('title', '')} (updated)"
        else:
            attrs.setdefault("custom", {}).update(_custom(rng, obj, t_ms))
    elif type_ == "message":
        attrs["status"] = rng.choice(("read", "received", "sent"))
    elif type_ == "note":
        attrs["body"] = f"{attrs.get('body', '')} (edited ✏️)"
    elif type_ == "user":
        attrs["displayName"] = f"{attrs.get('displayName', '')} ★"
    elif type_ == "team":
        users = [u for u in ds.records.get("user", {}) if u != ds.current_user_id]
        attrs["members"] = sorted(rng.sample(users, min(len(users), rng.randint(1, 6))))
    elif type_ == "tag":
        attrs["color"] = f"#{rng.getrandbits(24):06x}"
    elif type_ == "satisfaction_response":
        attrs["answers"] = [*attrs.get("answers", [])[:1], _comment_answer(rng)]
    elif "name" in attrs:
        attrs["name"] = f"{attrs['name']} (renamed)"


def _random_live(ds: Dataset, type_: str, rng: Random) -> str | None:
    ids = sorted(i for i, r in ds.records.get(type_, {}).items() if not is_deleted(r))
    return rng.choice(ids) if ids else None


def _make_new(rng: Random, type_: str, t: int, ds: Dataset) -> dict[str, Any]:
    if type_ == "customer":
        return _make_customer(rng, t, t)
    if type_ == "conversation":
        cust = _random_live(ds, "customer", rng)
        res = _make_conversation_shell(rng, t, cust, ds)
        res["attributes"]["custom"] = _custom(rng, "conversation", t, late=True)
        ds.children.setdefault("message", {})[res["id"]] = []
        ds.children.setdefault("note", {})[res["id"]] = []
        return res
    if type_ in ("message", "note"):
        conv_id = _random_live(ds, "conversation", rng)
        conv = ds.records["conversation"].get(conv_id) if conv_id else None
        cust = conv["relationships"]["customer"]["data"]["id"] if conv else None
        agent = _random_live(ds, "user", rng)
        if type_ == "message":
            res = _make_message(rng, conv_id, cust, agent, t, rng.choice(("in", "out")), "email")
        else:
            res = _make_note(rng, conv_id, cust, agent, t)
        if conv is not None:
            new_conv = ds._touch(conv)
            a = new_conv["attributes"]
            if type_ == "message":
                a["messageCount"] = int(a.get("messageCount") or 0) + 1
                a["lastMessageAt"] = res["attributes"]["createdAt"]
            else:
                a["noteCount"] = int(a.get("noteCount") or 0) + 1
            ds.records["conversation"][conv_id] = new_conv  # type: ignore[index]
            ds._emit("update", "conversation", new_conv, conv)
            ds.children.setdefault(type_, {}).setdefault(conv_id, []).append(res["id"])  # type: ignore[arg-type]
        return res
    if type_ == "user":
        return _make_user(rng, t, t, "user")
    if type_ == "team":
        return _make_team(rng, t, t, sorted(ds.records.get("user", {}))[:3])
    if type_ == "tag":
        return _make_tag(rng, t, t, f"new-tag-{rng.getrandbits(16):04x}")
    if type_ == "brand":
        return _make_brand(rng, t, t, f"Brand {rng.getrandbits(16):04x}")
    if type_ == "company":
        return _make_company(rng, t, t)
    if type_ == "kobject":
        klass = sorted(ds.records.get("klass", {}))
        return _make_kobject(
            rng, t, t, _random_live(ds, "customer", rng), klass[0] if klass else ""
        )
    if type_ == "klass":
        return _make_klass(rng, t, t, f"klass{rng.getrandbits(16):04x}")
    if type_ == "satisfaction":
        return _make_form(rng, t, t, "New survey")
    if type_ == "satisfaction_response":
        conv_id = _random_live(ds, "conversation", rng)
        forms = sorted(ds.records.get("satisfaction", {}))
        return _make_response(rng, t, conv_id, None, forms[0] if forms else None, None, None)
    raise ValueError(f"cannot create records of type {type_!r}")
