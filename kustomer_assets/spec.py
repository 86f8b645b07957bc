"""The shape of one entry of the spec table (`entities.py`): everything one entity is.

An entry says where the entity's records come from, what it follows, which role unlocks it
and whether the run needs it, how a user switches it off, how the key check probes its role,
which webhook events mean it changed, and which of its columns name records of other
entities. The asset factory, the sensors, the key check, the checks and `feedback` read these
fields, so adding an entity is one entry and renaming one is one edit.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from kustomer_assets.kustomer.search import SEARCH_PATH
from kustomer_assets.records import Column, RecordMapper, mapped_attribute_names


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


@dataclass(frozen=True)
class SearchSource:
    """Fetched through `POST /v1/customers/search` over `[start, end)` windows on updatedAt."""

    query_context: str

    def probe(self, role: str) -> Probe:
        return Probe(role, SEARCH_PATH, self.query_context)


@dataclass(frozen=True)
class ListSource:
    """A small list endpoint (agents, teams, tags ...) that cannot filter by time.

    It is read whole once per run and written as a snapshot of every day, not only the run's:
    the feedback table needs every agent's name, not only those edited in the backfilled days.
    """

    path: str
    page_size: int = 100

    def probe(self, role: str) -> Probe:
        return Probe(role, self.path)


@dataclass(frozen=True)
class MetadataSource:
    """Custom-attribute definitions, one `GET /v1/metadata/<object>` per standard object,
    expanded to one record per attribute; a snapshot like `ListSource`."""

    objects: tuple[str, ...]
    """Standard objects whose custom attributes are read, one request each."""

    def path(self, obj: str) -> str:
        return f"/v1/metadata/{obj}"

    def probe(self, role: str) -> Probe:
        return Probe(role, self.path(self.objects[0]))


@dataclass(frozen=True)
class ByIdSource:
    """Records with no list endpoint, fetched one by one by ids another entity's rows hold.

    CSAT responses: conversations carry `satisfaction_response_id`, and the responses to ask
    for in a window are those of conversations whose `satisfaction_updated_at` fell in it
    (plus ids the window's conversations point at that the table still lacks). The entity
    therefore follows `ids_from`: it runs after it and is refreshed whenever it is.
    """

    path_template: str
    ids_from: str
    """Entity whose rows hold the ids."""
    id_column: str
    """Column of `ids_from` holding them."""
    changed_at_column: str
    """Column of `ids_from` saying when the referenced record last changed (falls back to the
    row's `updated_at`)."""
    what: str = "records"
    """How progress lines name the records (they are fetched one request each)."""

    def probe(self, role: str) -> None:
        """No probe: one GET needs an id, and a made-up id answers 404 whatever the roles."""
        return None


Source = SearchSource | ListSource | MetadataSource | ByIdSource
SNAPSHOT_SOURCES = (ListSource, MetadataSource)


@dataclass(frozen=True)
class Reference:
    """Records another entity points at that the window's search may not return.

    A conversation from this week can belong to a customer whose profile last changed a year
    ago; without the customer, feedback rows lose the email and name. Such records are fetched
    by id (the spec's `by_id_path`; only those the table lacks) and stored on their own
    `updatedAt` day.
    """

    table: str
    """Entity whose rows point at this one."""
    column: str
    """Its column holding this entity's ids."""


@dataclass(frozen=True)
class Join:
    """A column of this entity naming records of `target` (by `id`): what assets join on.

    `many` marks a list column (tag ids, assignees). `guaranteed` marks a reference the load
    keeps whole (adding a message updates its conversation, so the conversation has a version
    on or after that day): a check then reports rows whose target is missing. Unguaranteed
    joins (a message's customer) are not checked, so the checks report only real gaps.
    """

    column: str
    target: str
    many: bool = False
    guaranteed: bool = False


@dataclass(frozen=True)
class Toggle:
    """An environment variable that switches the entity off when set to false."""

    env: str
    description: str


@dataclass(frozen=True)
class EntitySpec:
    name: str
    kustomer_type: str
    source: Source
    role: str
    required: bool
    """A run fails without the role (a key without an optional role skips the entity)."""
    description: str
    columns: tuple[Column, ...]
    keep_custom: bool = True
    toggle: Toggle | None = None
    reference: Reference | None = None
    by_id_path: str | None = None
    """`GET` path of one record (`{id}` is replaced), where the API has one. Referenced records
    are fetched with it, and a reconciliation asks it about records search no longer lists:
    404 means removed, an answer under another id means merged into that record, the same id
    means it is still there."""
    joins: tuple[Join, ...] = ()
    webhook_events: tuple[str, ...] = ()
    """Kustomer webhook object types (`kustomer.<type>.update` ...) after which this entity's
    records may have changed."""
    mapper: RecordMapper = field(init=False)

    @property
    def is_snapshot(self) -> bool:
        return isinstance(self.source, SNAPSHOT_SOURCES)

    @property
    def is_searched(self) -> bool:
        return isinstance(self.source, SearchSource)

    @property
    def follows(self) -> tuple[str, ...]:
        """Entities this one is loaded after, and refreshed with, since it reads their rows."""
        upstream = [self.source.ids_from] if isinstance(self.source, ByIdSource) else []
        if self.reference is not None and self.reference.table not in upstream:
            upstream.append(self.reference.table)
        return tuple(upstream)

    @property
    def probe(self) -> Probe | None:
        """How the key check asks whether a key carries this entity's role."""
        return self.source.probe(self.role)

    def join_to(self, target: str) -> Join | None:
        return next((j for j in self.joins if j.target == target), None)

    def switched_off(self, off: Collection[str]) -> bool:
        """Whether the user switched the entity off (`off`: the entities listed as off)."""
        return self.toggle is not None and self.name in off

    def __post_init__(self) -> None:
        mapper = RecordMapper(
            columns=self.columns,
            keep_custom=self.keep_custom,
            mapped_attributes=mapped_attribute_names(self.columns),
        )
        object.__setattr__(self, "mapper", mapper)
