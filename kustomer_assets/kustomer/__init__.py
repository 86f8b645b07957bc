"""Talking to Kustomer: settings, the HTTP client, rate budgets, roles and errors.

`KustomerClient` (client) is the facade callers hold. Beneath it, by job: `transport` sends one
request (budget, retries, 429s, auth errors via `auth`), `paging` reads list endpoints,
`search` reads search windows, `budget` paces requests, `jsonapi` reads answers and timestamps,
`settings` holds every default once, `stats` counts what a client cost.
"""

from . import roles
from .budget import RateBudget
from .client import ClientStats, KustomerClient
from .errors import (
    KustomerAuthError,
    KustomerConfigError,
    KustomerError,
    KustomerIncompleteError,
    KustomerNotFoundError,
    KustomerPermissionError,
    KustomerRateLimitError,
    KustomerResponseError,
    KustomerServerError,
    parse_error_body,
    redact,
)
from .search import SearchWindow
from .settings import KustomerSettings

__all__ = [
    "ClientStats",
    "KustomerAuthError",
    "KustomerClient",
    "KustomerConfigError",
    "KustomerError",
    "KustomerIncompleteError",
    "KustomerNotFoundError",
    "KustomerPermissionError",
    "KustomerRateLimitError",
    "KustomerResponseError",
    "KustomerServerError",
    "KustomerSettings",
    "RateBudget",
    "SearchWindow",
    "parse_error_body",
    "redact",
    "roles",
]
