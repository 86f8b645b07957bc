"""Which requests the key check sends, which tables each role unlocks, and which roles a run
cannot do without: all read from the entity specs.

Kustomer exposes no "list my roles" endpoint, so each role is probed with the cheapest request
a key without it is refused: the probe of the first entity (in spec order) that needs the role
and whose source yields one (a by-id source does not: a made-up id answers 404 whatever the
roles). Searches need a search role as well as the context's read role; any one of the four
search roles unlocks search, so they share one report row, `SEARCH`.

Required-ness is defined once, by the specs' `required`: a role is required when a required
entity needs it, and the search roles are when a required entity is searched. The roles module
only names the roles; `role_required` is where a run or the report asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from kustomer_assets.entities import ENTITIES, EntitySpec, Probe
from kustomer_assets.kustomer import roles
from kustomer_assets.kustomer.search import search_body

SEARCH = "search (any of the four)"
"""Row name for the four search roles: any one of them unlocks the search endpoint."""


def is_search_role(role: str) -> bool:
    """The search row, or one of the roles it stands for."""
    return role == SEARCH or role in roles.SEARCH_ROLES


def key_probes(entities: Iterable[EntitySpec] = ENTITIES) -> tuple[Probe, ...]:
    """One probe per role, in spec order: the first entity needing the role that has one."""
    probes: dict[str, Probe] = {}
    for spec in entities:
        probe = spec.probe
        if probe is not None and probe.role not in probes:
            probes[probe.role] = probe
    return tuple(probes.values())


def search_probe(entities: Iterable[EntitySpec] = ENTITIES) -> Probe | None:
    """The search that tells whether the key holds a search role (the first searched entity's)."""
    return next((p for p in key_probes(entities) if p.is_search), None)


def role_required(role: str, entities: Iterable[EntitySpec] = ENTITIES) -> bool:
    """Whether a key without `role` fails a run: a required entity needs it (for a search role
    or the search row: a required entity is searched). Roles no entity needs are optional."""
    if is_search_role(role):
        return any(spec.required for spec in entities if spec.is_searched)
    return any(spec.required for spec in entities if spec.role == role)


def unlocks(role: str, entities: Iterable[EntitySpec] = ENTITIES) -> tuple[str, ...]:
    """Tables the role opens: the entities that need it (the search row: the searched ones).

    A role no entity needs unlocks nothing here: the report then shows no table for it."""
    if is_search_role(role):
        return tuple(spec.name for spec in entities if spec.is_searched)
    return tuple(spec.name for spec in entities if spec.role == role)


def probe_body(probe: Probe) -> dict[str, Any] | None:
    """The body of a search probe: its context over the last day, unsorted (cheap for the
    server as well as for us, and refused exactly like any other search of that context);
    None for a GET."""
    if probe.query_context is None:
        return None
    since = datetime.now(UTC) - timedelta(days=1)
    return search_body(probe.query_context, since=since, sort=False)


__all__ = [
    "SEARCH",
    "Probe",
    "is_search_role",
    "key_probes",
    "probe_body",
    "role_required",
    "search_probe",
    "unlocks",
]
