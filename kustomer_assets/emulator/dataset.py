"""Deterministic synthetic Kustomer org for the emulator.

The data is shaped to break naive connectors the way a real org does: many records share one
``updatedAt`` (a bulk update ties >= 300 conversations to the same millisecond, and many other
timestamps are rounded to the minute), some records change days after creation, a few are
soft-deleted, custom attributes come in every suffix type with unicode, nulls and missing keys,
and one custom attribute only appears in the later half of the history.

Everything derives from ``random.Random(seed)`` so two datasets built from the same config are
byte-identical; mutations use their own seeded RNG so a test replaying the same mutations gets
the same ids.
"""

from __future__ import annotations

import copy
import gc
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from random import Random
from typing import Any

ENTITY_TYPES: tuple[str, ...] = (
    "conversation",
    "message",
    "customer",
    "user",
    "team",
    "note",
    "tag",
    "brand",
    "satisfaction",
    "satisfaction_response",
    "kobject",
    "klass",
    "company",
)
METADATA_RESOURCES: tuple[str, ...] = ("conversation", "customer", "message", "company")
# Types whose `customer` relationship a customer merge re-points.
CUSTOMER_LINKED_TYPES: tuple[str, ...] = (
    "conversation",
    "message",
    "note",
    "kobject",
    "satisfaction_response",
)

# Where each type's record lives; used for `links.self` and relationship links.
SELF_PATHS: dict[str, str] = {
    "conversation": "/v1/conversations/{id}",
    "message": "/v1/messages/{id}",
    "customer": "/v1/customers/{id}",
    "user": "/v1/users/{id}",
    "team": "/v1/teams/{id}",
    "note": "/v1/notes/{id}",
    "tag": "/v1/tags/{id}",
    "brand": "/v1/brands/{id}",
    "satisfaction": "/v1/satisfaction/{id}",
    "satisfaction_response": "/v1/satisfaction-responses/{id}",
    "kobject": "/v1/kobjects/{id}",
    "klass": "/v1/klasses/{id}",
    "company": "/v1/companies/{id}",
}

CUSTOM_SUFFIXES: tuple[str, ...] = ("Str", "Num", "Bool", "At", "Tree", "Txt", "Url", "Id")
LATE_CUSTOM_ATTRIBUTE = "refundReasonStr"  # conversation custom attr only on later-half updates
BULK_TIE_SIZE = 320

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
SEARCHABLE_MS = 730 * DAY_MS  # search only covers updatedAt within the past 2 years


# ----------------------------------------------------------------------------- time helpers


@lru_cache(maxsize=100_000)
def _hour_prefix(hour: int) -> str:
    t = time.gmtime(hour * 3600)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:"


def ms_to_iso(ms: int) -> str:
    """Kustomer's timestamp format: UTC, millisecond precision, trailing Z."""
    hour, rest = divmod(ms, HOUR_MS)
    minute, rest = divmod(rest, MINUTE_MS)
    sec, milli = divmod(rest, 1000)
    return f"{_hour_prefix(hour)}{minute:02d}:{sec:02d}.{milli:03d}Z"


