"""Columns every entity shares, and the derivations more than one value rule needs."""

from __future__ import annotations

import polars as pl

from kustomer_assets.records import TIMESTAMP, Column, attr


def identity(kind: str) -> tuple[Column, ...]:
    """Columns every entity has; `id` + `updated_at` is the row key of every table."""
    return (
        Column("id", ("id",), pl.Utf8, f"Kustomer {kind} id (24-hex)."),
        attr("updated_at", "updatedAt", TIMESTAMP, "When Kustomer last changed the record (UTC)."),
        attr("created_at", "createdAt", TIMESTAMP, "When the record was created (UTC)."),
        attr("modified_at", "modifiedAt", TIMESTAMP, "Last change by a person, not automation."),
    )


def snapshot_identity(kind: str) -> tuple[Column, ...]:
    return identity(kind)[:3]


def free_text_answers(answers: object) -> str | None:
    """CSAT answers mix ratings and comments; analysts want the comments, joined in order."""
    if not isinstance(answers, list):
        return None
    texts = [
        a["answer"].strip()
        for a in answers
        if isinstance(a, dict) and isinstance(a.get("answer"), str) and a["answer"].strip()
    ]
    return "\n".join(texts) or None
