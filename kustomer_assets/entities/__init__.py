"""The table of Kustomer entities this project lands, one entry per entity (`ENTITIES`).

An entry is the whole entity (fields explained in `spec.py`): where its records come from (a
search context, a list, or by id from another entity's column), what it follows, which API
role unlocks it and whether a run needs it, its toggle, the key check's probe (derived from
the source), the webhook events that touch it, the columns other assets join on, and how its
attributes become columns. The asset factory, sensors, checks, key check and `feedback` read
these entries; no module outside this package names an entity, so adding one is one entry
here. The entries sit in three files by family: `conversations` (conversations, messages,
notes, CSAT responses), `people` (customers, users, teams) and `catalog` (tags, brands, survey
forms, custom-attribute definitions, KObject classes and KObjects).
"""

from __future__ import annotations

from kustomer_assets.entities.catalog import (
    BRANDS,
    CUSTOM_ATTRIBUTES,
    KLASSES,
    KOBJECTS,
    SATISFACTION_FORMS,
    TAGS,
)
from kustomer_assets.entities.conversations import CONVERSATIONS, MESSAGES, NOTES, SATISFACTION
from kustomer_assets.entities.people import CUSTOMERS, TEAMS, USERS
from kustomer_assets.spec import (
    SNAPSHOT_SOURCES,
    ByIdSource,
    EntitySpec,
    Join,
    ListSource,
    MetadataSource,
    Probe,
    Reference,
    SearchSource,
    Source,
    Toggle,
)

__all__ = [
    "BRANDS",
    "CONVERSATIONS",
    "CUSTOMERS",
    "CUSTOM_ATTRIBUTES",
    "ENTITIES",
    "ENTITIES_BY_NAME",
    "KLASSES",
    "KOBJECTS",
    "MESSAGES",
    "NOTES",
    "SATISFACTION",
    "SATISFACTION_FORMS",
    "SNAPSHOT_SOURCES",
    "TAGS",
    "TEAMS",
    "USERS",
    "ByIdSource",
    "EntitySpec",
    "Join",
    "ListSource",
    "MetadataSource",
    "Probe",
    "Reference",
    "SearchSource",
    "Source",
    "Toggle",
]


ENTITIES: tuple[EntitySpec, ...] = (
    CONVERSATIONS,
    MESSAGES,
    CUSTOMERS,
    NOTES,
    SATISFACTION,
    USERS,
    TEAMS,
    TAGS,
    BRANDS,
    SATISFACTION_FORMS,
    CUSTOM_ATTRIBUTES,
    KLASSES,
    KOBJECTS,
)
ENTITIES_BY_NAME = {spec.name: spec for spec in ENTITIES}
