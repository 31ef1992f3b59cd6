"""Materialize every asset over a span of time, in-process, stage by stage: what `leo-fleet demo`, the tests and
the benchmark run.

Assets are grouped into stages by dependency level and partitioning: the hourly marts over raw telemetry run as a
backfill over the span, then the fitted models, then the hourly scores that need them, then the daily assets. Each
stage runs its own named job (pipelines/definitions.py defines one per stage) over partition ranges as its assets'
backfill policy splits them (pipelines.lib.partitions: hourly ones HOURS_PER_RUN at a time, daily ones at once),
recorded in the given instance, so `dagster dev` on the same DAGSTER_HOME shows its history, metadata and check
results afterwards under the stage's name.

Each run is tagged with the host and pid of the process that runs it. A process killed mid-run leaves its run
STARTED and its `lake_write` pool slot claimed, which would block every later writer of the lake: before each
run, runs whose worker process is gone are marked failed and their slots freed (what Dagster's run monitoring
daemon does for launched runs; in-process runs have no monitor).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import dagster as dg
import psutil

from pipelines.lib.partitions import DAILY, HOURLY, Window
from pipelines.lib.resources import LakeResource

# In-process runs log every event to the console at DEBUG by default; the instance's event log keeps them anyway.
QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
WORKER_TAG = "leo-fleet/worker"  # "host:pid" of the process executing an in-process run
UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
# The run tags that make one run cover a range of partitions: what a backfill's run and
# `dagster asset materialize --partition-range` set (Dagster exports no constant for them).
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
# A stage's cadence in its job's name, by the kind of its partitions.
CADENCES = (
    (dg.HourlyPartitionsDefinition, "hourly"),
    (dg.DailyPartitionsDefinition, "daily"),
    (dg.WeeklyPartitionsDefinition, "weekly"),
    (dg.MonthlyPartitionsDefinition, "monthly"),
)


@dataclass(frozen=True)
class Stage:
    keys: tuple[dg.AssetKey, ...]
    partitions_def: dg.PartitionsDefinition | None
    groups: tuple[str, ...] = ()  # of its assets, in the order of `keys`
    partitions_per_run: int | None = None  # the least its assets' backfill policies allow; None: any number

    @property
    def label(self) -> str:
        kind = {HOURLY: "hourly", DAILY: "daily", None: "unpartitioned"}.get(self.partitions_def, "partitioned")
        return f"{kind}: {', '.join(key.path[-1] for key in self.keys)}"

    @property
    def job_name(self) -> str:
        """The stage's job: its one asset's name, or its groups' names, with its cadence (slo_report_daily,
        latency_links_..._hourly); an unpartitioned stage has none (views)."""
        cadence = next((name for kind, name in CADENCES if isinstance(self.partitions_def, kind)), None)
        names = [self.keys[0].path[-1]] if len(self.keys) == 1 else list(dict.fromkeys(self.groups))
        if cadence and not names[-1].endswith(cadence):
            names.append(cadence)
        return "_".join(names)

    def job(self) -> dg.UnresolvedAssetJobDefinition:
        """The stage's assets (and their checks) as one named job: what the run list shows for its runs."""
        return dg.define_asset_job(
            self.job_name,
            selection=list(self.keys),
            description=f"Materializes {', '.join(key.to_user_string() for key in self.keys)} in one run"
            + (" over a partition range" if self.partitions_def else "")
            + " (a stage of `leo-fleet demo`, after the stages whose assets these read).",
        )

    def partition_keys(self, span: Window) -> list[str]:
        """The stage's partitions that overlap `span` and exist (a day still in progress has no partition yet)."""
        if self.partitions_def is None:
            return []
        first = self.partitions_def.get_partition_key_for_timestamp(span.start.timestamp())
        overlapping = dg.TimeWindow(self.partitions_def.time_window_for_partition_key(first).start, span.end)
        return [
            key
            for key in self.partitions_def.get_partition_keys_in_time_window(overlapping)
            if self.partitions_def.has_partition_key(key)
        ]

    def runs(self, keys: list[str]) -> list[list[str]]:
        """`keys` (consecutive partitions) in the ranges its runs cover, as a backfill would launch them."""
        size = self.partitions_per_run or max(len(keys), 1)
        return [keys[i : i + size] for i in range(0, len(keys), size)]


