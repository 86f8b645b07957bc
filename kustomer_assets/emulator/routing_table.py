"""The endpoints the emulator answers: method, path pattern, route kind and entity type."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .responses import _Response


@dataclass
class _Route:
    kind: str  # stats key and error context
    role: str | None  # read role the endpoint needs (search adds the search roles)
    handler: Callable[..., _Response]
    search: bool = False


_ID = r"(?P<id>[0-9a-fA-F]{1,64})"
# (method, path pattern, route kind, entity type); list kinds end with their page-size key.
_ROUTES: tuple[tuple[str, re.Pattern[str], str, str], ...] = tuple(
    (m, re.compile(p), kind, entity)
    for m, p, kind, entity in (
        ("GET", r"/v1/users/current", "current_user", ""),
        ("POST", r"/v1/customers/search", "search", ""),
        ("GET", rf"/v1/conversations/{_ID}", "get_conversation", "conversation"),
        ("GET", rf"/v1/conversations/{_ID}/messages", "conversation_messages", "message"),
        ("GET", rf"/v1/conversations/{_ID}/notes", "conversation_notes", "note"),
        ("GET", r"/v1/customers", "list_customers", "customer"),
        ("GET", rf"/v1/customers/{_ID}", "get_customer", "customer"),
        ("GET", r"/v1/users", "list_users", "user"),
        ("GET", r"/v1/teams", "list_teams", "team"),
        ("GET", r"/v1/tags", "list_tags", "tag"),
        ("GET", r"/v1/brands", "list_brands", "brand"),
        ("GET", r"/v1/satisfaction", "list_satisfaction", "satisfaction"),
        (
            "GET",
            rf"/v1/satisfaction-responses/{_ID}",
            "get_satisfaction_response",
            "satisfaction_response",
        ),
        ("GET", r"/v1/klasses", "list_klasses", "klass"),
        ("GET", r"/v1/metadata/(?P<resource>[A-Za-z_]+)", "metadata", "metadata"),
    )
)
