"""Record factories for the org around the conversations: users, teams, tags, brands, CSAT
forms, klasses and their kobjects, companies and customers.
"""

from __future__ import annotations

from random import Random
from typing import Any

from .jsonapi import _oid, _rel, _resource, _times
from .timestamps import ms_to_iso
from .values import _custom
from .vocabulary import FIRST_NAMES, LAST_NAMES, LOCALES, TIME_ZONES


def _make_user(rng: Random, created: int, updated: int, user_type: str) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    name = f"{first} {last}" if user_type == "user" else "Data Export (API)"
    id_ = _oid(rng, created)
    return _resource(
        "user",
        id_,
        {
            "name": name,
            "displayName": first if user_type == "user" else name,
            "email": f"agent.{id_[-6:]}@support.example.com",
            "userType": user_type,
            "roleGroups": [f"{rng.getrandbits(96):024x}"],
            "deletedAt": None,
            **_times(created, updated),
        },
    )


def _make_team(rng: Random, created: int, updated: int, members: list[str]) -> dict[str, Any]:
    name = rng.choice(("Tier 1", "Tier 2", "Billing", "Returns", "Équipe FR", "VIP Care"))
    return _resource(
        "team",
        _oid(rng, created),
        {
            "name": name,
            "displayName": name,
            "icon": rng.choice(("star", "user", "inbox")),
            "members": members,
            "deleted": False,
            **_times(created, updated),
        },
    )


def _make_tag(rng: Random, created: int, updated: int, name: str) -> dict[str, Any]:
    return _resource(
        "tag",
        _oid(rng, created),
        {
            "name": name,
            "color": f"#{rng.getrandbits(24):06x}",
            "deleted": False,
            **_times(created, updated),
        },
    )


def _make_brand(rng: Random, created: int, updated: int, name: str) -> dict[str, Any]:
    return _resource("brand", _oid(rng, created), {"name": name, **_times(created, updated)})


def _make_form(rng: Random, created: int, updated: int, name: str) -> dict[str, Any]:
    return _resource(
        "satisfaction",
        _oid(rng, created),
        {
            "name": name,
            "type": "csat",
            "scale": {"min": 1, "max": 5},
            "questions": [
                {"id": "q1", "type": "rating", "text": "How did we do?"},
                {"id": "q2", "type": "text", "text": "Anything else you'd like to share?"},
            ],
            "enabled": True,
            **_times(created, updated),
        },
    )


def _make_klass(rng: Random, created: int, updated: int, name: str) -> dict[str, Any]:
    return _resource(
        "klass",
        _oid(rng, created),
        {
            "name": name,
            "displayName": name.capitalize(),
            "icon": "box",
            "color": f"#{rng.getrandbits(24):06x}",
            "metadata": {
                "properties": {
                    "skuStr": {"displayName": "SKU", "type": "string"},
                    "amountNum": {"displayName": "Amount", "type": "number"},
                }
            },
            **_times(created, updated),
        },
    )


def _make_company(rng: Random, created: int, updated: int) -> dict[str, Any]:
    name = rng.choice(("Acme", "Globex", "Initech", "Umbrella", "Stark", "Żabka", "Nordwind"))
    return _resource(
        "company",
        _oid(rng, created),
        {
            "name": f"{name} {rng.randint(1, 99)}",
            "domains": [f"{name.lower()}.example.com"],
            "deleted": False,
            "custom": _custom(rng, "company", created),
            **_times(created, updated),
        },
    )


def _make_customer(rng: Random, created: int, updated: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    id_ = _oid(rng, created)
    emails = [{"type": "home", "email": f"{id_[-8:]}@mail.example.com"}]
    if rng.random() < 0.2:
        emails.append({"type": "work", "email": f"{id_[-5:]}@work.example.org"})
    phones = (
        [{"type": "mobile", "phone": f"+1555{rng.randint(1000000, 9999999)}"}]
        if rng.random() < 0.4
        else []
    )
    name = f"{first} {last}"
    return _resource(
        "customer",
        id_,
        {
            "name": name,
            "displayName": name,
            "firstName": first,
            "lastName": last,
            "emails": emails,
            "phones": phones,
            "socials": [],
            "locale": rng.choice(LOCALES),
            "gender": None,
            "verified": rng.random() < 0.5,
            "timeZone": rng.choice(TIME_ZONES),
            "externalId": f"shop-{rng.randint(100000, 999999)}" if rng.random() < 0.7 else None,
            "signedUpAt": ms_to_iso(created),
            "lastActivityAt": ms_to_iso(updated),
            "conversationCounts": {"all": 0, "open": 0, "done": 0, "snoozed": 0},
            "sentiment": {"polarity": rng.choice((-1, 0, 1)), "confidence": 0.5},
            "tags": [],
            "deleted": False,
            **_times(created, updated),
            "modifiedAt": ms_to_iso(updated),
            "rev": 1,
            "custom": _custom(rng, "customer", created),
        },
    )


def _make_kobject(
    rng: Random, created: int, updated: int, customer_id: str | None, klass_id: str
) -> dict[str, Any]:
    id_ = _oid(rng, created)
    res = _resource(
        "kobject",
        id_,
        {
            "klass": klass_id,
            "title": f"Order {rng.randint(10000, 99999)}",
            "description": rng.choice(("2× Tee", "Abonnement", "Gift card €25", None)),  # noqa: RUF001
            "externalId": f"ext-{rng.getrandbits(32):08x}",
            "custom": {"skuStr": f"SKU-{rng.randint(100, 999)}", "amountNum": rng.randint(5, 300)},
            **_times(created, updated),
        },
        {"customer": _rel("customer", customer_id)},
    )
    # Quirk seen in the wild: the klass relationship uses `link`, not `links`.
    res["relationships"]["klass"] = {
        "data": {"type": "klass", "id": klass_id},
        "link": {"self": f"/v1/klasses/{klass_id}"},
    }
    return res