@dataclass(frozen=True)
class StageRun:
    stage: Stage
    partitions: int
    seconds: float
    results: tuple[dg.ExecuteInProcessResult, ...]  # one per run; none when the span holds none of its partitions

    @property
    def success(self) -> bool:
        """Every run of the stage succeeded (true of a stage with no partition in the span: nothing failed)."""
        return all(result.success for result in self.results)


def stages(defs: dg.Definitions) -> list[Stage]:
    """Materializable assets in stages: an asset joins its parents' stage when it shares their partitioning."""
    graph = defs.resolve_asset_graph()
    level: dict[dg.AssetKey, int] = {}
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        if not node.is_materializable:
            continue
        level[key] = max(
            (
                level[parent] + (graph.get(parent).partitions_def != node.partitions_def)
                for parent in node.parent_keys
                if parent in level
            ),
            default=0,
        )
    grouped: dict[tuple[int, object], list[dg.AssetKey]] = {}
    for key, depth in level.items():
        grouped.setdefault((depth, graph.get(key).partitions_def), []).append(key)
    ordered = sorted(grouped.items(), key=lambda item: (item[0][0], item[0][1] is not None))
    return [
        Stage(
            tuple(keys),
            partitions_def,
            tuple(graph.get(key).group_name for key in keys),
            _partitions_per_run(graph.get(key).backfill_policy for key in keys),
        )
        for (_, partitions_def), keys in ordered
    ]


def _partitions_per_run(policies: Iterable[dg.BackfillPolicy | None]) -> int | None:
    limits = [policy.max_partitions_per_run for policy in policies if policy and policy.max_partitions_per_run]
    return min(limits, default=None)


def materialize_span(
    defs: dg.Definitions,
    lake: LakeResource,
    span: Window,
    instance: dg.DagsterInstance,
    *,
    config: Mapping[dg.AssetKey, Mapping[str, object]] | None = None,
    on_stage: Callable[[Stage], None] = lambda stage: None,
    on_done: Callable[[StageRun], None] = lambda run: None,
) -> list[StageRun]:
    """Run every stage over `span`; raises on the first failed run (a blocking check that failed included).

    `config` gives run config per asset (e.g. the training span of the fitted models).
    """
    runs = []
    for stage in stages(defs):
        on_stage(stage)
        run = run_stage(defs, lake, stage, span, instance, config=config)
        on_done(run)
        runs.append(run)
    return runs


def run_stage(
    defs: dg.Definitions,
    lake: LakeResource,
    stage: Stage,
    span: Window,
    instance: dg.DagsterInstance,
    *,
    config: Mapping[dg.AssetKey, Mapping[str, object]] | None = None,
) -> StageRun:
    """One stage's assets over `span`: runs of its job over the partition ranges its backfill policy allows, one
    after the other (one run for an unpartitioned stage)."""
    keys = stage.partition_keys(span)
    started = time.perf_counter()
    ranges = stage.runs(keys) if stage.partitions_def is not None else [[]]
    job = _job(defs, stage)
    ops = {"__".join(key.path): {"config": dict(c)} for key, c in (config or {}).items() if key in stage.keys}
    results = []
    for run_keys in ranges:
        release_dead_runs(instance)
        tags = {PARTITION_RANGE_START_TAG: run_keys[0], PARTITION_RANGE_END_TAG: run_keys[-1]} if run_keys else {}
        tags[WORKER_TAG] = f"{socket.gethostname()}:{os.getpid()}"
        results.append(
            job.execute_in_process(
                instance=instance, resources={"lake": lake}, tags=tags, run_config={"ops": ops, **QUIET_RUN}
            )
        )
    return StageRun(stage, len(keys), time.perf_counter() - started, tuple(results))


def _job(defs: dg.Definitions, stage: Stage) -> dg.JobDefinition:
    """The stage's job in `defs` (pipelines/definitions.py defines one per stage); for a stage of the caller's own
    (one mart, say), its job added to `defs` for the run."""
    if defs.get_repository_def().has_job(stage.job_name):
        return defs.resolve_job_def(stage.job_name)
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[stage.job()])).resolve_job_def(stage.job_name)


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail the unfinished in-process runs whose worker process on this host is gone and free their pool slots."""
    host = socket.gethostname()
    released = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        worker_host, _, pid = run.tags.get(WORKER_TAG, "").rpartition(":")
        if worker_host == host and pid.isdigit() and not psutil.pid_exists(int(pid)):
            instance.report_run_failed(run, f"run worker {pid} died mid-run")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released
