"""The `late_data` sensor's tick and what the daemon does with its requests, in one Dagster instance, for tests
that deliver rows after their hours were computed."""

from __future__ import annotations

import dagster as dg

from pipelines.defs.ingest_observe.late_data import late_data
from pipelines.lib.resources import LakeResource
from pipelines.materialize import QUIET_RUN


def tick_late_data(
    definitions: dg.Definitions, instance: dg.DagsterInstance, lake: LakeResource
) -> list[dg.RunRequest]:
    """One evaluation of the sensor: the runs it requests (none on a skip)."""
    context = dg.build_sensor_context(
        instance=instance, resources={"lake": lake}, repository_def=definitions.get_repository_def()
    )
    result = late_data(context)
    return [] if isinstance(result, dg.SkipReason) else list(result.run_requests or [])


def execute(
    definitions: dg.Definitions, instance: dg.DagsterInstance, lake: LakeResource, request: dg.RunRequest
) -> None:
    """What the daemon does with the sensor's request: one run of the selected marts for the partition."""
    job = dg.define_asset_job("late_data_revision", selection=request.asset_selection)
    resolved = dg.Definitions.merge(definitions, dg.Definitions(jobs=[job])).resolve_job_def(job.name)
    result = resolved.execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        resources={"lake": lake},
        tags=request.tags,
        run_config=QUIET_RUN,
    )
    assert result.success
