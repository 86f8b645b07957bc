"""Exception hierarchy, error-body parsing and secret redaction.

Every message is built from server text that we do not control (a server may echo the token it
was sent), so each exception redacts registered keys and anything that looks like a bearer token
when it is constructed: there is no code path that can put a key into a message or traceback.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from kustomer_assets.timestamps import iso_ms

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([^\s\"',;]+)")
_ASSIGNED = re.compile(r"(?i)\b(authorization|api[_-]?key|token)(\s*[:=]\s*)([^\s\"',;]+)")
_LONG_TOKEN = re.compile(r"(?i)\b(token|key)(\s+)([A-Za-z0-9._~+/=-]{20,})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*)?")
_POD = re.compile(r"associated with pod\s+['\"]?([a-z0-9-]+)", re.IGNORECASE)
_MAX_MESSAGE = 300


def register_secret(secret: str | None) -> None:
    """Remember a value that must never appear in any exception or log message."""
    if secret and secret.strip():
        with _SECRETS_LOCK:
            _SECRETS.add(secret)
            _SECRETS.add(secret.strip())


def redact(text: object, extra: Iterable[str] = ()) -> str:
    """Remove registered secrets, bearer tokens and JWT-like strings from `text`."""
    out = str(text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS | {s for s in extra if s}, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, _REDACTED)
    for pattern in (_BEARER, _ASSIGNED, _LONG_TOKEN):
        out = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{_REDACTED}", out)
    return _JWT.sub(_REDACTED, out)


class KustomerError(Exception):
    """Base class; the message is redacted on construction so it can be logged anywhere."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.status = status
        self.method = method
        self.endpoint = endpoint
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take structured arguments, so rebuild from state rather than from args.
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))


def _rebuild_error(cls: type[KustomerError], message: str, state: dict[str, Any]) -> KustomerError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class KustomerConfigError(KustomerError):
    """Settings are unusable; raised before any request leaves the machine."""


