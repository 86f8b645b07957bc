"""The one place a search request's body is written.

Kustomer's search takes criteria named `<queryContext>_<attribute>` in snake case with `gte` /
`lt` operators, and a sort on the same names (see the API notes, "Search"). The cursor, the
tie split, the id check, the role probes and the key check all ask for the same shape with a
different bound or context; writing it once keeps their criteria in step, e.g. a window is
always `[since, until)` and the sort always ascends on the field the window is cut on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from kustomer_assets.timestamps import iso_ms

SEARCH_PATH = "/v1/customers/search"
"""Every query context (conversation, customer, message, note, kobject ...) searches here."""

TimeField = Literal["updated", "created"]
"""The timestamp a window is cut on: `updatedAt` normally, `createdAt` inside a tie."""

Criterion = dict[str, Any]
"""One entry of a body's `and` list: `{"conversation_updated_at": {"gte": "..."}}`."""


def field_name(query_context: str, on: TimeField = "updated") -> str:
    """The search criterion naming `on` for `query_context`: `conversation_updated_at`."""
    return f"{query_context}_{'updated_at' if on == 'updated' else 'created_at'}"


def range_criteria(name: str, since: datetime, until: datetime) -> tuple[Criterion, Criterion]:
    """`name` in [since, until): the half-open range every window and split uses, so that
    adjacent ranges neither overlap nor leave a millisecond out."""
    return ({name: {"gte": iso_ms(since)}}, {name: {"lt": iso_ms(until)}})


def search_body(
    query_context: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    on: TimeField = "updated",
    fixed: Sequence[Criterion] = (),
    sort: bool = True,
    include_deleted: bool | None = None,
) -> dict[str, Any]:
    """The JSON body of a search of `query_context` with `on` in [since, until).

    - `since` / `until`: either bound may be left open (a probe needs only a recent `since`).
    - `fixed`: criteria that come first and stay the same while the range moves (a tie's
      `updatedAt` millisecond while the range runs over `createdAt`).
    - `sort`: ascend on the range's field, which is what a cursor needs; off for a probe that
      only asks whether the search is allowed.
    - `include_deleted`: sent when given (search hides deleted records unless asked);
      None leaves the server's default.
    """
    name = field_name(query_context, on)
    criteria: list[Criterion] = list(fixed)
    if since is not None:
        criteria.append({name: {"gte": iso_ms(since)}})
    if until is not None:
        criteria.append({name: {"lt": iso_ms(until)}})
    body: dict[str, Any] = {"queryContext": query_context, "and": criteria}
    if sort:
        body["sort"] = [{name: "asc"}]
    if include_deleted is not None:
        body["includeDeleted"] = include_deleted
    return body


__all__ = ["SEARCH_PATH", "Criterion", "TimeField", "field_name", "range_criteria", "search_body"]
