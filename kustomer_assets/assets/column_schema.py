"""What the Dagster UI shows as a raw table's columns: the spec's described ones, then those a
run discovered (custom attributes, sibling columns for values a type could not hold)."""

from __future__ import annotations

import dagster as dg

from kustomer_assets.entities import EntitySpec


def table_schema(spec: EntitySpec, columns: dict[str, str] | None = None) -> dg.TableSchema:
    """Column schema for the UI: the spec's described columns, then any discovered ones."""
    described = spec.mapper.descriptions
    base = spec.mapper.base_schema
    names = list(columns) if columns else list(base)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=(columns or {}).get(name) or str(base.get(name, "")),
                description=described.get(name) or _discovered_column(name),
            )
            for name in names
        ]
    )


def _discovered_column(name: str) -> str | None:
    head, sep, kind = name.rpartition("__")
    if sep and kind in ("float64", "text") and head:
        return f"Values of `{head}` that its table type cannot hold (read coalesce of both)."
    if name.startswith("custom_"):
        return "Custom attribute, typed by its name's suffix."
    return None
