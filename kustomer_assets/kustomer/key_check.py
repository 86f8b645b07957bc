"""Which roles an API key carries, found by asking Kustomer with the smallest possible requests.

Kustomer exposes no "list my roles" endpoint and a key's roles cannot be edited, so a key made
without, say, `note.read` would otherwise be discovered as a skipped table (or, for a required
role, a failed run) hours into a backfill. Each role is probed with one request of one record on
an endpoint the API notes document, so the check works against any server that follows them,
and every request goes through `KustomerClient`, so budgets, retries and redaction apply.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TextIO

from kustomer_assets.entities import ENTITIES, SearchSource

from . import roles
from .client import SEARCH_PATH, KustomerClient
from .errors import (
    KustomerAuthError,
    KustomerConfigError,
    KustomerError,
    KustomerPermissionError,
    iso_ms,
)
from .settings import ENV_API_KEY, KustomerSettings

Status = Literal["present", "missing", "unknown", "error"]
PRESENT: Status = "present"
MISSING: Status = "missing"
UNKNOWN: Status = "unknown"
ERROR: Status = "error"

SEARCH = "search (any of the four)"
"""Row name for the four search roles: any one of them unlocks the search endpoint."""

EXIT_OK, EXIT_MISSING_REQUIRED, EXIT_CONFIG = 0, 1, 2

_ROLE_IN_TEXT = re.compile(r"org\.permission\.[a-z0-9_]+\.[a-z0-9_]+", re.IGNORECASE)
_SERVER_SAID = re.compile(r"\(Kustomer answered \d+: (.*)\); roles cannot be edited", re.DOTALL)
_MAX_DETAIL = 160
_NEW_KEY = (
    "roles cannot be edited on a key: create a new key in Kustomer "
    "(Settings → Security → API Keys) with"
)


@dataclass(frozen=True)
class Probe:
    """The cheapest documented request that a key without `role` is refused."""

    role: str
    path: str
    query_context: str | None = None  # set for searches: they also need a search role

    @property
    def is_search(self) -> bool:
        return self.query_context is not None

    @property
    def method(self) -> str:
        return "POST" if self.is_search else "GET"

    @property
    def label(self) -> str:
        where = f"{self.method} {self.path}"
        return f"{where} ({self.query_context})" if self.is_search else where


def _search(role: str, context: str) -> Probe:
    return Probe(role, SEARCH_PATH, context)


PROBES: tuple[Probe, ...] = (
    _search(roles.CONVERSATION_READ, "conversation"),
    _search(roles.MESSAGE_READ, "message"),
    Probe(roles.TAG_READ, "/v1/tags"),
    Probe(roles.METADATA_READ, "/v1/metadata/conversation"),
    _search(roles.CUSTOMER_READ, "customer"),
    _search(roles.NOTE_READ, "note"),
    Probe(roles.USER_READ, "/v1/users"),
    Probe(roles.TEAM_READ, "/v1/teams"),
    Probe(roles.KLASS_READ, "/v1/klasses"),
    Probe(roles.SATISFACTION_READ, "/v1/satisfaction"),
    Probe(roles.BRAND_READ, "/v1/brands"),
)
PROBES_BY_ROLE: dict[str, Probe] = {probe.role: probe for probe in PROBES}

# Used only when no entity spec names a role, so every role still says what it is for.
_NOTES_UNLOCKS: dict[str, str] = {
    roles.CONVERSATION_READ: "conversations",
    roles.MESSAGE_READ: "messages",
    roles.TAG_READ: "tags",
    roles.METADATA_READ: "custom-attribute metadata",
    roles.KLASS_READ: "KObject classes and KObjects",
    roles.CUSTOMER_READ: "customers",
    roles.TEAM_READ: "teams",
    roles.USER_READ: "users (agents)",
    roles.NOTE_READ: "internal notes",
    roles.SATISFACTION_READ: "CSAT / satisfaction",
    roles.BRAND_READ: "brands",
    SEARCH: "search-based entities",
}


def unlocks(role: str) -> tuple[str, ...]:
    """Tables the role opens: the entity specs that name it (the search row: searched ones)."""
    if role == SEARCH:
        names = [spec.name for spec in ENTITIES if isinstance(spec.source, SearchSource)]
    else:
        names = [spec.name for spec in ENTITIES if spec.role == role]
    return tuple(names) or ((_NOTES_UNLOCKS[role],) if role in _NOTES_UNLOCKS else ())


def is_required(role: str) -> bool:
    """Required when the role constants say so or any entity spec needing it is required."""
    if role == SEARCH:
        return True
    return roles.is_required(role) or any(s.required for s in ENTITIES if s.role == role)


@dataclass(frozen=True)
class RoleRow:
    """One line of the report; `needs` names the row whose absence made this one unknowable."""

    role: str
    required: bool
    status: Status
    unlocks: tuple[str, ...]
    detail: str = ""
    needs: str | None = None

    @property
    def status_text(self) -> str:
        if not self.needs:
            return self.status
        return f"{self.status} (needs {'search' if self.needs == SEARCH else self.needs})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "required": self.required,
            "status": self.status,
            "unlocks": list(self.unlocks),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class KeyReport:
    """What the key can read, plus what finding out cost against the org's request budget."""

    rows: tuple[RoleRow, ...]
    requests: int
    api_root: str = ""
    user: str | None = None

    def row(self, role: str) -> RoleRow:
        for row in self.rows:
            if row.role == role:
                return row
        raise KeyError(role)

    @property
    def missing_required(self) -> list[RoleRow]:
        return [r for r in self.rows if r.required and r.status == MISSING]

    @property
    def missing_optional(self) -> list[RoleRow]:
        return [r for r in self.rows if not r.required and r.status == MISSING]

    @property
    def errors(self) -> list[RoleRow]:
        return [r for r in self.rows if r.status == ERROR]

    @property
    def ok(self) -> bool:
        """False only when a required role is missing or cannot be probed because of one."""
        missing = {r.role for r in self.missing_required}
        blocked = [r for r in self.rows if r.required and r.status == UNKNOWN and r.needs]
        return not missing and not any(r.needs in missing for r in blocked)

    def format_table(self) -> str:
        header = ("ROLE", "NEEDED", "STATUS", "UNLOCKS", "DETAIL")
        body = [
            (
                r.role,
                "required" if r.required else "optional",
                r.status_text,
                ", ".join(r.unlocks),
                r.detail,
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header) - 1)]
        lines = []
        for line in (header, *body):
            cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            lines.append("  ".join([*cells, line[-1]]).rstrip())
        who = f" as {self.user}" if self.user else ""
        where = f" on {self.api_root}" if self.api_root else ""
        title = f"Kustomer API key roles{where}{who} ({self.requests} requests)"
        return "\n".join([title, "", *lines, "", self.summary()])

    def summary(self) -> str:
        """The closing sentence: what is missing and, when a run would fail, how to fix it."""
        required, optional = self.missing_required, self.missing_optional
        unknown = [r for r in self.rows if r.status == UNKNOWN]
        if not required and not optional and not unknown:
            n_req = sum(r.required for r in self.rows)
            text = f"All {n_req} required and {len(self.rows) - n_req} optional roles are present."
        else:
            names = ", ".join(r.role for r in [*required, *optional])
            text = f"{len(required)} required and {len(optional)} optional roles missing"
            text += f" ({names})" if names else ""
            if unknown:
                text += f", {len(unknown)} unknown ({', '.join(r.role for r in unknown)})"
            if required:
                search_role = f"{roles.SEARCH_CREATE} (or another search role)"
                needed = [search_role if r.role == SEARCH else r.role for r in self.rows]
                needed = [n for n, r in zip(needed, self.rows, strict=True) if r.required]
                extra = [r.role for r in self.rows if not r.required]
                text += (
                    f"; {_NEW_KEY} {', '.join(needed)} (plus the optional roles to keep or add: "
                    f"{', '.join(extra)}) and set {ENV_API_KEY}."
                )
            elif optional:
                tables = ", ".join(t for r in optional for t in r.unlocks)
                text += (
                    f": runs work, but {tables} are skipped with a warning; to land them, create "
                    f"a new key in Kustomer (Settings → Security → API Keys) with those roles too."
                )
            else:
                text += "."
        if self.errors:
            failed = ", ".join(r.role for r in self.errors)
            text += (
                f" {len(self.errors)} roles could not be checked ({failed}): see DETAIL and run "
                f"the check again."
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "requests": self.requests,
            "rows": [row.as_dict() for row in self.rows],
        }


