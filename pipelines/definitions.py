"""The Dagster code location: every domain folder under `defs/` plus the resources they share.

`dagster dev` from the repository root finds this module through `[tool.dagster]` in pyproject.toml, and calls
`defs` to load the location: in its code server and in every run worker it launches.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from ingest.settings import restrict_new_files
from pipelines.lib.assets import SENSORS_DEFAULT
from pipelines.lib.marts import MARTS
from pipelines.lib.resources import LakeResource
from pipelines.materialize import stages


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
        sensors=[
            dg.AutomationConditionSensorDefinition(
                "marts_automation",
                # A selection string, which the UI shows as written (a key-prefix selection shows as a Python repr).
                target=dg.AssetSelection.from_string(f'key:"{MARTS}/*"'),
                default_status=SENSORS_DEFAULT,
                description="Evaluates the marts' automation conditions every 30 s: each hourly mart over raw "
                "telemetry computes the hour that just closed at ten past the hour, once the loader has landed "
                "new rows; every other mart follows its mart inputs, once per new or updated partition.",
            )
        ],
        resources={"lake": LakeResource.from_environment()},
        # Two cores on the reference machine: more parallel steps would only contend for them.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    merged = dg.Definitions.merge(loaded, shared)
    # A named job per stage (pipelines/materialize.py), which `leo-fleet demo` runs: the run list says what ran,
    # not __ephemeral_asset_job__. A stage a job of the defs folder covers already (a report's) keeps that job.
    defined = {job.name for job in loaded.jobs or ()} | {schedule.job_name for schedule in loaded.schedules or ()}
    stage_jobs = [stage.job() for stage in stages(merged) if stage.job_name not in defined]
    return dg.Definitions.merge(merged, dg.Definitions(jobs=stage_jobs))