class KustomerAuthError(KustomerError):
    """The key itself is rejected (bad, expired, revoked, or used against the wrong pod)."""

    def __init__(self, message: str, *, pod: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.pod = pod


class KustomerPermissionError(KustomerError):
    """The key is valid but lacks a role; roles cannot be added to an existing key."""

    def __init__(
        self,
        role: str | None,
        endpoint: str,
        *,
        method: str = "GET",
        status: int | None = None,
        detail: str | None = None,
        search: bool = False,
    ) -> None:
        self.role = role
        head, _, rest = endpoint.partition(" ")
        if rest and head.isupper():
            method, endpoint = head, rest
        where = f"{method} {endpoint}"
        said = f" (Kustomer answered {status}: {detail})" if status and detail else ""
        if role and search:
            # The server did not say which one refused: a search needs both.
            message = (
                f"The API key lacks the role {role} or a search role (org.permission.search."
                f"create) needed for {where}{said}; roles cannot be edited on a key: create a "
                f"new key in Kustomer Settings → Security → API Keys with both roles and set "
                f"KUSTOMER_API_KEY."
            )
        elif role:
            message = (
                f"The API key lacks the role {role} needed for {where}{said}; roles cannot be "
                f"edited on a key: create a new key in Kustomer Settings → Security → API Keys "
                f"with this role and set KUSTOMER_API_KEY."
            )
        else:
            message = (
                f"The API key lacks a role needed for {where}{said}; roles cannot be edited on a "
                f"key: create a new key in Kustomer Settings → Security → API Keys with the "
                f"missing role and set KUSTOMER_API_KEY."
            )
        super().__init__(message, status=status, method=method, endpoint=endpoint)


class KustomerRateLimitError(KustomerError):
    """Kustomer kept answering 429 for longer than max_rate_limit_wait_seconds."""


class KustomerServerError(KustomerError):
    """5xx answers or transport failures persisted through every retry."""


class KustomerResponseError(KustomerError):
    """An unexpected 4xx, a redirect, or a malformed body that retries did not cure."""


class KustomerNotFoundError(KustomerResponseError):
    """404 for a single resource (for example a deleted satisfaction response)."""


class KustomerIncompleteError(KustomerError):
    """A search window could not be paged completely, so its data must not be trusted."""

    def __init__(
        self,
        query_context: str,
        start: datetime,
        end: datetime,
        *,
        reported_total: int | None,
        received: int,
        reason: str,
    ) -> None:
        self.query_context = query_context
        self.start = start
        self.end = end
        self.reported_total = reported_total
        self.received = received
        total = "unknown" if reported_total is None else str(reported_total)
        message = (
            f"Search for {query_context} records updated in [{iso_ms(start)}, {iso_ms(end)}) is "
            f"incomplete: Kustomer reported {total} records, {received} were received ({reason}); "
            f"retry later or use a smaller window."
        )
        super().__init__(message, method="POST", endpoint="/v1/customers/search")


def _strip_html(text: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<!--.*?-->", " ", text)
    text = re.sub(r"(?s)<[^>]+>", " ", text)
    return html.unescape(text)


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "detail", "title", "error", "code"):
            if value.get(key):
                return _as_text(value[key])
    return json.dumps(value, default=str)


def message_from_json(payload: Any) -> str | None:
    """Extract a human message from the three JSON error shapes Kustomer is known to use."""
    if not isinstance(payload, dict):
        return None
    errors = payload.get("errors")
    if isinstance(errors, list) and errors:
        parts = []
        for item in errors:
            if not isinstance(item, dict):
                parts.append(_as_text(item))
                continue
            text = item.get("detail") or item.get("title") or item.get("message") or ""
            code = item.get("code")
            text = _as_text(text)
            if code and str(code) not in text:
                text = f"{text} ({code})" if text else str(code)
            if text:
                parts.append(text)
        return "; ".join(parts) or None
    message = payload.get("message")
    error = payload.get("error")
    code = payload.get("code")
    if message:
        text = _as_text(message)
        label = _as_text(error) if error else (str(code) if code else "")
        if label and label not in text:
            text = f"{label}: {text}"
        return text
    if error:
        return _as_text(error)
    if code:
        return str(code)
    return None


def parse_error_body(response: Any) -> str:
    """One short, redacted line describing what the server said, whatever the body shape."""
    try:
        raw = response.text
    except Exception:  # an unread streaming body or undecodable bytes
        raw = ""
    text: str | None = None
    stripped = (raw or "").strip()
    if stripped[:1] in ("{", "["):
        try:
            text = message_from_json(json.loads(stripped))
        except ValueError:
            text = None
        if text is None and stripped:
            text = stripped
    elif stripped:
        text = _strip_html(stripped) if "<" in stripped else stripped
    if not text or not text.strip():
        reason = getattr(response, "reason_phrase", "") or ""
        text = reason or "(empty body)"
    return redact(_clip(text))


_ROLE = re.compile(r"org\.permission\.[a-z0-9_]+(?:\.[a-z0-9_]+)?", re.IGNORECASE)


def role_named_by(response: Any) -> str | None:
    """The role a 401/403 body names as missing (in `meta.role` or in its text), if any.

    A search needs a search role *and* the read role of its context, and a key may lack
    either: only the server knows which one refused, so believe it when it says.
    """
    try:
        payload = response.json()
    except Exception:  # not JSON: look at the text
        payload = None
    items: list[Any] = []
    if isinstance(payload, dict):
        items.append(payload)
        errors = payload.get("errors")
        if isinstance(errors, list):
            items.extend(errors)
    for item in items:
        meta = item.get("meta") if isinstance(item, dict) else None
        named = meta.get("role") if isinstance(meta, dict) else None
        if isinstance(named, str) and _ROLE.fullmatch(named.strip()):
            return named.strip()
    try:
        text = response.text or ""
    except Exception:
        text = ""
    match = _ROLE.search(text)
    return match.group(0) if match else None


def pod_from_message(message: str) -> str | None:
    """The pod named by Kustomer's wrong-pod error ("Auth token associated with pod prod2 ...")."""
    match = _POD.search(message or "")
    return match.group(1).lower() if match else None


def pod_url(pod: str) -> str:
    return "https://api.kustomerapp.com" if pod == "prod1" else f"https://api.{pod}.kustomerapp.com"


def describe(status: int, method: str, endpoint: str, server_message: str) -> str:
    return f"Kustomer answered {status} to {method} {endpoint}: {server_message}"
