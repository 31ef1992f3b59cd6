"""The shape every mart asset shares: its declaration (partitions, pool, owners, schema) and how it publishes.

A mart asset reads its window from the lake, calls models/, and hands the rows to `publish`, which replaces the
window in `marts.<name>` and returns the materialization with the catalog metadata every mart carries.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext

import dagster as dg
import duckdb
import pyarrow as pa

from ingest.contract import TABLE_NAMES, TOPIC_MAINTENANCE
from pipelines.lib.marts import Closed, in_background, in_window, mart_key, replace_window, window_rows
from pipelines.lib.metadata import column_schema
from pipelines.lib.partitions import DAILY, HOURLY, Window, backfill_policy
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import RAW, raw_key

# Writers of the lake share this pool; dagster.yaml limits every pool to one step at a time.
LAKE_WRITE_POOL = "lake_write"
ANALYTICS_OWNERS = ("team:fleet-analytics",)
# Marts over raw telemetry: ten minutes past each hour, once the loader has reported new rows since then (so
# late telemetry of the hour has landed), the hour that just closed is computed. The maintenance calendar changes
# rarely, so the hour does not wait for it: its marts read whatever windows it declares by then.
AFTER_LOAD = dg.AutomationCondition.on_cron("10 * * * *").ignore(
    dg.AssetSelection.assets(raw_key(TABLE_NAMES[TOPIC_MAINTENANCE]))
)
# Automation is on from the start: every schedule and sensor of the location runs as soon as a daemon serves it
# (`leo-fleet ui`, so after `make demo` too). The one switch: set these to STOPPED to start with all of it off.
SENSORS_DEFAULT = dg.DefaultSensorStatus.RUNNING
SCHEDULES_DEFAULT = dg.DefaultScheduleStatus.RUNNING
# Each partitioned mart carries its cadence as a tag, so a selection can name the hourly marts (one partitioning, as
# a job's assets must share): the late-data sensor's target.
CADENCE_TAG = "leo-fleet/cadence"
CADENCES = {HOURLY: "hourly", DAILY: "daily"}
with warnings.catch_warnings():  # the parser passes a beta parameter (include_sources) of AssetSelection.tag
    warnings.simplefilter("ignore", dg.BetaWarning)
    HOURLY_MARTS = dg.AssetSelection.from_string(f'tag:"{CADENCE_TAG}"="{CADENCES[HOURLY]}"')
# Downstream marts follow their mart inputs: each new or updated upstream partition is recomputed once. Raw
# tables are ignored here: they reach these marts through the marts above.
FOLLOW_INPUTS = dg.AutomationCondition.eager().ignore(dg.AssetSelection.key_prefixes(RAW))


def mart_check(asset: str, name: str, description: str, *, blocking: bool = False) -> dg.AssetCheckSpec:
    """A check computed in the asset's own step, from the rows it has just read."""
    return dg.AssetCheckSpec(name, asset=mart_key(asset), description=description, blocking=blocking)


def mart_spec(
    name: str,
    *,
    group: str,
    description: str,
    schema: pa.Schema,
    deps: Sequence[dg.AssetKey],
    automation_condition: dg.AutomationCondition | None = FOLLOW_INPUTS,
) -> dg.AssetSpec:
    """The catalog entry of `marts.<name>`: owners, kinds, its SQL name and column schema, what it reads."""
    return dg.AssetSpec(
        key=mart_key(name),
        description=description,
        group_name=group,
        owners=list(ANALYTICS_OWNERS),
        kinds={"duckdb", "python"},
        deps=list(deps),
        automation_condition=automation_condition,
        metadata={"dagster/table_name": f"lake.marts.{name}", "dagster/column_schema": column_schema(schema)},
    )


