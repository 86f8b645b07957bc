"""Reading settings from environment variables, with one clear sentence when one is wrong.

Every module that takes a setting from the environment reads it through these, so a typo in
any variable fails the same way: naming the variable and the value it got.
"""

from __future__ import annotations

import os
from datetime import date


def _raw(name: str) -> str | None:
    raw = os.getenv(name)
    return raw.strip() if raw is not None and raw.strip() else None


def positive_int_env(name: str, default: int) -> int:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}.") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {raw!r}.")
    return value


def positive_float_env(name: str, default: float, unit: str) -> float:
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of {unit}, got {raw!r}.") from None
    if not value > 0:
        raise ValueError(f"{name} must be more than 0 {unit}, got {raw!r}.")
    return value


def bool_env(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}.")


def date_env(name: str, default: str) -> str:
    """A day as YYYY-MM-DD: a malformed one would otherwise fail deep inside Dagster's
    partition code at import, without naming the variable."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ValueError(f"{name} must be a day as YYYY-MM-DD, got {raw!r}.") from None


def as_given(error: Exception | str, names: dict[str, str]) -> str:
    """An error's sentence with each environment variable it names replaced by the name the
    user gave that setting (a component's `delta_root`, an org's own key variable)."""
    sentence = str(error)
    for variable, name in names.items():
        sentence = sentence.replace(variable, name)
    return sentence
