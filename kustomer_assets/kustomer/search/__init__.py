"""Search windows that cannot skip a record while the org changes underneath them.

Why not page numbers: a search sorted by updatedAt and paged by `page=N` is a moving list. When
an agent touches a record that was already served, it jumps to the end (or out of a past
window), every record behind it moves up one place, and the record at the next page boundary
is never served; counts cannot tell (the moved record fills the gap). See the API notes, "A
live org".

The modules, in the order a window uses them:

- `body`: the one function that writes a search body (`search_body`), and the search path.
- `plan`: the query and page values, and every decision that needs no request (where the
  cursor moves, how a tie or an unsorted range is split).
- `endpoint`: search pages over the transport, and the page size the server really serves.
- `cursor`: reading a window with a cursor on the sort key, ties and bisection included.
- `completeness`: proving the window complete by its count, or else by ids.
- `window`: `SearchWindow`, what callers hold.
"""

from ..settings import VERIFY_MODES
from .body import SEARCH_PATH, field_name, search_body
from .completeness import Reconciliation
from .endpoint import SearchEndpoint
from .plan import record_key
from .window import SearchWindow

__all__ = [
    "SEARCH_PATH",
    "VERIFY_MODES",
    "Reconciliation",
    "SearchEndpoint",
    "SearchWindow",
    "field_name",
    "record_key",
    "search_body",
]
