"""The emulator's settings: the org to generate, its keys, limits, faults, churn and webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .auth import NO_SEARCH_KEY, NO_SEARCH_ROLES
from .search import QUERY_CONTEXTS
from .webhooks import DEFAULT_HEADER as WEBHOOK_HEADER

MERGED_LOOKUP_MODES: tuple[str, ...] = ("survivor", "404")
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503_html", "429", "truncated", "drop", "slow")
DEEP_PAGING_MODES: tuple[str, ...] = ("missing_next", "404", "400")


def _default_fault_kinds() -> dict[str, float]:
    return {"500": 1, "502": 1, "503_html": 1, "429": 1, "truncated": 1, "drop": 1, "slow": 0}


def _default_api_keys() -> dict[str, frozenset[str] | None]:
    return {"emulator-key": None, NO_SEARCH_KEY: NO_SEARCH_ROLES}


ChurnSpec = int | dict[str, int]


def normalize_churn(churn: Any) -> dict[str, dict[str, int]]:
    """{"conversation": 2} or {"conversation": {"change": 2, "create": 1}} -> the second form.

    Raises ValueError on anything else, so a typo in a test fails loudly instead of churning
    nothing.
    """
    if not isinstance(churn, dict):
        raise ValueError("churn must be an object of queryContext -> n or {change, create}")
    out: dict[str, dict[str, int]] = {}
    for ctx, spec in churn.items():
        if ctx not in QUERY_CONTEXTS:
            raise ValueError(f"churn: unknown queryContext {ctx!r}; known: {QUERY_CONTEXTS}")
        if isinstance(spec, bool):
            raise ValueError(f"churn[{ctx!r}] must be an int or {{change, create}}")
        if isinstance(spec, int):
            spec = {"change": spec}
        if not isinstance(spec, dict) or set(spec) - {"change", "create"}:
            raise ValueError(f"churn[{ctx!r}] must be an int or {{change, create}}")
        parsed = {}
        for k in ("change", "create"):
            v = spec.get(k, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"churn[{ctx!r}][{k!r}] must be a non-negative int")
            parsed[k] = v
        if parsed["change"] or parsed["create"]:
            out[ctx] = parsed
    return out


@dataclass
class EmulatorConfig:
    seed: int = 7
    days: int = 30  # history spans `days` days back from `now`
    now: datetime | None = None  # default: utcnow truncated to ms
    scale: float = 1.0  # scale 1 ~ 60 conversations/day, ~5 messages each
    # token -> roles; None = every role. NO_SEARCH_KEY has every read role but no search role.
    api_keys: dict[str, frozenset[str] | None] = field(default_factory=_default_api_keys)
    expired_keys: set[str] = field(default_factory=set)
    wrong_pod_keys: set[str] = field(default_factory=set)
    max_page_size: dict[str, int] = field(
        default_factory=lambda: {"search": 500, "users": 500, "teams": 500, "default": 100}
    )
    search_max_pages: int = 100  # deep-paging wall, in pages (applies to lists too)
    search_max_results: int | None = None  # when set, the wall is this many results instead
    deep_paging_refusal: str = "missing_next"  # or "404" / "400"
    permission_error_status: int = 403  # or 401, as older reference pages describe
    org_rate_limit: int = 1000
    search_rate_limit: int = 100
    rate_window_seconds: float = 60.0
    reset_header_mode: str = "epoch"  # or "seconds" (seconds until the window resets)
    send_retry_after: bool = True
    fault_rate: float = 0.0
    fault_kinds: dict[str, float] = field(default_factory=_default_fault_kinds)
    slow_seconds: float = 2.0
    fault_seed: int = 1
    # queryContext -> records to change (int) or {"change": n, "create": m} after every search
    # page served for that context: the org moving while a client pages.
    churn: dict[str, ChurnSpec] = field(default_factory=dict)
    merged_lookup: str = "survivor"  # GET /v1/customers/{merged loser}: survivor's record or 404
    # Outbound webhooks: mutations POST Kustomer Events here (conversation, customer, message,
    # team, user), the secret in `webhook_header`; POST /__admin/webhooks changes it at runtime.
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_header: str = WEBHOOK_HEADER
    webhook_attempts: int = 6  # Kustomer: ~10 over ~80 min; here 0.25 s doubling, ~8 s in all
    webhook_backoff_seconds: float = 0.25

    def validate(self) -> None:
        if self.merged_lookup not in MERGED_LOOKUP_MODES:
            raise ValueError(f"merged_lookup must be one of {MERGED_LOOKUP_MODES}")
        normalize_churn(self.churn)
        if self.deep_paging_refusal not in DEEP_PAGING_MODES:
            raise ValueError(f"deep_paging_refusal must be one of {DEEP_PAGING_MODES}")
        if self.permission_error_status not in (401, 403):
            raise ValueError("permission_error_status must be 401 or 403")
        if self.reset_header_mode not in ("epoch", "seconds"):
            raise ValueError("reset_header_mode must be 'epoch' or 'seconds'")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
