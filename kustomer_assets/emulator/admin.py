"""`/__admin/*`: the ground truth for tests, and runtime control of faults, churn, mutations,
merges, drift patches, webhooks, budgets and the clock.
"""

from __future__ import annotations

import json
from typing import Any

from .churn import ChurnMixin
from .dataset import ENTITY_TYPES
from .faults import FaultsMixin
from .responses import _HttpError, _json, _Response


class AdminMixin(FaultsMixin, ChurnMixin):
    """Ground truth and the admin endpoints of `Emulator` (mixed into it)."""

    def truth(self, entity: str, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Current resources of a type (copies), for comparing an extraction with the source."""
        if entity == "metadata":
            items = list(self.dataset.metadata.values())
        elif entity in ENTITY_TYPES:
            items = self.dataset.all(entity, include_deleted=include_deleted)
        else:
            raise ValueError(f"unknown entity type {entity!r}")
        return json.loads(json.dumps(sorted(items, key=lambda r: r["id"])))

    def removed(self) -> dict[str, list[str]]:
        """Hard-deleted ids per type (merged customers are in `merged()`)."""
        with self.dataset.lock:
            return {t: list(ids) for t, ids in self.dataset.hard_deleted.items()}

    def merged(self) -> dict[str, str]:
        """Merged customers, loser -> survivor."""
        with self.dataset.lock:
            return dict(self.dataset.merged)

    def set_webhook(
        self, url: str | None, secret: str | None = None, header: str | None = None
    ) -> None:
        """Send outbound webhooks to `url` from now on (None stops them)."""
        self.webhooks.configure(url, secret, header or self.config.webhook_header)
        self.config.webhook_url = url

    def _admin(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Response:
        parts = path.split("/")[2:]  # ["", "__admin", ...]
        try:
            payload = json.loads(body) if body else {}
        except ValueError as exc:
            raise _HttpError(400, {"code": "invalid_json", "message": str(exc)}) from exc
        if method == "GET" and len(parts) == 2 and parts[0] == "truth":
            include = query.get("include_deleted", "true").lower() not in ("0", "false", "no")
            try:
                data = self.truth(parts[1], include_deleted=include)
            except ValueError as exc:
                raise _HttpError(404, {"code": "not_found", "message": str(exc)}) from exc
            return _json(200, {"data": data, "meta": {"total": len(data)}})
        if method == "GET" and parts == ["stats"]:
            return _json(200, self.stats)
        if method == "GET" and parts == ["clock"]:
            return _json(200, {"now": self.dataset.clock().isoformat()})
        if method == "POST" and parts == ["faults"]:
            kinds = payload.get("fault_kinds") or {}
            try:
                self.set_faults(
                    float(payload.get("fault_rate", self.config.fault_rate)),
                    slow_seconds=payload.get("slow_seconds"),
                    **{str(k): float(v) for k, v in kinds.items()},
                )
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_faults", "message": str(exc)}) from exc
            return _json(
                200, {"fault_rate": self.config.fault_rate, "fault_kinds": self.config.fault_kinds}
            )
        if method == "POST" and parts == ["mutate"]:
            try:
                result = self._admin_mutate(payload)
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_mutation", "message": str(exc)}) from exc
            return _json(200, result)
        if method == "POST" and parts == ["churn"]:
            if not isinstance(payload, dict):
                raise _HttpError(400, {"code": "invalid_churn", "message": "expected an object"})
            spec = dict(payload)
            reset = bool(spec.pop("reset", False))
            try:
                if spec or not reset:  # {"reset": true} alone keeps the current map
                    self.set_churn(spec, reset=reset)
                else:
                    self.set_churn(self.config.churn, reset=True)
            except ValueError as exc:
                raise _HttpError(400, {"code": "invalid_churn", "message": str(exc)}) from exc
            return _json(200, {"churn": self.config.churn})
        if method == "GET" and parts == ["churned"]:
            with self._churn_lock:
                churned = {t: sorted(ids) for t, ids in self._churned.items()}
            return _json(200, churned)
        if method == "GET" and parts == ["removed"]:
            return _json(200, {**self.removed(), "merged": self.merged()})
        if method == "POST" and parts == ["merge"]:
            try:
                raw = payload.get("pairs")
                pairs = None if raw is None else [(str(a), str(b)) for a, b in raw]
                done = self.dataset.merge_customers(pairs, n=int(payload.get("n", 0)))
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_merge", "message": str(exc)}) from exc
            return _json(200, {"pairs": [list(p) for p in done]})
        if method == "POST" and parts == ["patch"]:
            try:
                ids = payload.get("ids")
                custom = payload.get("custom")
                attributes = payload.get("attributes")
                if custom is not None and not isinstance(custom, dict):
                    raise ValueError("custom must be an object")
                if attributes is not None and not isinstance(attributes, dict):
                    raise ValueError("attributes must be an object")
                patched = self.dataset.patch(
                    str(payload.get("type")),
                    ids=None if ids is None else list(ids),
                    n=int(payload.get("n", 0)),
                    custom=custom,
                    attributes=attributes,
                )
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_patch", "message": str(exc)}) from exc
            return _json(200, {"ids": patched})
        if parts == ["webhooks"] and method in ("GET", "POST"):
            if method == "POST":
                if not isinstance(payload, dict):
                    raise _HttpError(400, {"code": "invalid_webhook", "message": "expected {url}"})
                try:
                    url = payload.get("url")
                    self.set_webhook(
                        None if url is None else str(url),
                        secret=payload.get("secret"),
                        header=payload.get("header"),
                    )
                except (TypeError, ValueError) as exc:
                    raise _HttpError(400, {"code": "invalid_webhook", "message": str(exc)}) from exc
            return _json(200, self.webhooks.describe())  # never the secret
        if method == "POST" and parts == ["consume"]:
            try:
                left = self.consume(int(payload.get("org", 0)), int(payload.get("search", 0)))
            except (TypeError, ValueError) as exc:
                raise _HttpError(400, {"code": "invalid_consume", "message": str(exc)}) from exc
            return _json(200, left)
        if method == "POST" and parts == ["advance"]:
            self.dataset.advance(float(payload.get("seconds", 0)))
            return _json(200, {"now": self.dataset.clock().isoformat()})
        raise _HttpError(404, {"code": "not_found", "message": f"No admin route {method} {path}"})

    def _admin_mutate(self, payload: dict[str, Any]) -> dict[str, list[str]]:
        """Counts as before; `ids` (or a list as an operation's value) targets exact records.

        With `ids`, every one of change / delete / hard_delete given a truthy value applies to
        those ids; the whole request is refused before any change if an id is unknown.
        """
        type_ = str(payload.get("type"))
        if type_ not in ENTITY_TYPES:
            raise ValueError(f"unknown entity type {type_!r}")
        shared = payload.get("ids")
        if shared is not None and not isinstance(shared, list):
            raise ValueError("ids must be a list")
        plan: dict[str, tuple[int, list[str] | None]] = {}
        for op in ("change", "delete", "hard_delete"):
            value = payload.get(op, 0)
            if isinstance(value, list):
                plan[op] = (1, [str(i) for i in value])
            else:
                plan[op] = (int(value), None if shared is None else [str(i) for i in shared])
        create = int(payload.get("create", 0))
        ds = self.dataset
        with ds.lock:
            for n, ids in plan.values():
                unknown = [i for i in ids or () if n and ds.get(type_, i) is None]
                if unknown:
                    raise ValueError(f"unknown {type_} ids: {unknown}")
            (nc, ic), (nd, idd), (nh, ih) = plan["change"], plan["delete"], plan["hard_delete"]
            return {
                "changed": ds.change(type_, nc, ids=ic) if nc else [],
                "created": ds.create(type_, create) if create else [],
                "deleted": ds.delete(type_, nd, ids=idd) if nd else [],
                "hard_deleted": ds.hard_delete(type_, nh, ih) if nh else [],
            }
