"""Talking to Kustomer: settings, the HTTP client, rate budgets, roles and errors."""

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
