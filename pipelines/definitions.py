"""The Dagster code location: every domain folder under `defs/` plus the resources they share.

`dagster dev` from the repository root finds this module through `[tool.dagster]` in pyproject.toml.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from ingest.settings import restrict_new_files
from pipelines.lib.marts import MARTS
from pipelines.lib.resources import LakeResource

restrict_new_files()  # `dagster dev` and run workers load this module: their reports and models stay private


@dg.definitions
def defs() -> dg.Definitions:
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
        resources={"lake": LakeResource()},
        # Two cores on the reference machine: more parallel steps would only contend for them.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    return dg.Definitions.merge(loaded, shared)
