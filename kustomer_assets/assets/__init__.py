"""Dagster assets: one per Kustomer entity, built from the spec table."""
