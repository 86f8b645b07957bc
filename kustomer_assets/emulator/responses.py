"""Response plumbing shared by every endpoint: the response value, HTTP errors and their bodies.

Search answers JSON:API `errors`; most other endpoints answer `{code, message, meta}`; `_error`
builds either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    action: str = "normal"  # "normal" | "truncate" | "drop"


class _HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _error(
    status: int, code: str, message: str, *, jsonapi: bool, meta: dict[str, Any] | None = None
) -> _HttpError:
    """Search answers JSON:API `errors`; most other endpoints answer {code, message, meta}."""
    if jsonapi:
        err: dict[str, Any] = {
            "status": status,
            "code": code,
            "title": _TITLES.get(status, "Error"),
            "detail": message,
        }
        if meta:
            err["meta"] = meta
        return _HttpError(status, {"errors": [err]})
    return _HttpError(status, {"code": code, "message": message, "meta": meta or {}})
