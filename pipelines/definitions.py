"""The Dagster code location: every domain folder under `defs/` plus the resources they share.

`dagster dev` from the repository root finds this module through `[tool.dagster]` in pyproject.toml, and calls
`defs` to load the location: in its code server and in every run worker it launches.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from ingest.settings import restrict_new_files
from pipelines.lib.marts import MARTS
from pipelines.lib.resources import LakeResource


@dg.definitions
def defs() -> dg.Definitions:
    """The location's definitions; loading them is the process's entry point, so it makes the files it creates
    (reports, models, the lake) private to its user here."""
    restrict_new_files()
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    computed = [asset for asset in loaded.assets or () if isinstance(asset, dg.AssetsDefinition)]
    marts = [key for asset in computed for key in asset.keys if key.has_prefix([MARTS])]
    with warnings.catch_warnings():  # a stable API in practice; the beta label only adds noise to every command
        warnings.simplefilter("ignore", dg.BetaWarning)
        # "Schema unchanged": each mart's columns are compared with its previous materialization's.
        schema_checks = dg.build_column_schema_change_checks(assets=marts)
    shared = dg.Definitions(
        asset_checks=schema_checks,
        # Declarative automation of the marts (turn it on under Automation in the UI).
        sensors=[
            dg.AutomationConditionSensorDefinition("marts_automation", target=dg.AssetSelection.key_prefixes(MARTS))
        ],
        resources={"lake": LakeResource.from_environment()},
        # Two cores on the reference machine: more parallel steps would only contend for them.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    return dg.Definitions.merge(loaded, shared)
