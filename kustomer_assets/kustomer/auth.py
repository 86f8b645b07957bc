"""What a 401 or 403 means: a bad key, a key used on the wrong pod, or a missing role.

Kustomer answers all three with the same statuses, and the remedies differ (a new key, another
base URL, a new key with more roles), so a refusal is turned into the error that names the
right one. A 401 on one endpoint while `GET /v1/users/current` succeeds is a missing role, not a
bad key (see the API notes, "Roles"): the key is probed once per client to tell them apart.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from . import budget as budget_mod
from . import roles
from .errors import (
    KustomerAuthError,
    KustomerError,
    KustomerPermissionError,
    parse_error_body,
    pod_from_message,
    pod_url,
    role_named_by,
)
from .search.body import SEARCH_PATH, search_body
from .settings import ENV_API_KEY, ENV_BASE_URL

if TYPE_CHECKING:
    from .transport import Transport

CURRENT_USER_PATH = "/v1/users/current"
"""The cheapest request that proves a key works (the API notes' key check)."""


CONTROL_ROLE = roles.CONVERSATION_READ
"""A read role every usable key carries (a run fails without it), so a search in its object's
context tells a missing search role from a missing read role."""


class KeyGuard:
    """Whether one client's key is good, learned at most once, and the refusal errors."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.key_ok: bool | None = None
        """True once the key is proven good, False once Kustomer rejected it, None before."""
        self._probe_lock = threading.Lock()

    def current_user(self) -> dict[str, Any]:
        """GET /v1/users/current (its `data`); success also proves the key."""
        payload = self._transport.get(CURRENT_USER_PATH, expect="object")
        self.key_ok = True
        return payload["data"]

    def raise_refusal(
        self,
        response: httpx.Response,
        method: str,
        plain: str,
        role: str | None,
        body: Any = None,
    ) -> NoReturn:
        """Raise the error a 401/403 to `method plain` stands for; `role` is the role the
        caller expected the request to need, `body` the request's JSON (a search's body
        tells which read role its context needs)."""
        status = response.status_code
        server = parse_error_body(response)
        pod = pod_from_message(server)
        if pod:
            url = pod_url(pod)
            raise KustomerAuthError(
                f"Kustomer answered {status} to {method} {plain}: {server}; your org is on "
                f"{pod}: set {ENV_BASE_URL} to {url}",
                pod=pod,
                status=status,
                method=method,
                endpoint=plain,
            )
        is_probe = plain.rstrip("/") == CURRENT_USER_PATH
        if (is_probe and status == 401) or "expired" in server.lower():
            self.key_ok = False
            hint = (
                "the key has expired: create a new key"
                if "expired" in server.lower()
                else "check that the key is current and complete, or create a new key"
            )
            raise KustomerAuthError(
                f"Kustomer rejected the API key ({status} to {method} {plain}: {server}); "
                f"{hint} in Kustomer Settings → Security → API Keys and set {ENV_API_KEY}.",
                status=status,
                method=method,
                endpoint=plain,
            )
        if not is_probe:
            self._ensure_key_valid()
        named = role_named_by(response)
        if named is None and plain == SEARCH_PATH:
            named = self._which_search_role(body, role)
        raise KustomerPermissionError(
            named or role,
            plain,
            method=method,
            status=status,
            detail=server,
            search=plain == SEARCH_PATH and named is None,
        )

    def _which_search_role(self, body: Any, role: str | None) -> str | None:
        """A refused search whose answer names no role lacks either a search role or the read
        role of its context. One conversation search (whose read role is required anyway)
        tells them apart: refused too, the search role is missing."""
        context = body.get("queryContext") if isinstance(body, dict) else None
        if role in (None, *roles.SEARCH_ROLES):
            return roles.SEARCH_CREATE
        control = roles.object_of(CONTROL_ROLE)
        if context in (None, control):
            return None
        probe = search_body(control, sort=False)
        try:
            self._transport.post(
                SEARCH_PATH, probe, {"page": 1, "pageSize": 1}, kind=budget_mod.ORG
            )
        except KustomerPermissionError as exc:
            return exc.role if exc.role in roles.SEARCH_ROLES else roles.SEARCH_CREATE
        except KustomerError:
            return None
        return role

    def _ensure_key_valid(self) -> None:
        """Probe users/current once per client to tell a missing role from a bad key."""
        with self._probe_lock:
            if self.key_ok is True:
                return
            if self.key_ok is False:
                raise KustomerAuthError(
                    f"Kustomer rejected the API key on {CURRENT_USER_PATH}; create a new key in "
                    f"Kustomer Settings → Security → API Keys and set {ENV_API_KEY}.",
                    endpoint=CURRENT_USER_PATH,
                )
            try:
                self.current_user()
            except KustomerAuthError:
                self.key_ok = False
                raise
            except KustomerPermissionError:
                # Authenticated but not allowed to read users: the key itself is fine.
                self.key_ok = True


__all__ = ["CURRENT_USER_PATH", "KeyGuard"]
