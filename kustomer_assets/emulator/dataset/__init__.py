"""Deterministic synthetic Kustomer org for the emulator.

The data is shaped to break naive connectors the way a real org does: many records share one
``updatedAt`` (a bulk update ties >= 300 conversations to the same millisecond, and many other
timestamps are rounded to the minute), some records change days after creation, a few are
soft-deleted, custom attributes come in every suffix type with unicode, nulls and missing keys,
and one custom attribute only appears in the later half of the history.

Everything derives from ``random.Random(seed)`` so two datasets built from the same config are
byte-identical; mutations use their own seeded RNG so a test replaying the same mutations gets
the same ids.

Modules: `vocabulary` (types, names, custom-attribute definitions), `timestamps` (epoch-ms
helpers), `jsonapi` (record envelopes), `values` (random attribute values), `org_records` and
`conversation_records` (record factories per entity family), `generate` and
`generate_conversation` (the seeded org), `state` (the `Dataset` and its reads), `mutations` and
`changes` (the org changing under a client).
"""

from .generate import generate_dataset
from .jsonapi import is_deleted
from .state import Dataset
from .timestamps import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SEARCHABLE_MS,
    dt_to_ms,
    iso_to_ms,
    ms_to_iso,
    utcnow_ms,
)
from .vocabulary import (
    BULK_TIE_SIZE,
    CHANNEL_WEIGHTS,
    CHANNELS,
    CONTACT_REASONS,
    CUSTOM_DEFS,
    CUSTOM_SUFFIXES,
    CUSTOMER_LINKED_TYPES,
    ENTITY_TYPES,
    FIRST_NAMES,
    LAST_NAMES,
    LATE_CUSTOM_ATTRIBUTE,
    LOCALES,
    METADATA_RESOURCES,
    NOTE_BODIES,
    REFUND_REASONS,
    SELF_PATHS,
    SENTENCES,
    SUFFIX_TYPES,
    TAG_NAMES,
    TIERS,
    TIME_ZONES,
    custom_suffix,
)

__all__ = [
    "BULK_TIE_SIZE",
    "CHANNELS",
    "CHANNEL_WEIGHTS",
    "CONTACT_REASONS",
    "CUSTOMER_LINKED_TYPES",
    "CUSTOM_DEFS",
    "CUSTOM_SUFFIXES",
    "DAY_MS",
    "ENTITY_TYPES",
    "FIRST_NAMES",
    "HOUR_MS",
    "LAST_NAMES",
    "LATE_CUSTOM_ATTRIBUTE",
    "LOCALES",
    "METADATA_RESOURCES",
    "MINUTE_MS",
    "NOTE_BODIES",
    "REFUND_REASONS",
    "SEARCHABLE_MS",
    "SELF_PATHS",
    "SENTENCES",
    "SUFFIX_TYPES",
    "TAG_NAMES",
    "TIERS",
    "TIME_ZONES",
    "Dataset",
    "custom_suffix",
    "dt_to_ms",
    "generate_dataset",
    "is_deleted",
    "iso_to_ms",
    "ms_to_iso",
    "utcnow_ms",
]
