"""The Dagster resource naming where tables are written (KUSTOMER_DELTA_ROOT)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from kustomer_assets.environment import as_given
from kustomer_assets.lake.store import DeltaStore


class DeltaLakeResource(dg.ConfigurableResource):
    """Root folder or object-store URI of the Delta tables; each table is `<root>/<name>`.

    Secret storage options (keys, tokens) should be given as `dg.EnvVar("NAME")` values: Dagster
    then keeps only the variable's name in the resource config the UI shows and in run config,
    and substitutes the value when a run starts.
    """

    root: str = Field(description="Local path or URI (s3://..., az://..., gs://...).")
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "delta-rs storage options for object stores; secret ones as EnvVar (their names "
            "are shown, never their values)."
        ),
    )

    setting_names: dict[str, str] = Field(
        default_factory=dict,
        description="How the root was given (KUSTOMER_DELTA_ROOT: delta_root), for messages.",
    )

    def explain(self, error: Exception | str) -> str:
        """The error's sentence naming the root's setting as the user gave it."""
        return as_given(error, self.setting_names)

    def resolved_storage_options(self) -> dict[str, str]:
        """The options with every `EnvVar` read now.

        Inside a run Dagster has already put the values in; outside one (a script, a test, the
        CLI) the field still holds the `EnvVar`, whose string is the variable's *name*, which
        must never reach delta-rs as a credential. An unset variable drops its option, as if it
        had not been configured.
        """
        resolved: dict[str, str] = {}
        for key, value in self.storage_options.items():
            actual = value.get_value() if isinstance(value, dg.EnvVar) else value
            if actual is not None:
                resolved[key] = actual
        return resolved

    def store(self) -> DeltaStore:
        return DeltaStore(self.root, self.resolved_storage_options())
