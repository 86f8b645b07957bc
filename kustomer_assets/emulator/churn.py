"""Churn: the org moving while a client pages a search, records changed or created after every
search page served for a query context.
"""

from __future__ import annotations

from typing import Any

from .config import ChurnSpec, normalize_churn
from .dataset import is_deleted
from .lists import ListsMixin


class ChurnMixin(ListsMixin):
    """Churn between search pages of `Emulator` (mixed into it)."""

    def set_churn(self, churn: dict[str, ChurnSpec], *, reset: bool = False) -> None:
        """Replace the churn map ({} turns churn off); reset also forgets the churned ids."""
        parsed = normalize_churn(churn)
        with self._churn_lock:
            self._churn = parsed
            self.config.churn = dict(churn)
            if reset:
                self._churned.clear()

    def churned(self, type_: str) -> set[str]:
        """Ids that churn changed or created: a client may legitimately see these twice or late."""
        with self._churn_lock:
            return set(self._churned.get(type_, ()))

    def _churn_after_page(
        self, context: str, items: list[dict[str, Any]], page: int, size: int
    ) -> None:
        """Move the org on between page requests: change records inside the window being paged.

        Half the changes (rounded at random) hit the page just served and half hit records not
        yet served; a change on a served page shifts every later record up one place, which is
        what makes page-number paging skip the record at the next boundary.
        """
        with self._churn_lock:
            spec = self._churn.get(context)
        if not spec:
            return
        ds = self.dataset
        with ds.lock, self._churn_lock:
            live = ds.records.get(context, {})
            start = (page - 1) * size if page <= self._max_pages(size) else len(items)
            end = min(len(items), start + size)

            def pool(chunk: list[dict[str, Any]]) -> list[str]:
                return [r["id"] for r in chunk if r["id"] in live and not is_deleted(live[r["id"]])]

            served, later, earlier = pool(items[start:end]), pool(items[end:]), pool(items[:start])
            rng = self._churn_rng
            n = spec["change"]
            n_served = n // 2 + (n % 2 if rng.random() < 0.5 else 0)
            n_served = min(n_served, len(served))
            n_later = min(n - n_served, len(later))
            n_served = min(n - n_later, len(served))
            chosen = rng.sample(served, n_served) + rng.sample(later, n_later)
            rest = min(n - len(chosen), len(earlier))
            chosen += rng.sample(earlier, rest)
            changed = ds.change(context, ids=chosen) if chosen else []
            created = ds.create(context, spec["create"]) if spec["create"] else []
            bucket = self._churned.setdefault(context, set())
            bucket.update(changed, created)
            for id_ in created if context in ("message", "note") else ():
                conv = ((ds.get(context, id_) or {}).get("relationships") or {}).get("conversation")
                data = (conv or {}).get("data")
                if isinstance(data, dict) and data.get("id"):  # a new child touched its parent
                    self._churned.setdefault("conversation", set()).add(data["id"])
        self._count("churn.changed", len(changed))
        if created:
            self._count("churn.created", len(created))
