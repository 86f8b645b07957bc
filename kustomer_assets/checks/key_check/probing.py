"""Asking Kustomer which roles a key carries: send the probes, read the refusals, build rows.

A key's roles cannot be edited, so a key made without, say, `note.read` would otherwise be
discovered as a skipped table (or, for a required role, a failed run) hours into a backfill.
Each role is probed with one request of one record on an endpoint the API notes document, so
the check works against any server that follows them, and every request goes through
`KustomerClient`, so budgets, retries and redaction apply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from kustomer_assets.checks.key_check.probes import (
    SEARCH,
    is_search_role,
    key_probes,
    probe_body,
    role_required,
    search_probe,
    unlocks,
)
from kustomer_assets.checks.key_check.report import (
    ERROR,
    MISSING,
    PRESENT,
    UNKNOWN,
    KeyReport,
    RoleRow,
    Status,
)
from kustomer_assets.entities import ENTITIES, EntitySpec, Probe
from kustomer_assets.kustomer import roles
from kustomer_assets.kustomer.client import KustomerClient
from kustomer_assets.kustomer.errors import (
    KustomerAuthError,
    KustomerError,
    KustomerPermissionError,
)

_ROLE_IN_TEXT = re.compile(r"org\.permission\.[a-z0-9_]+\.[a-z0-9_]+", re.IGNORECASE)
_SERVER_SAID = re.compile(r"\(Kustomer answered \d+: (.*)\); roles cannot be edited", re.DOTALL)
_MAX_DETAIL = 160


@dataclass(frozen=True)
class Outcome:
    """What one probe saw: success, a refusal (with any roles the server named), or an error."""

    probe: Probe
    kind: Literal["ok", "refused", "error"]
    named: frozenset[str] = frozenset()
    detail: str = ""

    @property
    def named_search(self) -> bool:
        return bool(self.named & set(roles.SEARCH_ROLES))


def _one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def run_probe(client: KustomerClient, probe: Probe) -> Outcome:
    """One request of one record; a refusal keeps the roles the server's text named.

    The client is given no role, so the only role names in its permission error are the
    server's own: that is what lets a search refused for lack of a search role be told apart
    from one refused for lack of the context's read role. KustomerAuthError propagates: a bad
    key is not a missing role.
    """
    try:
        client.first_page(probe.path, search_body=probe_body(probe))
    except KustomerPermissionError as exc:
        said = _SERVER_SAID.search(exc.message)
        server = said.group(1) if said else ""
        named = frozenset(m.lower() for m in _ROLE_IN_TEXT.findall(server or exc.message))
        detail = f"{exc.status or 'refused'} on {probe.label}"
        if named:
            detail += f", naming {', '.join(sorted(named))}"
        elif server:
            detail += f": {server}"
        return Outcome(probe, "refused", named, _one_line(detail))
    except KustomerAuthError:
        raise
    except KustomerError as exc:
        return Outcome(probe, "error", detail=_one_line(str(exc)))
    return Outcome(probe, "ok", detail=f"{probe.label} answered")


def _row_factory(role: str, entities: Sequence[EntitySpec]) -> Callable[..., RoleRow]:
    required, opens = role_required(role, entities), unlocks(role, entities)

    def make(status: Status, detail: str, needs: str | None = None) -> RoleRow:
        return RoleRow(role, required, status, opens, detail, needs)

    return make


def role_row(outcome: Outcome, search: RoleRow | None, entities: Sequence[EntitySpec]) -> RoleRow:
    """Classify one probe; `search` (the search row, when known) settles unnamed refusals."""
    probe = outcome.probe
    role = probe.role
    make = _row_factory(role, entities)
    if outcome.kind == "ok":
        return make(PRESENT, "")
    if outcome.kind == "error":
        return make(ERROR, outcome.detail)
    if role in outcome.named or not probe.is_search:
        return make(MISSING, outcome.detail)
    search_missing = outcome.named_search or (search is not None and search.status == MISSING)
    if search_missing:
        return make(UNKNOWN, "cannot search without a search role", needs=SEARCH)
    if outcome.named:
        other = ", ".join(sorted(outcome.named))
        return make(UNKNOWN, f"refused for {other}: {outcome.detail}")
    if search is not None and search.status == PRESENT:
        return make(MISSING, outcome.detail)
    return make(
        MISSING,
        _one_line(f"{outcome.detail} (no role named: the key lacks {role} or every search role)"),
    )


def search_row(outcomes: Iterable[Outcome], entities: Sequence[EntitySpec]) -> RoleRow:
    """Any successful search proves a search role; a refusal naming one proves it missing."""
    searches = [o for o in outcomes if o.probe.is_search]
    make = _row_factory(SEARCH, entities)
    ok = [o for o in searches if o.kind == "ok"]
    if ok:
        return make(PRESENT, f"{ok[0].probe.label} answered")
    named = [o for o in searches if o.named_search]
    if named:
        return make(MISSING, named[0].detail)
    errors = [o for o in searches if o.kind == "error"]
    if errors:
        return make(ERROR, errors[0].detail)
    if searches and all(o.kind == "refused" and not o.named for o in searches):
        # Either no search role or no context role at all; both are required, and no search
        # role is by far the likelier of the two.
        return make(MISSING, "every search was refused without naming a role")
    return make(UNKNOWN, "no search succeeded or named a search role")


def check_role(
    client: KustomerClient, role: str, entities: Sequence[EntitySpec] = ENTITIES
) -> RoleRow:
    """Probe one role only (the asset checks use it: one request per entity)."""
    if is_search_role(role):
        probe = search_probe(entities)
        if probe is None:
            raise ValueError("no entity is searched: nothing needs a search role")
        return search_row([run_probe(client, probe)], entities)
    by_role = {p.role: p for p in key_probes(entities)}
    if role not in by_role:
        raise ValueError(f"no probe for role {role!r}; known: {', '.join(by_role)}")
    return role_row(run_probe(client, by_role[role]), None, entities)


def check_key(client: KustomerClient, entities: Sequence[EntitySpec] = ENTITIES) -> KeyReport:
    """Prove the key works, then probe every role the entities need (about a dozen requests).

    Rows: the required roles, the search row (when an entity is searched), the optional roles.
    Raises KustomerAuthError when GET /v1/users/current answers 401 (bad, expired or wrong-pod
    key), and any other KustomerError from that first request: nothing else can be judged then.
    """
    before = client.stats.requests
    user: str | None = None
    try:
        attributes = client.current_user().get("attributes") or {}
        user = attributes.get("displayName") or attributes.get("name") or None
    except KustomerPermissionError:
        pass  # 403 on users/current: the key authenticated, it just may not read users
    probes = key_probes(entities)
    outcomes = [run_probe(client, probe) for probe in probes]
    search = search_row(outcomes, entities) if any(p.is_search for p in probes) else None
    probed = [role_row(o, search, entities) for o in outcomes]
    rows = [
        *(r for r in probed if r.required),
        *([search] if search is not None else []),
        *(r for r in probed if not r.required),
    ]
    return KeyReport(
        rows=tuple(rows),
        requests=client.stats.requests - before,
        api_root=client.settings.api_root,
        user=str(user) if user else None,
    )


__all__ = ["Outcome", "check_key", "check_role", "role_row", "run_probe", "search_row"]
