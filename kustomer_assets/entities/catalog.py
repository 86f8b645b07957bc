"""What records are labelled with or shaped by: tags, brands, survey forms, custom-attribute
definitions, and custom objects (KObjects) with their classes."""

from __future__ import annotations

import polars as pl

from kustomer_assets.entities.columns import identity, snapshot_identity
from kustomer_assets.kustomer import roles
from kustomer_assets.records import TEXT_LIST, Column, attr, rel
from kustomer_assets.spec import (
    EntitySpec,
    ListSource,
    MetadataSource,
    SearchSource,
)

TAGS = EntitySpec(
    name="tags",
    kustomer_type="tag",
    source=ListSource("/v1/tags"),
    role=roles.TAG_READ,
    required=True,
    keep_custom=False,
    description=(
        "Tags agents and rules put on conversations and customers (records carry tag ids; "
        "this gives their names); a snapshot of the whole list on every run."
    ),
    columns=(
        *snapshot_identity("tag"),
        attr("name", "name", pl.Utf8, "Tag name."),
        attr("color", "color", pl.Utf8, "Display colour."),
        attr("deleted", "deleted", pl.Boolean, "Soft-deleted in Kustomer."),
    ),
)

BRANDS = EntitySpec(
    name="brands",
    kustomer_type="brand",
    source=ListSource("/v1/brands"),
    role=roles.BRAND_READ,
    required=False,
    keep_custom=False,
    description="Brands an org supports under one Kustomer account; a snapshot on every run.",
    columns=(
        *snapshot_identity("brand"),
        attr("name", "name", pl.Utf8, "Brand name."),
    ),
)

SATISFACTION_FORMS = EntitySpec(
    name="satisfaction_forms",
    kustomer_type="satisfaction",
    source=ListSource("/v1/satisfaction"),
    role=roles.SATISFACTION_READ,
    required=False,
    keep_custom=False,
    description="CSAT survey forms the org defined (questions, scale); a snapshot on every run.",
    columns=(
        *snapshot_identity("survey form"),
        attr("name", "name", pl.Utf8, "Survey name."),
        attr("survey_type", "type", pl.Utf8, "Survey type (csat ...)."),
        attr("enabled", "enabled", pl.Boolean, "Whether the survey is sent."),
        attr("questions", "questions", pl.Utf8, "Questions as JSON."),
    ),
)

CUSTOM_ATTRIBUTES = EntitySpec(
    name="custom_attributes",
    kustomer_type="metadata",
    source=MetadataSource(objects=("conversation", "customer", "message", "company")),
    role=roles.METADATA_READ,
    required=True,
    keep_custom=False,
    description=(
        "Definitions of the org's custom attributes per standard object (conversation, "
        "customer, message, company): display name, type and picklist values. "
        "`column_name` is the `custom_*` column holding it in the entity tables."
    ),
    columns=(
        *snapshot_identity("custom attribute (`<object>.<name>`)"),
        attr("object", "object", pl.Utf8, "Standard object the attribute belongs to."),
        attr("attribute_name", "name", pl.Utf8, "Kustomer attribute name (with type suffix)."),
        attr("column_name", "columnName", pl.Utf8, "Column holding it in this project's tables."),
        attr("display_name", "displayName", pl.Utf8, "Label agents see."),
        attr("attribute_type", "type", pl.Utf8, "string, number, boolean, date, tree ..."),
        attr("picklist_values", "picklistValues", TEXT_LIST, "Allowed values (tree: dot paths)."),
        attr("definition", "definition", pl.Utf8, "The whole definition as JSON."),
    ),
)

KLASSES = EntitySpec(
    name="klasses",
    kustomer_type="klass",
    source=ListSource("/v1/klasses"),
    role=roles.KLASS_READ,
    required=False,
    keep_custom=False,
    description=(
        "Custom object types (KObject classes) and their field definitions; a snapshot on "
        "every run. Join kobjects on `klass_id`."
    ),
    columns=(
        *snapshot_identity("KObject class"),
        attr("name", "name", pl.Utf8, "Class name (as used in the API)."),
        attr("display_name", "displayName", pl.Utf8, "Label in the UI."),
        attr("icon", "icon", pl.Utf8, "Icon name."),
        attr("color", "color", pl.Utf8, "Display colour."),
        attr("fields", "metadata.properties", pl.Utf8, "Field definitions as JSON."),
    ),
)

KOBJECTS = EntitySpec(
    name="kobjects",
    kustomer_type="kobject",
    source=SearchSource("kobject"),
    role=roles.KLASS_READ,
    required=False,
    description=(
        "Custom objects (KObjects: orders, subscriptions ... as the org defined them), one row "
        "per version; partition D holds objects last updated on UTC day D. Their fields are "
        "typed `custom_*` columns; `klass_id` says which class."
    ),
    columns=(
        *identity("KObject"),
        Column(
            "klass_id",
            ("relationships", "klass", "data", "id"),
            pl.Utf8,
            "KObject class id (see klasses).",
        ),
        attr("klass_attribute", "klass", pl.Utf8, "Class as the attribute carries it."),
        attr("title", "title", pl.Utf8, "Title shown in the timeline."),
        attr("description", "description", pl.Utf8, "Description."),
        attr("external_id", "externalId", pl.Utf8, "Id in the source system."),
        rel("customer_id", "customer", "Customer the object belongs to."),
    ),
)