def mart_assets(
    name: str,
    *specs: dg.AssetSpec,
    partitions_def: dg.PartitionsDefinition | None = HOURLY,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
) -> Callable:
    """`@dg.multi_asset` writing every mart of `specs` in one step (op `name`), so inputs they share are read and
    computed once: bounded backfill runs, the lake-write pool. The step yields one MaterializeResult per mart."""
    cadence = {CADENCE_TAG: CADENCES[partitions_def]} if partitions_def in CADENCES else {}
    return dg.multi_asset(
        name=name,
        specs=[spec.merge_attributes(tags=cadence) for spec in specs],
        partitions_def=partitions_def,
        backfill_policy=backfill_policy(partitions_def),
        pool=LAKE_WRITE_POOL,
        check_specs=list(check_specs),
    )


def mart_asset(
    name: str,
    *,
    group: str,
    description: str,
    schema: pa.Schema,
    deps: Sequence[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition | None = HOURLY,
    automation_condition: dg.AutomationCondition | None = FOLLOW_INPUTS,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
) -> Callable:
    """The asset of the one mart `marts.<name>` (op `marts__<name>`, as `@dg.asset` names it)."""
    spec = mart_spec(
        name,
        group=group,
        description=description,
        schema=schema,
        deps=deps,
        automation_condition=automation_condition,
    )
    return mart_assets("__".join(spec.key.path), spec, partitions_def=partitions_def, check_specs=check_specs)


def publish(
    lake: LakeResource,
    name: str,
    rows: pa.Table,
    window: Window,
    time_column: str,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    closed: Closed = "left",
    describe: Callable[[pa.Table], Mapping[str, object]] = lambda _: {},
    check_results: Sequence[dg.AssetCheckResult] = (),
) -> dg.MaterializeResult:
    """Replace `window` in `marts.<name>` with `rows` and describe what was written (for `marts/<name>`). `con`:
    the step's own read-write lake connection, if it holds one (each new connection costs tenths of a second).

    Each partition of the run gets its own metadata: its rows and window, and the last one `describe` of its
    rows (tables, charts: one partition's worth, the view a run of that partition alone would give). So a
    backfill's partitions are not 24 copies of the whole run's figures, and the history plots vary by partition."""
    written = window_rows(rows, time_column, window, closed)
    partitions = _partitions()
    last = written if not partitions else in_window(written, time_column, partitions[-1][1], closed)

    def write(cursor: duckdb.DuckDBPyConnection) -> None:
        replace_window(cursor, name, written, time_column, window, closed, lake.crash_points)

    # The write runs in DuckDB without the GIL: describing the rows (numpy, charts) overlaps it.
    with nullcontext(con) if con is not None else lake.connection() as con, in_background(con, write) as writing:
        description = describe(last)
        writing.result()
    context = dg.AssetExecutionContext.get()
    declared = context.assets_def.specs_by_key[mart_key(name)].metadata.get("dagster/column_schema")
    schema = {"dagster/column_schema": column_schema(written.schema, declared)}
    if not partitions:
        return dg.MaterializeResult(
            asset_key=mart_key(name),
            metadata={**schema, "dagster/row_count": written.num_rows, "window": str(window), **description},
            check_results=list(check_results),
        )
    for index, (key, part) in enumerate(partitions, 1):
        own = last if index == len(partitions) else in_window(written, time_column, part, closed)
        metadata = {"dagster/row_count": own.num_rows, "window": str(part)}
        context.add_asset_metadata(
            {**metadata, **(description if own is last else {})}, asset_key=mart_key(name), partition_key=key
        )
    return dg.MaterializeResult(asset_key=mart_key(name), metadata=schema, check_results=list(check_results))


def _partitions() -> list[tuple[str, Window]]:
    """The partitions the current run materializes, each with its own time window; none for an unpartitioned run."""
    context = dg.AssetExecutionContext.get()
    if not context.has_partition_key_range:
        return []
    definition = context.assets_def.partitions_def
    return [(key, Window.of_partition(definition, key)) for key in context.partition_keys]
