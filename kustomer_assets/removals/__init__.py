"""Records Kustomer no longer returns (hard-deleted records, merged customers), found by ids.

Why by ids: a purge (GDPR erasure, a spam clean-up) or a customer merge makes a record vanish
from search and lists. An incremental sync reads what changed, and nothing it reads says that a
record is gone; counts cannot tell either, since new records fill the gap (API notes, "A live
org"). So, per searched entity whose table exists:

1. **Listing.** The ids Kustomer holds for `[our earliest updated_at, now)`, clipped to
   search's two-year horizon, read as `idsOnly` search pages (ids only, 500 per request). The
   span is cut into windows of at most `WINDOW_MAX_RECORDS`, each sized by one count request
   (cut where our own records say, split again where Kustomer counts more), so that no listing
   meets the deep-paging wall (100 pages or 10,000 results: the docs do not say which).
2. **Candidates.** Ids whose latest version of ours lies in the span and that the listing
   lacks. A record an earlier run marked and that is still missing stays marked without being
   asked again. New candidates above `max_candidate_share` of the table (and above
   `CANDIDATE_FLOOR`) mean something else is wrong -- a key for another org, a search outage
   -- and the run fails in one sentence instead of marking half the table.
3. **Confirmation.** A record touched while the listing pages moves past the listed span; and
   under page-number paging that move shifts the record at the next page boundary out of
   sight, untouched. Entities with a by-id endpoint (`EntitySpec.by_id_path`) are asked about
   each new candidate: 404 removed, an answer under another id merged into it, the same id
   still there. The others are listed again over `[start of the listing - 1 minute, now +
   1 minute)`, where touched records went, and over the hour of each remaining candidate's last
   update, where a shifted-out record still sits (a window that small is one page, so nothing
   shifts); only ids absent from every listing are marked.

Merges: Kustomer answers an old customer id with the survivor's record, or (on another reading
of the API) with 404. A merge re-points the customer's conversations to the survivor, so after a
404 one GET of the latest conversation our table has for that customer (the record that points
at it, `EntitySpec.reference`) tells: if Kustomer now files it under another customer, that is
the survivor; otherwise the customer was deleted. Chains (A into B, B into C) resolve to the end.

Cost (requests), per entity and run: one count per listed window plus one `idsOnly` page per
500 ids it counts (no page when it counts 0); then, only when there are new candidates, one GET
each (conversations, customers; plus one per customer answering 404 that has a conversation of
ours) or the re-listing windows above, priced the same way.
`EntityReconciliation.expected_requests` states it; the README gives examples.

The steps live in sibling modules: listing (and re-listing) in `listing`, the by-id
questions and merge resolution in `confirmation`, the table's shape in
`table`. `reconcile` finds the candidates and runs the steps for one entity
(`reconcile_entity`); every name is importable from here.
"""

from __future__ import annotations

from kustomer_assets.removals.confirmation import (
    look_up,
    resolve_merge_chains,
    survivors_by_referrers,
)
from kustomer_assets.removals.listing import (
    RELISTING_SPAN,
    TOUCHED_MARGIN,
    WINDOW_MAX_RECORDS,
    WINDOW_TARGET_RECORDS,
    ListedWindow,
    Listing,
    list_ids,
    relisting_spans,
)
from kustomer_assets.removals.reconcile import (
    CANDIDATE_FLOOR,
    DEFAULT_MAX_CANDIDATE_SHARE,
    EntityReconciliation,
    ImplausibleRemovalsError,
    latest_versions,
    reconcile_entity,
)
from kustomer_assets.removals.table import (
    COLUMN_DESCRIPTIONS,
    REMOVED_RECORDS,
    REMOVED_RECORDS_SCHEMA,
    empty_rows,
)

__all__ = [
    "CANDIDATE_FLOOR",
    "COLUMN_DESCRIPTIONS",
    "DEFAULT_MAX_CANDIDATE_SHARE",
    "RELISTING_SPAN",
    "REMOVED_RECORDS",
    "REMOVED_RECORDS_SCHEMA",
    "TOUCHED_MARGIN",
    "WINDOW_MAX_RECORDS",
    "WINDOW_TARGET_RECORDS",
    "EntityReconciliation",
    "ImplausibleRemovalsError",
    "ListedWindow",
    "Listing",
    "empty_rows",
    "latest_versions",
    "list_ids",
    "look_up",
    "reconcile_entity",
    "relisting_spans",
    "resolve_merge_chains",
    "survivors_by_referrers",
]
