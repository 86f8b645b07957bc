"""Evaluation of Kustomer search bodies (`POST /v1/customers/search`) against the dataset.

Criteria are `<object>_<snake_attr>` (e.g. `conversation_updated_at`) or `<object>_custom_<name>`
(e.g. `customer_custom_lifetimeValueNum`); operators gte, gt, lte, lt, equals. Timestamps are
compared as instants, so "2026-11-01T00:00:00Z" and "2026-11-01T00:00:00.000Z" are equal. Sorting
always ends with id ascending: that is what makes page N+1 follow page N even inside a tie of
hundreds of identical updatedAt values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .dataset import Dataset, dt_to_ms, is_deleted, iso_to_ms

QUERY_CONTEXTS: tuple[str, ...] = (
    "conversation",
    "customer",
    "message",
    "note",
    "kobject",
    "company",
)
OPERATORS: frozenset[str] = frozenset({"gte", "gt", "lte", "lt", "equals"})
_SORT_DIRECTIONS = {"asc": False, "desc": True}


class SearchError(ValueError):
    """A body the API would answer with 400; the message is what the emulator returns."""


def snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _getter(context: str, field: str) -> Callable[[dict[str, Any]], Any]:
    prefix = f"{context}_"
    if not field.startswith(prefix):
        raise SearchError(f"Invalid search field {field!r} for queryContext {context!r}")
    rest = field[len(prefix) :]
    if not rest:
        raise SearchError(f"Invalid search field {field!r}")
    if rest == "id":
        return lambda r: r["id"]
    if rest.startswith("custom_"):
        name = rest[len("custom_") :]
        return lambda r: (r["attributes"].get("custom") or {}).get(name)
    attr = snake_to_camel(rest)
    rel = snake_to_camel(rest[:-3]) if rest.endswith("_id") else None

    def get(r: dict[str, Any]) -> Any:
        attrs = r["attributes"]
        if attr in attrs:
            return attrs[attr]
        if rel is not None:
            data = (r.get("relationships", {}).get(rel) or {}).get("data")
            return data.get("id") if isinstance(data, dict) else None
        return None

    return get


def _instant(value: Any, tz: ZoneInfo | None) -> int | None:
    """Epoch ms when value is a timestamp string (a naive one is read in the query's timeZone)."""
    if not isinstance(value, str):
        return None
    ms = iso_to_ms(value)
    if ms is None or tz is None:
        return ms
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ms
    if parsed.tzinfo is None:
        return dt_to_ms(parsed.replace(tzinfo=tz))
    return ms


def _compare(op: str, actual: Any, expected: Any, tz: ZoneInfo | None) -> bool:
    if op == "equals":
        if isinstance(actual, list):
            if isinstance(expected, list):
                return sorted(map(str, actual)) == sorted(map(str, expected))
            return expected in actual
        if isinstance(expected, list):
            return actual in expected
        a_ms, e_ms = _instant(actual, None), _instant(expected, tz)
        if a_ms is not None and e_ms is not None:
            return a_ms == e_ms
        return actual == expected
    if actual is None or expected is None:
        return False
    a_ms, e_ms = _instant(actual, None), _instant(expected, tz)
    if a_ms is not None and e_ms is not None:
        a, e = a_ms, e_ms
    elif isinstance(actual, bool) or isinstance(expected, bool):
        return False
    elif isinstance(actual, int | float) and isinstance(expected, int | float):
        a, e = actual, expected
    elif isinstance(actual, str) and isinstance(expected, str):
        a, e = actual, expected  # type: ignore[assignment]
    else:
        return False
    if op == "gte":
        return a >= e
    if op == "gt":
        return a > e
    if op == "lte":
        return a <= e
    return a < e


Predicate = Callable[[dict[str, Any]], bool]


def _compile_criterion(context: str, crit: Any, tz: ZoneInfo | None) -> Predicate:
    if not isinstance(crit, dict) or not crit:
        raise SearchError("Each search criterion must be a non-empty object")
    preds: list[Predicate] = []
    for key, cond in crit.items():
        if key in ("and", "or", "not"):
            preds.append(_compile_group(context, {key: cond}, tz))
            continue
        get = _getter(context, key)
        if not isinstance(cond, dict) or not cond:
            raise SearchError(f"Criterion {key!r} needs an operator object such as {{'gte': ...}}")
        for op, expected in cond.items():
            if op not in OPERATORS:
                raise SearchError(f"Unsupported operator {op!r} on {key!r}")
            preds.append(
                lambda r, g=get, o=op, e=expected: _compare(o, g(r), e, tz)  # type: ignore[misc]
            )
    return lambda r: all(p(r) for p in preds)


def _compile_group(context: str, body: dict[str, Any], tz: ZoneInfo | None) -> Predicate:
    groups: dict[str, list[Predicate]] = {}
    for key in ("and", "or", "not"):
        items = body.get(key)
        if items is None:
            continue
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise SearchError(f"{key!r} must be a list of criteria")
        groups[key] = [_compile_criterion(context, c, tz) for c in items]
    ands, ors, nots = groups.get("and", []), groups.get("or", []), groups.get("not", [])

    def pred(r: dict[str, Any]) -> bool:
        return (
            all(p(r) for p in ands)
            and (not ors or any(p(r) for p in ors))
            and not any(p(r) for p in nots)
        )

    return pred


def _sort_key(value: Any) -> tuple[int, Any]:
    ms = _instant(value, None)
    if ms is not None:
        return (1, ms)
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def _parse_sort(context: str, sort: Any) -> list[tuple[Callable[[dict[str, Any]], Any], bool]]:
    if sort is None:
        sort = [{f"{context}_updated_at": "asc"}]
    if isinstance(sort, dict):
        sort = [sort]
    if not isinstance(sort, list):
        raise SearchError("sort must be a list of {field: 'asc'|'desc'} objects")
    out = []
    for item in sort:
        if not isinstance(item, dict):
            raise SearchError("sort must be a list of {field: 'asc'|'desc'} objects")
        for key, direction in item.items():
            d = str(direction).lower()
            if d not in _SORT_DIRECTIONS:
                raise SearchError(f"Invalid sort direction {direction!r} for {key!r}")
            out.append((_getter(context, key), _SORT_DIRECTIONS[d]))
    return out


def sort_records(
    records: Iterable[dict[str, Any]],
    keys: list[tuple[Callable[[dict[str, Any]], Any], bool]],
) -> list[dict[str, Any]]:
    """Multi-key sort with nulls last and id ascending as the final tie-breaker."""
    items = sorted(records, key=lambda r: r["id"])
    for get, desc in reversed(keys):
        present = [r for r in items if get(r) is not None]
        missing = [r for r in items if get(r) is None]
        present.sort(key=lambda r, g=get: _sort_key(g(r)), reverse=desc)  # type: ignore[misc]
        items = present + missing
    return items


def run_search(dataset: Dataset, body: Any) -> list[dict[str, Any]]:
    """All matching resources, in the order the API pages them. Raises SearchError on bad bodies."""
    if not isinstance(body, dict):
        raise SearchError("Search body must be a JSON object")
    context = body.get("queryContext")
    if context not in QUERY_CONTEXTS:
        raise SearchError(
            f"Invalid queryContext {context!r}; expected one of {', '.join(QUERY_CONTEXTS)}"
        )
    tz: ZoneInfo | None = None
    if body.get("timeZone"):
        try:
            tz = ZoneInfo(str(body["timeZone"]))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SearchError(f"Invalid timeZone {body['timeZone']!r}") from exc
    pred = _compile_group(context, body, tz)
    keys = _parse_sort(context, body.get("sort"))
    include_deleted = bool(body.get("includeDeleted", False))
    since = dataset.searchable_since_ms()
    candidates = dataset.all(context)
    matched = []
    for r in candidates:
        if not include_deleted and is_deleted(r):
            continue
        updated = iso_to_ms(r["attributes"].get("updatedAt") or "")
        if updated is None or updated < since:
            continue  # older than 2 years: only the Archive Search API has it
        if pred(r):
            matched.append(r)
    return sort_records(matched, keys)


__all__ = ["OPERATORS", "QUERY_CONTEXTS", "SearchError", "run_search", "snake_to_camel"]
