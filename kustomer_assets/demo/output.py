"""What the demo prints: its lines, flushed, paths as the user would type them, table counts."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kustomer_assets.entities import ENTITIES
from kustomer_assets.feedback.build import FEEDBACK


def say(*parts: object) -> None:
    """print, flushed: the demo's lines must appear while its runs work, also through a pipe."""
    print(*parts, flush=True)


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def table_summary(delta_root: Path) -> pl.DataFrame:
    rows = []
    for name, key in [*((spec.name, "id") for spec in ENTITIES), (FEEDBACK, "conversation_id")]:
        uri = delta_root / name
        if not uri.exists():
            rows.append({"table": name, "rows": 0, "ids": 0})
            continue
        counts = (
            pl.scan_delta(str(uri))
            .select(pl.len().alias("rows"), pl.col(key).n_unique().alias("ids"))
            .collect()
            .row(0, named=True)
        )
        rows.append({"table": name, **counts})
    return pl.DataFrame(rows)
