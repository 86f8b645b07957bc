"""One refresh of the feedback table, built again when another write commits first.

A refresh reads its inputs and feedback itself at the versions it pinned (`DeltaStore.pinned`),
and its write is checked against those versions, so a write that landed in between (an
automation tick beside a manual build, a second refresh) fails it rather than being built over
unseen. That is the right outcome, but not an error for the user: the refresh is simply done
again on the new versions, which finds what the other write did in its commit note and merges
only what is still missing. After `COMMIT_ATTEMPTS` in a row it gives up with one sentence;
nothing of its own was written, and the next run picks up from the other write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deltalake.exceptions import CommitFailedError

from kustomer_assets.feedback.build import FEEDBACK, build_feedback
from kustomer_assets.feedback.incremental import (
    ChangeSet,
    find_changes,
    merge_changes,
    write_full,
)
from kustomer_assets.lake import DeltaStore

COMMIT_ATTEMPTS = 3
_LOG = logging.getLogger(__name__)


class Log(Protocol):
    def info(self, msg: str, *args: object) -> None: ...

    def warning(self, msg: str, *args: object) -> None: ...


@dataclass(frozen=True)
class Refreshed:
    """What one refresh did: `rebuilt` conversations written, `removed` rows dropped."""

    changes: ChangeSet
    full: bool
    rebuilt: int
    removed: int


class FeedbackConflict(RuntimeError):
    """Other writes kept committing while feedback was built (see module doc)."""


def refresh_once(store: DeltaStore, *, full_rebuild: bool, log: Log) -> Refreshed:
    """A full build when asked or needed (`ChangeSet.full`), else the changed conversations
    rebuilt and merged; one commit either way."""
    changes = find_changes(store, FEEDBACK)
    if full_rebuild or changes.full:
        log.info("feedback: full rebuild (%s)", "requested" if full_rebuild else changes.reason)
        rows = build_feedback(store, None)
        if not rows.is_empty():
            write_full(store, FEEDBACK, rows, changes.input_versions)
        return Refreshed(changes, True, rows.height, 0)
    ids = changes.conversation_ids
    log.info("feedback: %d conversations changed since the last build", len(ids))
    if not ids:
        return Refreshed(changes, False, 0, 0)
    rows = build_feedback(store, ids)
    removed = merge_changes(store, FEEDBACK, rows, ids, changes.input_versions)
    return Refreshed(changes, False, len(ids), removed)


def refresh(
    open_store: Callable[[], DeltaStore],
    *,
    full_rebuild: bool = False,
    log: Log = _LOG,
) -> tuple[DeltaStore, Refreshed]:
    """`refresh_once` on a freshly pinned store, again while another write beats it to the
    commit; the store it succeeded on, and what it did."""
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        store = open_store().pinned()
        try:
            return store, refresh_once(store, full_rebuild=full_rebuild, log=log)
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS:
                break
            log.warning(
                "feedback: another write to feedback committed while this build ran "
                "(attempt %d of %d); building again on the new versions",
                attempt,
                COMMIT_ATTEMPTS,
            )
    raise FeedbackConflict(
        f"feedback: other writes to the feedback table committed while it was being built, "
        f"{COMMIT_ATTEMPTS} times in a row, so this run wrote nothing; it is safe to run again "
        f"once the other feedback build (an automation tick or a manual run) has finished"
    )


__all__ = ["COMMIT_ATTEMPTS", "FeedbackConflict", "Refreshed", "refresh", "refresh_once"]
