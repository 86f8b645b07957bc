"""Kustomer role names, so errors and skips can name the exact role.

Roles cannot be added to an existing API key, so a missing role is only fixable by creating a new
key; the connector therefore names the role precisely rather than reporting a bare 401/403.
Which entity needs which role, and whether a run fails without it, is the spec table's to say
(`EntitySpec.role` / `.required`); ask `kustomer_assets.checks.key_check.role_required`. This
module sits below the specs and cannot import them, so it holds names only.
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

ALL_ROLES: tuple[str, ...] = (
    CONVERSATION_READ,
    MESSAGE_READ,
    METADATA_READ,
    TAG_READ,
    *SEARCH_ROLES,
    BRAND_READ,
    CUSTOMER_READ,
    KLASS_READ,
    NOTE_READ,
    SATISFACTION_READ,
    TEAM_READ,
    USER_READ,
)
"""Every role the connector may use; which entity needs which lives in the spec table."""


def object_of(role: str) -> str:
    """The Kustomer object a read role is named after (`org.permission.note.read` -> `note`),
    which is also its search query context."""
    parts = role.split(".")
    return parts[2] if len(parts) == 4 else role
