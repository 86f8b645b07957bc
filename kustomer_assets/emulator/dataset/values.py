"""Random attribute values: instants that often tie, texts, custom attributes by suffix type.

Each draws from the `Random` it is given, in a fixed order, so generation and mutations stay
deterministic for a seed.
"""

from __future__ import annotations

from random import Random
from typing import Any

from .timestamps import DAY_MS, MINUTE_MS, ms_to_iso
from .vocabulary import (
    CONTACT_REASONS,
    CUSTOM_DEFS,
    LATE_CUSTOM_ATTRIBUTE,
    REFUND_REASONS,
    SENTENCES,
    TIERS,
    custom_suffix,
)


def _ts(rng: Random, lo: int, hi: int, round_p: float = 0.35) -> int:
    """A random instant in [lo, hi]; often rounded to the minute so ties are common."""
    if hi <= lo:
        return lo
    t = rng.randint(lo, hi)
    if rng.random() < round_p:
        r = t - t % MINUTE_MS
        t = r if r >= lo else t
    return t


def _text(rng: Random, min_sentences: int = 1, max_sentences: int = 8) -> str:
    n = rng.randint(min_sentences, max_sentences)
    text = " ".join(rng.choices(SENTENCES, k=n))
    if rng.random() < 0.05:  # a few previews hit the ~1,000 character cap
        while len(text) < 1100:
            text += " " + rng.choice(SENTENCES)
    return text[:1000]


def _custom_value(rng: Random, name: str, at_ms: int) -> Any:
    suffix = custom_suffix(name)
    if suffix == "Str":
        if name == LATE_CUSTOM_ATTRIBUTE:
            return rng.choice(REFUND_REASONS)
        if name == "loyaltyTierStr":
            return rng.choice(TIERS)
        return rng.choice(("A-", "B-", "Ω-", "Ä-")) + str(rng.randint(10000, 99999))
    if suffix == "Num":
        return rng.choice((rng.randint(0, 500), round(rng.uniform(0, 2000), 2), 0))
    if suffix == "Bool":
        return rng.random() < 0.3
    if suffix == "At":
        return ms_to_iso(at_ms - rng.randint(0, 90) * DAY_MS - rng.randint(0, DAY_MS))
    if suffix == "Tree":
        return rng.choice(CONTACT_REASONS)
    if suffix == "Txt":
        return _text(rng, 2, 5)
    if suffix == "Url":
        return f"https://track.example.com/{rng.getrandbits(40):010x}?lang=ü"
    if suffix == "Id":
        return f"{rng.getrandbits(48):012x}"
    return None


def _custom(rng: Random, obj: str, at_ms: int, late: bool = False) -> dict[str, Any]:
    """Custom attributes: each key present ~75% of the time, and null ~10% when present."""
    out: dict[str, Any] = {}
    for name, _ in CUSTOM_DEFS[obj]:
        if name == LATE_CUSTOM_ATTRIBUTE:
            if late and rng.random() < 0.6:
                out[name] = _custom_value(rng, name, at_ms)
            continue
        r = rng.random()
        if r < 0.25:
            continue
        out[name] = None if r < 0.35 else _custom_value(rng, name, at_ms)
    return out
