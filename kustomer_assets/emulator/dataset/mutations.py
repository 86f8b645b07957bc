"""How the org changes while a client reads it: updates, creations, soft and hard deletes,
customer merges and verbatim patches, each stamped "now" on the emulated clock.

Mutations use their own seeded RNG (`Dataset._mut_rng`), so a test replaying the same mutations
gets the same ids; what a change writes into each type's attributes is in `changes`.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from random import Random
from typing import Any

from .changes import _apply_change, _make_new
from .jsonapi import _rel, _rel_id, is_deleted
from .timestamps import iso_to_ms, ms_to_iso
from .vocabulary import CUSTOMER_LINKED_TYPES, ENTITY_TYPES


class DatasetMutations:
    """The mutating half of `Dataset` (mixed into it): every method holds `lock`."""

    records: dict[str, dict[str, dict[str, Any]]]
    current_user_id: str
    lock: threading.RLock
    version: int
    children: dict[str, dict[str, list[str]]]
    hard_deleted: dict[str, list[str]]
    merged: dict[str, str]
    listeners: list[Callable[[str, str, dict[str, Any], dict[str, Any] | None], None]]
    _mut_rng: Random
    clock_ms: Callable[[], int]

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
