"""The one Definitions object of the code location (`kustomer_assets.definitions:defs`)."""

import dagster as dg

from kustomer_assets.assets.raw import entity_assets
from kustomer_assets.resources import resources_from_env

defs = dg.Definitions(assets=entity_assets, resources=resources_from_env())
