"""Kept so older imports work: the parsers live in `jsonapi` now."""

from .jsonapi import int_or_none, parse_time

__all__ = ["int_or_none", "parse_time"]
