"""Fetch one entity's records for a time window, in pages, however its source is shaped.

Search-backed entities ask Kustomer only for `[start, end)`. Snapshot sources (lists that
cannot filter by time, custom-attribute metadata) are read whole, once per run. CSAT responses
have no list endpoint: they are fetched one by one for the ids the caller found.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kustomer_assets.entities import (
    ByIdSource,
    EntitySpec,
    ListSource,
    MetadataSource,
    SearchSource,
)
from kustomer_assets.kustomer import KustomerClient, KustomerNotFoundError
from kustomer_assets.kustomer.search import Reconciliation
from kustomer_assets.records import custom_column_name

EPOCH = "1970-01-01T00:00:00.000Z"
"""Stand-in `updatedAt` for snapshot records that carry neither updatedAt nor createdAt, so
they land in a partition instead of being dropped."""

BY_ID_PAGE = 100
"""Records fetched by id are handed on in pages of this size, like a list page."""


@dataclass
class WindowFetch:
    """Pages of one entity for `[start, end)`.

    `reported_total` is the count the API reported for the window (search only; list totals
    cover all time). `ids` feeds by-id sources; `not_found` counts ids the API no longer has.
    """

    spec: EntitySpec
    client: KustomerClient
    start: datetime
    end: datetime
    ids: Iterable[str] = ()
    reported_total: int | None = None
    records: int = 0
    not_found: int = 0
    reconciliation: Reconciliation | None = None
    """How a search window was proven complete (ids or counts) and what changed meanwhile."""

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        for page in self._source_pages():
            if not isinstance(self.spec.source, ByIdSource):
                self.records += len(page)
            yield page

    def _source_pages(self) -> Iterator[list[dict[str, Any]]]:
        source = self.spec.source
        role = self.spec.role
        if isinstance(source, SearchSource):
            window = self.client.search_window(
                source.query_context, self.start, self.end, role=role
            )
            yield from window
            self.reported_total = window.reported_total
            self.reconciliation = window.reconciliation
        elif isinstance(source, ListSource):
            for page in self.client.iter_list(source.path, page_size=source.page_size, role=role):
                yield [_with_updated_at(r) for r in page]
        elif isinstance(source, MetadataSource):
            for obj in source.objects:
                resource = self.client.get_resource(source.path(obj), role=role)
                yield list(custom_attribute_records(obj, resource))
        elif isinstance(source, ByIdSource):
            yield from self.by_ids(source.path_template, self.ids)
        else:  # pragma: no cover - the Source union is closed
            raise TypeError(f"unknown source {source!r}")

    def by_ids(self, path_template: str, ids: Iterable[str]) -> Iterator[list[dict[str, Any]]]:
        """Fetch records one by one (no list endpoint, or referenced records), in pages.

        An id the API no longer knows (hard-deleted) is counted in `not_found`, not fatal.
        """
        page: list[dict[str, Any]] = []
        for record_id in ids:
            try:
                resource = self.client.get_resource(
                    path_template.format(id=record_id), role=self.spec.role
                )
            except KustomerNotFoundError:
                self.not_found += 1
                continue
            page.append(resource)
            self.records += 1
            if len(page) >= BY_ID_PAGE:
                yield page
                page = []
        if page:
            yield page


def _with_updated_at(resource: dict[str, Any]) -> dict[str, Any]:
    attributes = resource.get("attributes") or {}
    if attributes.get("updatedAt"):
        return resource
    stamp = attributes.get("createdAt") or EPOCH
    return {**resource, "attributes": {**attributes, "updatedAt": stamp}}


def custom_attribute_records(obj: str, resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One pseudo-resource per custom attribute defined on `obj`.

    The metadata endpoint answers one resource whose `properties` map names to definitions;
    tolerate a list-shaped `data` and definitions placed directly under `attributes`.
    """
    if isinstance(resource, list):
        for item in resource:
            yield from custom_attribute_records(obj, item)
        return
    attributes = resource.get("attributes") or {}
    properties = attributes.get("properties")
    if not isinstance(properties, dict):
        properties = {k: v for k, v in attributes.items() if isinstance(v, dict)}
    stamp = attributes.get("updatedAt") or attributes.get("createdAt") or EPOCH
    for name, definition in sorted(properties.items()):
        if not isinstance(definition, dict):
            continue
        yield {
            "type": "custom_attribute",
            "id": f"{obj}.{name}",
            "attributes": {
                "object": obj,
                "name": name,
                "columnName": custom_column_name(name),
                "displayName": definition.get("displayName"),
                "type": definition.get("type"),
                "picklistValues": picklist_values(definition),
                "definition": definition,
                "createdAt": attributes.get("createdAt"),
                "updatedAt": definition.get("updatedAt") or stamp,
            },
        }


def picklist_values(definition: dict[str, Any]) -> list[str] | None:
    """Allowed values of a picklist; a tree's values are its dot-separated paths."""
    tree = definition.get("tree")
    if isinstance(tree, dict):
        paths: list[str] = []

        def walk(nodes: Any, prefix: str) -> None:
            for node in nodes or []:
                if isinstance(node, dict) and node.get("value") is not None:
                    path = f"{prefix}{node['value']}"
                    paths.append(path)
                    walk(node.get("children"), f"{path}.")

        walk(tree.get("children"), "")
        return paths
    values = definition.get("values")
    if isinstance(values, list):
        return [
            str(v.get("value", v.get("displayName"))) if isinstance(v, dict) else str(v)
            for v in values
        ]
    return None
