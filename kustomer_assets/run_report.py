"""How a raw asset's run describes itself in materialization metadata, read back by checks.

A range run writes many partitions at once. Each partition's materialization carries its own
figures (`dagster/row_count` is that day's rows, so the UI's plots are true), and the run's
figures under `run/...`, labelled as covering the whole run. Checks read the run's figures
through `run_value`, one place that also understands materializations written before the
prefix existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RUN_PREFIX = "run/"


def run_key(name: str) -> str:
    """The metadata key of a run-wide figure (`api_reported_total` -> `run/api_reported_total`)."""
    return f"{RUN_PREFIX}{name}"


def run_value(metadata: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A run-wide figure from a materialization's metadata values, old unprefixed keys too."""
    for key in (run_key(name), name):
        if key in metadata:
            return metadata[key]
    return default
