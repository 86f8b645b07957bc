"""The people on both sides: customers, and the org's users (agents) and teams."""

from __future__ import annotations

import polars as pl

from kustomer_assets.entities.columns import identity, snapshot_identity
from kustomer_assets.kustomer import roles
from kustomer_assets.records import ID_LIST, TEXT_LIST, TIMESTAMP, Column, attr
from kustomer_assets.spec import (
    EntitySpec,
    ListSource,
    Reference,
    SearchSource,
)

CUSTOMERS = EntitySpec(
    name="customers",
    kustomer_type="customer",
    source=SearchSource("customer"),
    role=roles.CUSTOMER_READ,
    required=False,
    reference=Reference("conversations", "customer_id"),
    by_id_path="/v1/customers/{id}",
    webhook_events=("customer",),
    description=(
        "Kustomer customers (the people who contact support), one row per version: partition D "
        "holds customers whose last update fell on UTC day D. Take the latest `updated_at` per "
        "`id` for the current profile. Custom customer attributes appear as typed `custom_*` "
        "columns."
    ),
    columns=(
        *identity("customer"),
        attr("name", "name", pl.Utf8, "Full name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown to agents."),
        attr("first_name", "firstName", pl.Utf8, "Given name."),
        attr("last_name", "lastName", pl.Utf8, "Family name."),
        Column(
            "emails",
            ("attributes", "emails", "*", "email"),
            TEXT_LIST,
            "Email addresses, primary first.",
        ),
        Column(
            "phones",
            ("attributes", "phones", "*", "phone"),
            TEXT_LIST,
            "Phone numbers.",
        ),
        attr("locale", "locale", pl.Utf8, "Preferred locale (e.g. en_US)."),
        attr("time_zone", "timeZone", pl.Utf8, "IANA time zone."),
        attr("verified", "verified", pl.Boolean, "Identity verified."),
        attr("gender", "gender", pl.Utf8, "Gender, if recorded."),
        attr("external_id", "externalId", pl.Utf8, "Id in the company's own systems."),
        attr("signed_up_at", "signedUpAt", TIMESTAMP, "Sign-up time in the company's product."),
        attr("last_seen_at", "lastSeenAt", TIMESTAMP, "Last seen in a Kustomer channel."),
        attr("last_activity_at", "lastActivityAt", TIMESTAMP, "Latest activity of any kind."),
        attr("tag_ids", "tags", ID_LIST, "Ids of the tags on the customer."),
        attr("sentiment", "sentiment.polarity", pl.Float64, "Kustomer's sentiment polarity."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
        attr("rev", "rev", pl.Int64, "Kustomer's revision counter."),
    ),
)


USERS = EntitySpec(
    name="users",
    kustomer_type="user",
    source=ListSource("/v1/users", page_size=500),
    role=roles.USER_READ,
    required=False,
    webhook_events=("user",),
    keep_custom=False,
    description=(
        "Kustomer users: agents, admins and machine users. A snapshot of the whole list on "
        "every run, partitioned by the UTC day each user was last updated."
    ),
    columns=(
        *snapshot_identity("user"),
        attr("name", "name", pl.Utf8, "Full name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown to customers."),
        attr("email", "email", pl.Utf8, "Login email."),
        attr("user_type", "userType", pl.Utf8, "user (a person) or machine (API/bot)."),
        attr("role_group_ids", "roleGroups", ID_LIST, "Role groups granting permissions."),
        attr("deleted_at", "deletedAt", TIMESTAMP, "When the user was deactivated."),
    ),
)

TEAMS = EntitySpec(
    name="teams",
    kustomer_type="team",
    source=ListSource("/v1/teams", page_size=500),
    role=roles.TEAM_READ,
    required=False,
    webhook_events=("team",),
    keep_custom=False,
    description="Agent teams and their members; a snapshot of the whole list on every run.",
    columns=(
        *snapshot_identity("team"),
        attr("name", "name", pl.Utf8, "Team name."),
        attr("display_name", "displayName", pl.Utf8, "Name shown in the UI."),
        attr("icon", "icon", pl.Utf8, "Icon name."),
        attr("member_user_ids", "members", ID_LIST, "Agents in the team (user ids)."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
    ),
)
