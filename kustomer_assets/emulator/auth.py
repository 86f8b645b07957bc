"""API keys and roles: who may call what, and the errors a key without a role gets.

Keys are role-scoped like Kustomer's: `NO_SEARCH_KEY` has every read role but no search role (the
key a connector must diagnose, not crash on); expired and wrong-pod keys answer 401. A missing role
answers `permission_error_status` naming the role, in the error shape of the endpoint called.
"""

from __future__ import annotations

import json
from typing import Any

from .base import EmulatorBase
from .responses import _error, _HttpError
from .routing_table import _Route

SEARCH_ROLES: tuple[str, ...] = (
    "org.permission.search.create",
    "org.permission.search.update",
    "org.permission.search_global.create",
    "org.permission.search_preview.create",
)
READ_ROLES: dict[str, str] = {
    "conversation": "org.permission.conversation.read",
    "message": "org.permission.message.read",
    "customer": "org.permission.customer.read",
    "note": "org.permission.note.read",
    "kobject": "org.permission.klass.read",
    "klass": "org.permission.klass.read",
    "company": "org.permission.company.read",
    "user": "org.permission.user.read",
    "team": "org.permission.team.read",
    "tag": "org.permission.tag.read",
    "brand": "org.permission.brand.read",
    "satisfaction": "org.permission.satisfaction.read",
    "satisfaction_response": "org.permission.satisfaction.read",
    "metadata": "org.permission.metadata.read",
}
# Every read role but no search role: the key a connector must diagnose, not crash on.
NO_SEARCH_KEY = "emulator-key-no-search"
NO_SEARCH_ROLES: frozenset[str] = frozenset(READ_ROLES.values())
WRONG_POD_MESSAGE = "Auth token associated with pod prod2 but request is being handled by prod1"


def _peek_context(body: bytes) -> str | None:
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return None
    return parsed.get("queryContext") if isinstance(parsed, dict) else None


class AuthMixin(EmulatorBase):
    """Authentication and role checks of `Emulator` (mixed into it)."""

    def _authenticate(self, headers: Any) -> frozenset[str] | None:
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if token and token in self.config.expired_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": "Expired token"})
        if token and token in self.config.wrong_pod_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": WRONG_POD_MESSAGE})
        if not token or token not in self.config.api_keys:
            raise _HttpError(401, {"code": "unauthorized", "message": "Unauthorized"})
        return self.config.api_keys[token]

    def _authorize(self, roles: frozenset[str] | None, route: _Route, body: bytes) -> None:
        if roles is None:
            return
        needed: list[str] = []
        if route.search:
            if not roles.intersection(SEARCH_ROLES):
                needed.append(SEARCH_ROLES[0])
            ctx = _peek_context(body)
            if ctx in READ_ROLES and READ_ROLES[ctx] not in roles:
                needed.append(READ_ROLES[ctx])
        elif route.role and route.role not in roles:
            needed.append(route.role)
        if not needed:
            return
        self._count("permission_errors")
        status = self.config.permission_error_status
        message = f"Forbidden: the API key is missing the role {needed[0]}"
        raise _error(
            status,
            "forbidden" if status == 403 else "unauthorized",
            message,
            jsonapi=route.search,
            meta={"role": needed[0], "roles": needed},
        )
