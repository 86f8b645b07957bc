"""The Definitions of this repository's code location (`kustomer_assets.definitions:defs`).

One use of the same factory the Dagster component calls (`factory.kustomer_definitions`): one
org, every setting from the environment (README, "Configuration"). `build_definitions` is
re-exported for code that passes its own spec tuple or resources.
"""

from kustomer_assets.factory import build_definitions, kustomer_definitions

defs = kustomer_definitions(code_location=True)

__all__ = ["build_definitions", "defs", "kustomer_definitions"]
