"""Connection settings for the Kustomer API, validated before any request is sent.

Validation exists so that a typo in an environment variable fails fast with one sentence that
names the variable to fix, instead of surfacing later as a DNS error or, worse, sending the
key in clear text to a non-loopback host.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import KustomerConfigError

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")

ENV_SUBDOMAIN = "KUSTOMER_SUBDOMAIN"
ENV_API_KEY = "KUSTOMER_API_KEY"
ENV_BASE_URL = "KUSTOMER_BASE_URL"

VERIFY_MODES = ("auto", "always")
"""The values of `search_verify` (see the field)."""


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_hostname(host: str) -> bool:
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def _shown(value: str, limit: int = 60) -> str:
    """Quote a (non-secret) user value for an error sentence without flooding the message."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


@dataclass(frozen=True)
class KustomerSettings:
    """Everything the client needs, with budgets that use what is the connector's to use.

    The two rate budgets are not alike. The search budget (100 searches/min) is the API key's,
    and the key is the connector's own (README: create one for it), so the default spends 90 of
    it, keeping a tenth as head-room. The org budget is shared with every other app and key of
    the org, so the connector takes a configurable share: 500/min, half of the Enterprise plan's
    1,000 (lower it on smaller plans). Both are per rate window, a minute at Kustomer; the
    budget also follows the server's `x-ratelimit-*` headers (`budget`): a lower limit than
    these is adopted, and a window the server says is spent is waited out, not sent into a 429.

    The one place the defaults are written: the Dagster resource's fields and the environment
    reader take theirs from this class (`KustomerSettings.search_page_size` is the default),
    so a default changed here changes everywhere."""

    subdomain: str = ""
    api_key: str = field(default="", repr=False)
    base_url: str | None = None
    search_page_size: int = 500
    list_page_size: int = 100
    org_requests_per_minute: int = 500
    """The connector's share of the org-wide budget every app and key of the org draws on."""
    search_requests_per_minute: int = 90
    """90% of the API key's own 100 searches/min: the key is the connector's."""
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_rate_limit_wait_seconds: float = 900.0
    rate_limit_reserve: int = 2
    search_verify: str = "auto"
    """After a search window: "auto" lists ids only when counts show that something moved
    during the run (one extra request for a quiet window); "always" lists them every time."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> KustomerSettings:
        """Read the three connection variables; other fields come from `overrides` or defaults."""
        env = os.environ if environ is None else environ
        base_url = (env.get(ENV_BASE_URL) or "").strip() or None
        values: dict[str, object] = {
            "subdomain": (env.get(ENV_SUBDOMAIN) or "").strip(),
            "api_key": env.get(ENV_API_KEY) or "",
            "base_url": base_url,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    def validate(self) -> None:
        """Raise KustomerConfigError with one actionable sentence for the first problem found."""
        key = self.api_key or ""
        if not key.strip():
            raise KustomerConfigError(
                f"{ENV_API_KEY} is empty: create an API key in Kustomer Settings → Security → "
                f"API Keys and set {ENV_API_KEY} to it."
            )
        if any(ch.isspace() for ch in key):
            raise KustomerConfigError(
                f"{ENV_API_KEY} contains whitespace (a stray space, newline or 'Bearer ' prefix?): "
                f"set {ENV_API_KEY} to the bare key exactly as Kustomer showed it."
            )
        if self.base_url:
            self._validate_base_url(self.base_url)
        else:
            sub = self.subdomain or ""
            if not sub:
                raise KustomerConfigError(
                    f"{ENV_SUBDOMAIN} is not set: set it to your org's subdomain (the 'acme' in "
                    f"acme.kustomerapp.com), or set {ENV_BASE_URL} to the full API URL."
                )
            if not _LABEL.match(sub):
                raise KustomerConfigError(
                    f"{ENV_SUBDOMAIN} must be a single DNS label (letters, digits and hyphens, "
                    f"1-63 characters, not starting or ending with a hyphen) such as 'acme', "
                    f"got {_shown(sub)}; to use a full URL set {ENV_BASE_URL} instead."
                )
        positive_ints = ("search_page_size", "list_page_size")
        positive_ints += ("org_requests_per_minute", "search_requests_per_minute")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise KustomerConfigError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("timeout_seconds", "backoff_base_seconds", "backoff_max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise KustomerConfigError(f"{name} must be a positive number, got {value!r}.")
        for name in ("max_retries", "rate_limit_reserve"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise KustomerConfigError(f"{name} must be an integer of 0 or more, got {value!r}.")
        if self.search_verify not in VERIFY_MODES:
            raise KustomerConfigError(
                f"search_verify must be 'auto' or 'always', got {self.search_verify!r}."
            )
        value = self.max_rate_limit_wait_seconds
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise KustomerConfigError(
                f"max_rate_limit_wait_seconds must be a number of 0 or more, got {value!r}."
            )
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise KustomerConfigError(
                f"backoff_max_seconds ({self.backoff_max_seconds!r}) must not be smaller than "
                f"backoff_base_seconds ({self.backoff_base_seconds!r})."
            )

    @staticmethod
    def _validate_base_url(url: str) -> None:
        try:
            parts = urlsplit(url.strip())
            host = parts.hostname or ""
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError:
            parts, host = None, ""
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise KustomerConfigError(
                f"{ENV_BASE_URL} must be a full URL such as https://api.prod2.kustomerapp.com, "
                f"got {_shown(url)}."
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise KustomerConfigError(
                f"{ENV_BASE_URL} must not contain credentials, a query or a fragment: use only "
                f"scheme, host and optional path, such as https://api.prod2.kustomerapp.com."
            )
        if not _valid_hostname(host):
            raise KustomerConfigError(
                f"{ENV_BASE_URL} has an invalid host name {_shown(host)}: use a host such as "
                f"api.prod2.kustomerapp.com."
            )
        if parts.scheme != "https" and not _is_loopback(host):
            raise KustomerConfigError(
                f"{ENV_BASE_URL} must start with https:// (plain http:// is allowed only for "
                f"localhost/127.0.0.1/::1, so the API key never travels unencrypted), got "
                f"{_shown(url)}."
            )

    @property
    def api_root(self) -> str:
        """Scheme + host (+ optional path prefix) without a trailing slash or a trailing /v1."""
        if self.base_url:
            root = self.base_url.strip().rstrip("/")
            if root.lower().endswith("/v1"):
                root = root[:-3].rstrip("/")
            return root
        return f"https://{self.subdomain.lower()}.api.kustomerapp.com"

    def __repr__(self) -> str:  # explicit so no future field change can print the key
        return (
            f"KustomerSettings(subdomain={self.subdomain!r}, base_url={self.base_url!r}, "
            f"search_page_size={self.search_page_size}, list_page_size={self.list_page_size})"
        )
