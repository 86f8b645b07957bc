"""JSON:API shapes of the emulator's records: ids, resources, relationships, metadata.

Every record the emulator stores is already the document the API answers, so these helpers are
the one place the envelope (`type`, `id`, `attributes`, `relationships`, `links`) is spelled.
"""

from __future__ import annotations

from random import Random
from typing import Any

from .timestamps import ms_to_iso
from .vocabulary import CONTACT_REASONS, CUSTOM_DEFS, SELF_PATHS, SUFFIX_TYPES, custom_suffix


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


def is_deleted(res: dict[str, Any]) -> bool:
    attrs = res.get("attributes", {})
    return bool(attrs.get("deleted")) or attrs.get("deletedAt") is not None


def _rel_id(res: dict[str, Any], name: str) -> str | None:
    data = ((res.get("relationships") or {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


def _times(created: int, updated: int) -> dict[str, str]:
    return {"createdAt": ms_to_iso(created), "updatedAt": ms_to_iso(updated)}


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
