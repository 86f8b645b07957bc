"""The key check's report: one row per role (the search roles share one), its statuses, and
its rendering as the table `kustomer-assets check` prints and the job logs.

What a row means decides the exit code, so it lives here, in one place: `KeyReport.ok` is False
only when a required role is missing or cannot be probed because of one; an optional role
missing is a warning (its tables are skipped), and an error is "check again".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from kustomer_assets.checks.key_check.probes import SEARCH
from kustomer_assets.kustomer import roles
from kustomer_assets.kustomer.settings import ENV_API_KEY

Status = Literal["present", "missing", "unknown", "error"]
PRESENT: Status = "present"
MISSING: Status = "missing"
UNKNOWN: Status = "unknown"
ERROR: Status = "error"

_NEW_KEY = (
    "roles cannot be edited on a key: create a new key in Kustomer "
    "(Settings → Security → API Keys) with"
)


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


__all__ = ["ERROR", "MISSING", "PRESENT", "UNKNOWN", "KeyReport", "RoleRow", "Status"]
