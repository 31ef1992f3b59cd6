"""A Dagster run worker of its own process, so a test can kill it: materializes one mart over the sample span.

python -m tests.reliability.mart_worker DATA_DIR DAGSTER_HOME
"""

from __future__ import annotations

import sys

import dagster as dg

from pipelines.definitions import defs
from pipelines.lib.marts import mart_key
from pipelines.lib.partitions import HOURLY
from pipelines.lib.resources import LakeResource
from pipelines.materialize import Stage, run_stage
from tests.sample_lake import SAMPLE_SPAN

MART = "latency_rollups"


def materialize_mart(data_dir: str, dagster_home: str) -> bool:
    """One run over every hour of the sample; True if it succeeded."""
    stage = Stage((mart_key(MART),), HOURLY)
    instance = dg.DagsterInstance.from_config(dagster_home)
    lake = LakeResource.from_environment(data_dir=data_dir)  # LEO_FLEET_CRASH_AT, when the test sets it
    run = run_stage(defs(), lake, stage, SAMPLE_SPAN, instance)
    return bool(run.results) and run.success


if __name__ == "__main__":
    sys.exit(0 if materialize_mart(*sys.argv[1:3]) else 1)