# ----------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class _Outcome:
    """What one probe saw: success, a refusal (with any roles the server named), or an error."""

    probe: Probe
    kind: Literal["ok", "refused", "error"]
    named: frozenset[str] = frozenset()
    detail: str = ""

    @property
    def named_search(self) -> bool:
        return bool(self.named & set(roles.SEARCH_ROLES))


def _one_line(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _search_body(context: str) -> dict[str, Any]:
    # A recent, bounded window keeps the probe cheap for the server as well as for us.
    field = f"{context}_updated_at"
    since = datetime.now(UTC) - timedelta(days=1)
    return {"queryContext": context, "and": [{field: {"gte": iso_ms(since)}}]}


def run_probe(client: KustomerClient, probe: Probe) -> _Outcome:
    """One request of one record; a refusal keeps the roles the server's text named.

    The client is given no role, so the only role names in its permission error are the
    server's own: that is what lets a search refused for lack of a search role be told apart
    from one refused for lack of the context's read role. KustomerAuthError propagates: a bad
    key is not a missing role.
    """
    search = _search_body(probe.query_context) if probe.query_context is not None else None
    try:
        client.first_page(probe.path, search_body=search)
    except KustomerPermissionError as exc:
        said = _SERVER_SAID.search(exc.message)
        server = said.group(1) if said else ""
        named = frozenset(m.lower() for m in _ROLE_IN_TEXT.findall(server or exc.message))
        detail = f"{exc.status or 'refused'} on {probe.label}"
        if named:
            detail += f", naming {', '.join(sorted(named))}"
        elif server:
            detail += f": {server}"
        detail = _one_line(detail)
        return _Outcome(probe, "refused", named, detail)
    except KustomerAuthError:
        raise
    except KustomerError as exc:
        return _Outcome(probe, "error", detail=_one_line(str(exc)))
    return _Outcome(probe, "ok", detail=f"{probe.label} answered")


def _role_row(outcome: _Outcome, search: RoleRow | None) -> RoleRow:
    """Classify one probe; `search` (the search row, when known) settles unnamed refusals."""
    probe = outcome.probe
    role = probe.role
    make = _row_factory(role)
    if outcome.kind == "ok":
        return make(PRESENT, "")
    if outcome.kind == "error":
        return make(ERROR, outcome.detail)
    if role in outcome.named or not probe.is_search:
        return make(MISSING, outcome.detail)
    search_missing = outcome.named_search or (search is not None and search.status == MISSING)
    if search_missing:
        return make(UNKNOWN, "cannot search without a search role", needs=SEARCH)
    if outcome.named:
        other = ", ".join(sorted(outcome.named))
        return make(UNKNOWN, f"refused for {other}: {outcome.detail}")
    if search is not None and search.status == PRESENT:
        return make(MISSING, outcome.detail)
    return make(
        MISSING,
        _one_line(f"{outcome.detail} (no role named: the key lacks {role} or every search role)"),
    )


def _row_factory(role: str) -> Callable[..., RoleRow]:
    def make(status: Status, detail: str, needs: str | None = None) -> RoleRow:
        return RoleRow(role, is_required(role), status, unlocks(role), detail, needs)

    return make


def _search_row(outcomes: Iterable[_Outcome]) -> RoleRow:
    """Any successful search proves a search role; a refusal naming one proves it missing."""
    searches = [o for o in outcomes if o.probe.is_search]
    make = _row_factory(SEARCH)
    ok = [o for o in searches if o.kind == "ok"]
    if ok:
        return make(PRESENT, f"{ok[0].probe.label} answered")
    named = [o for o in searches if o.named_search]
    if named:
        return make(MISSING, named[0].detail)
    errors = [o for o in searches if o.kind == "error"]
    if errors:
        return make(ERROR, errors[0].detail)
    if searches and all(o.kind == "refused" and not o.named for o in searches):
        # Either no search role or no context role at all; both are required, and no search
        # role is by far the likelier of the two.
        return make(MISSING, "every search was refused without naming a role")
    return make(UNKNOWN, "no search succeeded or named a search role")


def check_role(client: KustomerClient, role: str) -> RoleRow:
    """Probe one role only (the asset checks use it: one request per entity)."""
    if role in roles.SEARCH_ROLES or role == SEARCH:
        outcome = run_probe(client, PROBES_BY_ROLE[roles.CONVERSATION_READ])
        return _search_row([outcome])
    probe = PROBES_BY_ROLE.get(role)
    if probe is None:
        raise ValueError(f"no probe for role {role!r}; known: {', '.join(PROBES_BY_ROLE)}")
    return _role_row(run_probe(client, probe), None)


def check_key(client: KustomerClient) -> KeyReport:
    """Prove the key works, then probe every role the connector uses (about a dozen requests).

    Raises KustomerAuthError when GET /v1/users/current answers 401 (bad, expired or wrong-pod
    key), and any other KustomerError from that first request: nothing else can be judged then.
    """
    before = client.stats.requests
    user: str | None = None
    try:
        attributes = client.current_user().get("attributes") or {}
        user = attributes.get("displayName") or attributes.get("name") or None
    except KustomerPermissionError:
        pass  # 403 on users/current: the key authenticated, it just may not read users
    outcomes = [run_probe(client, probe) for probe in PROBES]
    search = _search_row(outcomes)
    by_role = {o.probe.role: _role_row(o, search) for o in outcomes}
    probed = [by_role[p.role] for p in PROBES]
    rows = [*(r for r in probed if r.required), search, *(r for r in probed if not r.required)]
    return KeyReport(
        rows=tuple(rows),
        requests=client.stats.requests - before,
        api_root=client.settings.api_root,
        user=str(user) if user else None,
    )


# ----------------------------------------------------------------------------- command


def run_command(
    environ: Mapping[str, str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`kustomer-assets check`: the table on stdout, one sentence on stderr when it cannot run.

    Exit codes: 0 the key has every required role, 1 a required role is missing, 2 the settings
    or the key itself are unusable (or Kustomer could not be reached at all).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = KustomerSettings.from_env(environ)
        with KustomerClient(settings) as client:
            report = check_key(client)
    except (KustomerConfigError, KustomerAuthError) as exc:
        print(f"kustomer-assets check: {exc}", file=err)
        return EXIT_CONFIG
    except KustomerError as exc:
        print(f"kustomer-assets check: could not reach Kustomer: {exc}", file=err)
        return EXIT_CONFIG
    print(report.format_table(), file=out)
    return EXIT_OK if report.ok else EXIT_MISSING_REQUIRED


__all__ = [
    "ERROR",
    "MISSING",
    "PRESENT",
    "PROBES",
    "SEARCH",
    "UNKNOWN",
    "KeyReport",
    "Probe",
    "RoleRow",
    "check_key",
    "check_role",
    "is_required",
    "run_command",
    "run_probe",
    "unlocks",
]
