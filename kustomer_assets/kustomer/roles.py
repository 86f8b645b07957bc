"""Kustomer role names and which entity needs which, so errors and skips can name the exact role.

Roles cannot be added to an existing API key, so a missing role is only fixable by creating a new
key; the connector therefore names the role precisely rather than reporting a bare 401/403.
"""

from __future__ import annotations

CONVERSATION_READ = "org.permission.conversation.read"
MESSAGE_READ = "org.permission.message.read"
TAG_READ = "org.permission.tag.read"
METADATA_READ = "org.permission.metadata.read"
KLASS_READ = "org.permission.klass.read"
SEARCH_CREATE = "org.permission.search.create"
SEARCH_UPDATE = "org.permission.search.update"
SEARCH_GLOBAL_CREATE = "org.permission.search_global.create"
SEARCH_PREVIEW_CREATE = "org.permission.search_preview.create"
CUSTOMER_READ = "org.permission.customer.read"
TEAM_READ = "org.permission.team.read"
USER_READ = "org.permission.user.read"
NOTE_READ = "org.permission.note.read"
SATISFACTION_READ = "org.permission.satisfaction.read"
BRAND_READ = "org.permission.brand.read"

# Any one of these unlocks POST /v1/customers/search; integration guides ask for all four.
SEARCH_ROLES: tuple[str, ...] = (
    SEARCH_CREATE,
    SEARCH_UPDATE,
    SEARCH_GLOBAL_CREATE,
    SEARCH_PREVIEW_CREATE,
)

# A run fails without these; SEARCH_CREATE stands for "any one of SEARCH_ROLES".
REQUIRED_ROLES: frozenset[str] = frozenset(
    {CONVERSATION_READ, MESSAGE_READ, TAG_READ, METADATA_READ, SEARCH_CREATE}
)

# Entities behind these are skipped with a warning naming the role, never a failed run.
OPTIONAL_ROLES: frozenset[str] = frozenset(
    {
        KLASS_READ,
        CUSTOMER_READ,
        TEAM_READ,
        USER_READ,
        NOTE_READ,
        SATISFACTION_READ,
        BRAND_READ,
    }
)

ALL_ROLES: tuple[str, ...] = (
    *sorted(REQUIRED_ROLES - {SEARCH_CREATE}),
    *SEARCH_ROLES,
    *sorted(OPTIONAL_ROLES),
)
"""Every role the connector may use; which entity needs which lives in the spec table."""


def is_required(role: str) -> bool:
    """True when a missing `role` must fail the run (any search role counts as the search one)."""
    return role in REQUIRED_ROLES or role in SEARCH_ROLES
