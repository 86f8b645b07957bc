"""Made-up entities for tests that must show a spec entry alone yields its checks and probes.

None of them exists in Kustomer or in the emulator: anything a factory builds for them comes
from these entries, never from a name the factory knows.
"""

import polars as pl

from kustomer_assets.entities import ByIdSource, EntitySpec, Join, ListSource, SearchSource
from kustomer_assets.records import ID_LIST, TIMESTAMP, Column, attr, rel

WIDGET_READ = "org.permission.widget.read"
GADGET_READ = "org.permission.gadget.read"
PART_READ = "org.permission.part.read"


def _columns(*extra: Column) -> tuple[Column, ...]:
    return (
        Column("id", ("id",), pl.Utf8, "Id."),
        attr("updated_at", "updatedAt", TIMESTAMP, "Last change."),
        attr("created_at", "createdAt", TIMESTAMP, "Creation."),
        *extra,
    )


WIDGETS = EntitySpec(
    name="widgets",
    kustomer_type="widget",
    source=ListSource("/v1/widgets"),
    role=WIDGET_READ,
    required=True,
    description="Made-up snapshot list.",
    columns=_columns(),
)

GADGETS = EntitySpec(
    name="gadgets",
    kustomer_type="gadget_item",
    source=SearchSource("gadget"),
    role=GADGET_READ,
    required=False,
    description="Made-up searched entity pointing at widgets, one and many.",
    joins=(
        Join("widget_id", "widgets", guaranteed=True),
        Join("spare_widget_ids", "widgets", many=True),
    ),
    columns=_columns(
        rel("widget_id", "widget", "Widget."),
        attr("spare_widget_ids", "spares", ID_LIST, "Spare widgets."),
    ),
)

PARTS = EntitySpec(
    name="parts",
    kustomer_type="part",
    source=ByIdSource("/v1/parts/{id}", "gadgets", "part_id", "updated_at"),
    role=PART_READ,
    required=False,
    description="Made-up by-id entity: no probe can tell its role.",
    joins=(Join("gadget_ids", "gadgets", many=True, guaranteed=True),),
    columns=_columns(attr("gadget_ids", "gadgets", ID_LIST, "Gadgets.")),
)

MADE_UP = (WIDGETS, GADGETS, PARTS)