@lru_cache(maxsize=200_000)
def iso_to_ms(value: str) -> int | None:
    """Parse any ISO-8601 instant to epoch ms (naive = UTC); None when it is not a timestamp.

    Cached because search compares the same few thousand strings on every page request.
    """
    if len(value) < 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt_to_ms(dt)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def dt_to_ms(dt: datetime) -> int:
    """Exact integer epoch ms (naive = UTC); no float rounding surprises at ms boundaries."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def utcnow_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


# ----------------------------------------------------------------------------- vocabulary

FIRST_NAMES = (
    "Zoë", "José", "Łukasz", "Aiko", "Søren", "Mía", "Björn", "Chloé", "Ngozi", "Fatima",
    "Олег", "Priya", "Liam", "Noah", "Emma", "Ava", "Mateo", "Yuki", "Chidi", "Ingrid",
    "Renée", "Dmitri", "Sofía", "Hannah", "Kwame", "Ana", "Thomas", "Mei", "Omar", "Elif",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "García", "O'Brien", "Nakamura", "Østergaard", "Kowalski", "Núñez", "Smith",
    "Dubois", "Ivanova", "Wang", "Okafor", "Johansson", "Rossi", "Yılmaz", "Kim", "Silva",  # noqa: RUF001
    "Patel", "Cohen", "Novák", "Schmidt", "Lefèvre", "Tanaka", "Brown", "Ahmed",
)  # fmt: skip
SENTENCES = (
    "Hi, I ordered a pair of shoes last week and they still haven't arrived.",
    "Hola, ¿dónde está mi pedido? Lo necesito antes del viernes.",
    "Merci beaucoup pour votre aide rapide 🙏",
    "注文番号を確認してください。",
    "Ich möchte mein Abo kündigen, bitte bestätigen Sie das.",
    "The tracking link says \"delivered\" but nothing is at my door.",
    "Can you refund the second charge? I was billed twice 💳💳",
    "Thanks for reaching out! I've looked into your order and issued a replacement.",
    "I'm sorry for the trouble — a refund of €42.50 is on its way.",
    "Could you send me a photo of the damaged item?",
    "Your return label is attached. Drop it at any post office within 14 days.",
    "Привет! Не могу войти в аккаунт после сброса пароля.",  # noqa: RUF001
    "¡Excelente servicio, gracias!",
    "Order #A-10293 arrived broken; the glass was shattered.",
    "Please update my shipping address to 221B Baker Street, London NW1 6XE.",
    "We've escalated this to our logistics team and will update you within 24h.",
    "Is there a discount for annual plans? 🤔",
    "Line one\nLine two after a newline, with a tab\there.",
    "Emoji test: 😀🚀🔥 and a flag 🇯🇵.",
    "I never received the confirmation e-mail; spam folder is empty too.",
)  # fmt: skip
NOTE_BODIES = (
    "Customer is VIP, handle with care.",
    "Escalated to tier 2 — see Jira SUP-4411.",
    "Refund approved by @lead, processed in Stripe.",
    "Called the customer; no answer. Left voicemail.",
    "Duplicate of a previous conversation; merged notes here.",
    "Kunde spricht Deutsch, bitte auf Deutsch antworten.",
    "Address verified ✅",
)  # fmt: skip
TAG_NAMES = (
    "billing", "refund", "shipping", "damaged", "returns", "account", "login", "vip",
    "feedback", "bug", "feature-request", "cancellation", "discount", "warranty", "exchange",
    "urgent", "spam", "duplicate", "escalated", "social", "chargeback", "subscription",
    "größe", "commande", "promo", "b2b", "wholesale", "press", "legal", "other",
)  # fmt: skip
CHANNELS = ("email", "chat", "sms", "voice", "facebook", "instagram")
CHANNEL_WEIGHTS = (50, 25, 8, 7, 5, 5)
CONTACT_REASONS = (
    "billing.refund.partial", "billing.refund.full", "billing.invoice", "shipping.delay",
    "shipping.lost", "product.damaged", "product.question", "account.login", "account.close",
)  # fmt: skip
REFUND_REASONS = ("damaged", "late delivery", "wrong size", "changed mind", "défectueux", "その他")
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "ja_JP", "ru_RU", None)
TIME_ZONES = ("America/New_York", "Europe/Berlin", "Europe/Paris", "Asia/Tokyo", "UTC", None)
TIERS = ("bronze", "silver", "gold", "platinum", "🌟 legend")

CUSTOM_DEFS: dict[str, tuple[tuple[str, str], ...]] = {
    # name -> display name; the suffix carries the type.
    "conversation": (
        ("orderIdStr", "Order ID"),
        ("refundAmountNum", "Refund amount"),
        ("vipBool", "VIP"),
        ("purchasedAt", "Purchased at"),
        ("contactReasonTree", "Contact reason"),
        ("agentSummaryTxt", "Agent summary"),
        ("trackingUrl", "Tracking link"),
        ("ticketId", "External ticket"),
        (LATE_CUSTOM_ATTRIBUTE, "Refund reason"),
    ),
    "customer": (
        ("loyaltyTierStr", "Loyalty tier"),
        ("lifetimeValueNum", "Lifetime value"),
        ("newsletterBool", "Newsletter"),
        ("lastOrderAt", "Last order"),
        ("segmentTree", "Segment"),
        ("bioTxt", "Bio"),
        ("profileUrl", "Profile"),
        ("crmId", "CRM id"),
    ),
    "message": (("sentimentStr", "Sentiment"), ("sentimentScoreNum", "Sentiment score")),
    "company": (
        ("industryStr", "Industry"),
        ("employeesNum", "Employees"),
        ("partnerBool", "Partner"),
    ),
}
SUFFIX_TYPES = {
    "Str": "string",
    "Num": "number",
    "Bool": "boolean",
    "At": "date",
    "Tree": "tree",
    "Txt": "text",
    "Url": "url",
    "Id": "id",
}


def custom_suffix(name: str) -> str | None:
    for suffix in ("Bool", "Tree", "Str", "Num", "Txt", "Url", "At", "Id"):
        if name.endswith(suffix):
            return suffix
    return None


# ----------------------------------------------------------------------------- config-free helpers


def _oid(rng: Random, at_ms: int) -> str:
    """Mongo-style 24-hex id: 8 hex of creation seconds + 16 random hex (so ids sort by age)."""
    return f"{max(at_ms // 1000, 0) & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"


def _rel(type_: str, id_: str | None) -> dict[str, Any]:
    if id_ is None:
        return {"data": None}
    return {"data": {"type": type_, "id": id_}, "links": {"self": SELF_PATHS[type_].format(id=id_)}}


def _resource(
    type_: str, id_: str, attributes: dict[str, Any], relationships: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": type_,
        "id": id_,
        "attributes": attributes,
        "relationships": relationships or {},
        "links": {"self": SELF_PATHS[type_].format(id=id_)},
    }


def _ts(rng: Random, lo: int, hi: int, round_p: float = 0.35) -> int:
    """A random instant in [lo, hi]; often rounded to the minute so ties are common."""
    if hi <= lo:
        return lo
    t = rng.randint(lo, hi)
    if rng.random() < round_p:
        r = t - t % MINUTE_MS
        t = r if r >= lo else t
    return t


def _text(rng: Random, min_sentences: int = 1, max_sentences: int = 8) -> str:
    n = rng.randint(min_sentences, max_sentences)
    text = " ".join(rng.choices(SENTENCES, k=n))
    if rng.random() < 0.05:  # a few previews hit the ~1,000 character cap
        while len(text) < 1100:
            text += " " + rng.choice(SENTENCES)
    return text[:1000]


def _custom_value(rng: Random, name: str, at_ms: int) -> Any:
    suffix = custom_suffix(name)
    if suffix == "Str":
        if name == LATE_CUSTOM_ATTRIBUTE:
            return rng.choice(REFUND_REASONS)
        if name == "loyaltyTierStr":
            return rng.choice(TIERS)
        return rng.choice(("A-", "B-", "Ω-", "Ä-")) + str(rng.randint(10000, 99999))
    if suffix == "Num":
        return rng.choice((rng.randint(0, 500), round(rng.uniform(0, 2000), 2), 0))
    if suffix == "Bool":
        return rng.random() < 0.3
    if suffix == "At":
        return ms_to_iso(at_ms - rng.randint(0, 90) * DAY_MS - rng.randint(0, DAY_MS))
    if suffix == "Tree":
        return rng.choice(CONTACT_REASONS)
    if suffix == "Txt":
        return _text(rng, 2, 5)
    if suffix == "Url":
        return f"https://track.example.com/{rng.getrandbits(40):010x}?lang=ü"
    if suffix == "Id":
        return f"{rng.getrandbits(48):012x}"
    return None


def _custom(rng: Random, obj: str, at_ms: int, late: bool = False) -> dict[str, Any]:
    """Custom attributes: each key present ~75% of the time, and null ~10% when present."""
    out: dict[str, Any] = {}
    for name, _ in CUSTOM_DEFS[obj]:
        if name == LATE_CUSTOM_ATTRIBUTE:
            if late and rng.random() < 0.6:
                out[name] = _custom_value(rng, name, at_ms)
            continue
        r = rng.random()
        if r < 0.25:
            continue
        out[name] = None if r < 0.35 else _custom_value(rng, name, at_ms)
    return out


# ----------------------------------------------------------------------------- Dataset


@dataclass
class Dataset:
    """The emulator's current state: every record of every type, plus custom-attribute metadata.

    Records are replaced, never edited in place, by mutations (copy-on-write), so a handler that
    took a list of resources under `lock` can serialise them after releasing it.
    """

    seed: int
    days: int
    start: datetime
    now: datetime
    records: dict[str, dict[str, dict[str, Any]]]
    metadata: dict[str, dict[str, Any]]
    current_user_id: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    version: int = 0
    children: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)
    bulk_updated_at: str | None = None
    _mono0: float = field(default_factory=time.monotonic, repr=False)
    _offset_ms: int = 0
    _mut_rng: Random = field(default_factory=Random, repr=False)
    _last_stamp: int = 0
    # Hard-deleted ids per type, and merged customers (loser -> survivor): a reconciliation by
    # ids is the only way a client can notice either, so tests need the ground truth.
    hard_deleted: dict[str, list[str]] = field(default_factory=dict, repr=False)
    merged: dict[str, str] = field(default_factory=dict, repr=False)
    # Called as listener(action, type, new record, previous record or None) each time a
    # mutation stores a record ("create" / "update"); the emulator's outbound webhooks. They
    # run under `lock`, so they must only hand the records on (records are copy-on-write).
    listeners: list[Callable[[str, str, dict[str, Any], dict[str, Any] | None], None]] = field(
        default_factory=list, repr=False
    )

    # -- clock -----------------------------------------------------------------------------

    def clock_ms(self) -> int:
        """Emulated wall clock: `now` plus real time elapsed since generation (plus `advance`)."""
        elapsed = int((time.monotonic() - self._mono0) * 1000)
        return dt_to_ms(self.now) + elapsed + self._offset_ms

    def clock(self) -> datetime:
        return datetime.fromtimestamp(self.clock_ms() / 1000, UTC)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward (tests use it instead of sleeping)."""
        with self.lock:
            self._offset_ms += int(seconds * 1000)

    def searchable_since_ms(self) -> int:
        return self.clock_ms() - SEARCHABLE_MS

    # -- reads -----------------------------------------------------------------------------

    def get(self, type_: str, id_: str) -> dict[str, Any] | None:
        return self.records.get(type_, {}).get(id_)

    def all(self, type_: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            items = list(self.records.get(type_, {}).values())
        if include_deleted:
            return items
        return [r for r in items if not is_deleted(r)]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {t: len(v) for t, v in self.records.items()}

    def children_of(self, type_: str, conversation_id: str) -> list[dict[str, Any]]:
        with self.lock:
            ids = list(self.children.get(type_, {}).get(conversation_id, ()))
            recs = self.records.get(type_, {})
            return [recs[i] for i in ids if i in recs]

    # -- mutations -------------------------------------------------------------------------

    def _emit(
        self, action: str, type_: str, new: dict[str, Any], old: dict[str, Any] | None = None
    ) -> None:
        for listener in self.listeners:
            listener(action, type_, new, old)

    def _stamp(self, previous: str | None) -> int:
        """A fresh ms timestamp: now, but strictly after the record's previous updatedAt."""
        t = self.clock_ms()
        if previous is not None:
            prev = iso_to_ms(previous)
            if prev is not None and t <= prev:
                t = prev + 1
        return t

    def _pick(self, type_: str, n: int, *, alive: bool = True) -> list[str]:
        recs = self.records.get(type_, {})
        ids = sorted(i for i, r in recs.items() if not (alive and is_deleted(r)))
        if n >= len(ids):
            return ids
        return sorted(self._mut_rng.sample(ids, n))

    def _choose(self, type_: str, n: int, ids: Iterable[str] | None) -> list[str]:
        """Explicit ids (any state, unknown ones refused) or n random live records."""
        if type_ not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type {type_!r}")
        if ids is None:
            return self._pick(type_, n)
        if isinstance(ids, str):
            raise ValueError("ids must be a list of ids, not a string")
        chosen = list(dict.fromkeys(str(i) for i in ids))
        recs = self.records.get(type_, {})
        unknown = [i for i in chosen if i not in recs]
        if unknown:
            raise ValueError(f"unknown {type_} ids: {unknown}")
        return chosen

    def _touch(self, res: dict[str, Any]) -> dict[str, Any]:
        new = copy.deepcopy(res)
        attrs = new["attributes"]
        stamp = ms_to_iso(self._stamp(attrs.get("updatedAt")))
        attrs["updatedAt"] = stamp
        if "modifiedAt" in attrs:
            attrs["modifiedAt"] = stamp
        if "rev" in attrs:
            attrs["rev"] = int(attrs.get("rev") or 0) + 1
        return new

    def change(self, type_: str, n: int = 0, *, ids: Iterable[str] | None = None) -> list[str]:
        """Update n live records (or exactly `ids`) of a type "now"; returns their ids."""
        with self.lock:
            chosen = self._choose(type_, n, ids)
            rng = self._mut_rng
            for id_ in chosen:
                old = self.records[type_][id_]
                new = self._touch(old)
                _apply_change(rng, type_, new, self)
                self.records[type_][id_] = new
                self._emit("update", type_, new, old)
            self.version += 1
            return chosen

    def delete(self, type_: str, n: int = 0, *, ids: Iterable[str] | None = None) -> list[str]:
        """Soft-delete n live records (or exactly `ids`) "now" (deleted / deletedAt)."""
        with self.lock:
            chosen = self._choose(type_, n, ids)
            for id_ in chosen:
                old = self.records[type_][id_]
                new = self._touch(old)
                attrs = new["attributes"]
                if type_ == "user":
                    attrs["deletedAt"] = attrs["updatedAt"]
                else:
                    attrs["deleted"] = True
                    if "deletedAt" in attrs:
                        attrs["deletedAt"] = attrs["updatedAt"]
                self.records[type_][id_] = new
                self._emit("update", type_, new, old)
            self.version += 1
            return chosen

    def hard_delete(self, type_: str, n: int = 0, ids: Iterable[str] | None = None) -> list[str]:
        """Remove n live records (or exactly `ids`) entirely, as a purge or GDPR erasure does.

        Unlike a soft delete nothing is left to search for with includeDeleted, so only a
        reconciliation by ids notices. A removed conversation's messages and notes stay (orphaned);
        a removed message or note leaves its conversation's children list.
        """
        with self.lock:
            chosen = self._choose(type_, n, ids)
            recs = self.records[type_]
            for id_ in chosen:
                res = recs.pop(id_)
                if type_ in self.children:
                    conv_id = _rel_id(res, "conversation")
                    kids = self.children[type_].get(conv_id or "")
                    if kids is not None and id_ in kids:
                        self.children[type_][conv_id or ""] = [k for k in kids if k != id_]
                if type_ == "conversation":
                    for by_conv in self.children.values():
                        by_conv.pop(id_, None)
                self.hard_deleted.setdefault(type_, []).append(id_)
            self.version += 1
            return chosen

    def merge_customers(
        self, pairs: Iterable[tuple[str, str]] | None = None, n: int = 0
    ) -> list[tuple[str, str]]:
        """Merge each (loser, survivor): the loser disappears, its records move to the survivor.

        Every record whose `customer` relationship named the loser is re-pointed and touched, and
        the survivor is touched, so an incremental client sees the move; but nothing tells it the
        loser is gone. With pairs None, n random pairs of distinct live customers are merged.
        """
        with self.lock:
            custs = self.records.get("customer", {})
            if pairs is None:
                live = sorted(i for i, r in custs.items() if not is_deleted(r))
                k = min(max(n, 0), len(live) // 2)
                chosen = self._mut_rng.sample(live, 2 * k)
                todo = [(chosen[2 * i], chosen[2 * i + 1]) for i in range(k)]
            else:
                todo = [(str(a), str(b)) for a, b in pairs]
            gone: set[str] = set()
            for loser, survivor in todo:  # validate the whole batch before changing anything
                if loser == survivor:
                    raise ValueError(f"cannot merge customer {loser} into itself")
                for id_ in (loser, survivor):
                    if id_ not in custs or id_ in gone:
                        raise ValueError(f"unknown or already merged customer {id_}")
                gone.add(loser)
            for loser, survivor in todo:
                self._merge_one(loser, survivor)
            self.version += 1
            return todo

    def _merge_one(self, loser: str, survivor: str) -> None:
        custs = self.records["customer"]
        lost = custs.pop(loser)
        for type_ in CUSTOMER_LINKED_TYPES:
            recs = self.records.get(type_, {})
            for id_, res in list(recs.items()):
                if _rel_id(res, "customer") != loser:
                    continue
                new = self._touch(res)
                new["relationships"]["customer"] = _rel("customer", survivor)
                recs[id_] = new
                self._emit("update", type_, new, res)
        previous = custs[survivor]
        new = self._touch(previous)
        counts = new["attributes"].get("conversationCounts")
        lost_counts = lost["attributes"].get("conversationCounts")
        if isinstance(counts, dict) and isinstance(lost_counts, dict):
            for key, value in lost_counts.items():
                counts[key] = int(counts.get(key) or 0) + int(value or 0)
        custs[survivor] = new
        self._emit("update", "customer", new, previous)
        self.merged[loser] = survivor

    def resolve_merged(self, id_: str) -> str | None:
        """The customer a merged id now lives on (following chains), or None if not merged."""
        with self.lock:
            if id_ not in self.merged:
                return None
            seen = {id_}
            while id_ in self.merged:
                id_ = self.merged[id_]
                if id_ in seen:
                    return None
                seen.add(id_)
            return id_

    def patch(
        self,
        type_: str,
        *,
        ids: Iterable[str] | None = None,
        n: int = 0,
        custom: dict[str, Any] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> list[str]:
        """Touch records and set values verbatim, for schema-drift tests.

        Values are not checked against metadata or the attribute's usual type: real orgs send a
        string where a number was, or a list where a scalar was, and a connector must cope.
        `custom` keys are merged into `attributes.custom` (None sets null); `attributes` keys
        replace top-level attributes last, so they win even over the touch.
        """
        with self.lock:
            chosen = self._choose(type_, n, ids)
            recs = self.records[type_]
            for id_ in chosen:
                old = recs[id_]
                new = self._touch(old)
                attrs = new["attributes"]
                if custom:
                    current = attrs.get("custom")
                    merged = dict(current) if isinstance(current, dict) else {}
                    merged.update(copy.deepcopy(custom))
                    attrs["custom"] = merged
                if attributes:
                    attrs.update(copy.deepcopy(attributes))
                recs[id_] = new
                self._emit("update", type_, new, old)
            self.version += 1
            return chosen

    def create(self, type_: str, n: int) -> list[str]:
        """Create n records "now" (messages and notes also touch their conversation)."""
        with self.lock:
            rng = self._mut_rng
            out: list[str] = []
            for _ in range(n):
                t = self._stamp(None)
                res = _make_new(rng, type_, t, self)
                self.records.setdefault(type_, {})[res["id"]] = res
                self._emit("create", type_, res)
                out.append(res["id"])
            self.version += 1
            return out

    def mutate(
        self,
        type_: str,
        change: int = 0,
        create: int = 0,
        delete: int = 0,
        hard_delete: int = 0,
        ids: Iterable[str] | None = None,
    ) -> dict[str, list[str]]:
        """With `ids`, each of change / delete / hard_delete that is non-zero targets those ids."""
        if type_ not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type {type_!r}")
        with self.lock:
            if ids is not None:
                ids = list(ids)
                self._choose(type_, 0, ids)  # refuse unknown ids before changing anything
            return {
                "changed": self.change(type_, change, ids=ids) if change else [],
                "created": self.create(type_, create) if create else [],
                "deleted": self.delete(type_, delete, ids=ids) if delete else [],
                "hard_deleted": self.hard_delete(type_, hard_delete, ids) if hard_delete else [],
            }


def is_deleted(res: dict[str, Any]) -> bool:
    attrs = res.get("attributes", {})
    return bool(attrs.get("deleted")) or attrs.get("deletedAt") is not None


def _rel_id(res: dict[str, Any], name: str) -> str | None:
    data = ((res.get("relationships") or {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


# ----------------------------------------------------------------------------- mutation helpers


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


# ----------------------------------------------------------------------------- record factories


def _times(created: int, updated: int) -> dict[str, str]:
    return {"createdAt": ms_to_iso(created), "updatedAt": ms_to_iso(updated)}


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


def _make_conversation_shell(
    rng: Random, created: int, customer_id: str | None, ds: Dataset
) -> dict[str, Any]:
    """A new conversation with no messages yet (used for mutations 'create')."""
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    id_ = _oid(rng, created)
    brands = sorted(ds.records.get("brand", {}))
    return _resource(
        "conversation",
        id_,
        {
            "name": rng.choice(SENTENCES)[:60],
            "channels": [channel],
            "status": "open",
            "priority": 3,
            "direction": "in",
            "preview": "",
            "messageCount": 0,
            "noteCount": 0,
            "outboundMessageCount": 0,
            "satisfaction": 0,
            "satisfactionLevel": None,
            "tags": [],
            "suggestedTags": [],
            "assignedUsers": [],
            "assignedTeams": [],
            "firstResponse": None,
            "firstDone": None,
            "lastDone": None,
            "lastMessageAt": None,
            "reopenCount": 0,
            "ended": False,
            "endedAt": None,
            "externalId": None,
            "deleted": False,
            **_times(created, created),
            "modifiedAt": ms_to_iso(created),
            "rev": 1,
            "custom": {},
        },
        {
            "customer": _rel("customer", customer_id),
            "brand": _rel("brand", brands[0] if brands else None),
            "createdBy": _rel("user", None),
            "messages": {"links": {"self": f"/v1/conversations/{id_}/messages"}},
        },
    )


def _make_message(
    rng: Random,
    conv_id: str | None,
    customer_id: str | None,
    agent_id: str | None,
    t: int,
    direction: str,
    channel: str,
) -> dict[str, Any]:
    preview = _text(rng)
    meta: dict[str, Any] = {}
    if channel == "email":
        meta = {
            "subject": rng.choice(("Re: your order", "Où est ma commande ?", "Refund request")),
            "from": "support@example.com" if direction == "out" else "customer@mail.example.com",
            "to": ["customer@mail.example.com" if direction == "out" else "support@example.com"],
        }
    sender = agent_id if direction == "out" else None
    return _resource(
        "message",
        _oid(rng, t),
        {
            "channel": channel,
            "app": "postmark" if channel == "email" else channel,
            "direction": direction,
            "preview": preview,
            "meta": meta,
            "status": "sent" if direction == "out" else "received",
            "size": len(preview.encode("utf-8")) + rng.randint(200, 4000),
            "attachments": [],
            "sentAt": ms_to_iso(t),
            **_times(t, t),
            "modifiedAt": ms_to_iso(t),
            "custom": _custom(rng, "message", t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "createdBy": _rel("user", sender),
            "sentBy": _rel("user", sender),
        },
    )


def _make_note(
    rng: Random, conv_id: str | None, customer_id: str | None, agent_id: str | None, t: int
) -> dict[str, Any]:
    mentions = [agent_id] if agent_id and rng.random() < 0.2 else []
    return _resource(
        "note",
        _oid(rng, t),
        {
            "body": rng.choice(NOTE_BODIES),
            "userMentions": mentions,
            "deleted": False,
            "deletedAt": None,
            "externalId": None,
            **_times(t, t),
            "modifiedAt": ms_to_iso(t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "createdBy": _rel("user", agent_id),
        },
    )


def _comment_answer(rng: Random) -> dict[str, Any]:
    comment = rng.choice(
        (
            "Très bien, merci ! 👍",
            "Slow response but solved.",
            "最高のサポートでした",
            "Nope. Still waiting for my refund 😡",
            "",
        )
    )
    return {"id": "q2", "type": "text", "answer": comment}


def _make_response(
    rng: Random,
    t: int,
    conv_id: str | None,
    customer_id: str | None,
    form_id: str | None,
    agent_id: str | None,
    team_id: str | None,
) -> dict[str, Any]:
    rating = rng.choices((1, 2, 3, 4, 5), (1, 1, 2, 4, 6))[0]
    return _resource(
        "satisfaction_response",
        _oid(rng, t),
        {
            "rating": rating,
            "score": rating / 5,
            "status": "rated",
            "channel": "email",
            "answers": [{"id": "q1", "type": "rating", "answer": rating}, _comment_answer(rng)],
            "sentByTeams": [team_id] if team_id else [],
            "submittedAt": ms_to_iso(t),
            **_times(t, t),
        },
        {
            "conversation": _rel("conversation", conv_id),
            "customer": _rel("customer", customer_id),
            "form": _rel("satisfaction", form_id),
            "user": _rel("user", agent_id),
            "team": _rel("team", team_id),
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


def _metadata_resource(obj: str, created: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, display in CUSTOM_DEFS[obj]:
        suffix = custom_suffix(name) or "Str"
        prop: dict[str, Any] = {"displayName": display, "type": SUFFIX_TYPES[suffix]}
        if suffix == "Tree":
            prop["tree"] = {"children": [{"value": v, "displayName": v} for v in CONTACT_REASONS]}
        props[name] = prop
    return {
        "type": "metadata",
        "id": obj,
        "attributes": {"name": obj, "properties": props, "createdAt": ms_to_iso(created)},
        "relationships": {},
        "links": {"self": f"/v1/metadata/{obj}"},
    }


# ----------------------------------------------------------------------------- generation


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
