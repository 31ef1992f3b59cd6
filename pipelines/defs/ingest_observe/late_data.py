"""Late telemetry revises the hours it belongs to: a sensor that finds raw rows which landed after their hour's
marts were computed, and asks for those hours again.

The hourly marts over raw telemetry run at ten past the hour (`AFTER_LOAD`), and their followers only follow the
latest hour, so rows of an hour already computed (a batch an agent held back, a loader that caught up after an
outage) would otherwise never reach the marts. DuckLake records every insert in a snapshot: the sensor reads the
rows inserted since the last snapshot it saw (`table_changes`, the time column only), and for each hour they belong
to it compares when they landed with the start of the run that last materialized each hourly mart's partition. The
marts computed before the rows landed are requested again for that hour, in one run, in dependency order.

A maintenance window declared late (the change calendar caught up after the fact) revises every hour it covers:
a reset in it becomes planned and its downtime leaves the availability SLI, as if the window had come on time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb

from ingest.contract import TABLE_NAMES, TIME_COLUMNS, TOPIC_MAINTENANCE
from ingest.lake import LAKE_ALIAS
from ingest.lake.raw_tables import RAW
from pipelines.defs.ingest_observe.observe import OBSERVE_EVERY_S
from pipelines.lib.assets import HOURLY_MARTS, SENSORS_DEFAULT
from pipelines.lib.partitions import HOUR_FORMAT
from pipelines.lib.resources import LakeResource

# On its first tick the sensor looks this far back for rows that landed late (later ticks resume from its cursor).
FIRST_LOOKBACK = timedelta(hours=6)
HOUR_S = 3600
# The time span each stream's row bears on, (first, last): a telemetry row on its own hour, a window on every hour
# it covers.
ROW_SPANS: dict[str, tuple[str, str]] = {topic: (column, column) for topic, column in TIME_COLUMNS.items()} | {
    TOPIC_MAINTENANCE: ("start_ts", "end_ts")
}


@dg.sensor(
    name="late_data",
    minimum_interval_seconds=OBSERVE_EVERY_S,
    default_status=SENSORS_DEFAULT,
    target=HOURLY_MARTS,
    description="Finds raw telemetry rows that landed after their hour's marts were computed (late or re-sent "
    "batches, a loader catching up) and maintenance windows declared after the hours they cover, in the lake's "
    "snapshots, and requests those hours' marts again.",
)
def late_data(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    try:
        with lake.connection(read_only=True) as con:
            last, arrivals = landed_since(con, int(context.cursor) if context.cursor else None)
    except (FileNotFoundError, duckdb.CatalogException) as exc:
        return dg.SkipReason(f"no lake to watch yet: {str(exc).splitlines()[0]}")
    graph = context.repository_def.asset_graph
    hourly = HOURLY_MARTS.resolve(graph)
    requests = []
    for hour, landed in sorted(arrivals.items()):
        partition = hour.strftime(HOUR_FORMAT)
        stale = [key for key in hourly if _computed_before(context.instance, key, partition, landed)]
        if stale:
            selection = dg.AssetSelection.assets(*stale).required_multi_asset_neighbors().resolve(graph)
            requests.append(
                dg.RunRequest(
                    run_key=f"late-{partition}-{last}",
                    partition_key=partition,
                    asset_selection=sorted(selection, key=dg.AssetKey.to_user_string),
                    tags={"leo-fleet/late_rows_landed": landed.isoformat()},
                )
            )
    context.update_cursor(str(last))
    return dg.SensorResult(run_requests=requests)


def landed_since(con: duckdb.DuckDBPyConnection, seen: int | None) -> tuple[int, dict[datetime, datetime]]:
    """The lake's last snapshot, and per hour of telemetry time, when its latest rows inserted after snapshot
    `seen` landed (None: the snapshots of the last FIRST_LOOKBACK)."""
    snapshots = f"ducklake_snapshots('{LAKE_ALIAS}')"
    if seen is None:
        (first, last) = con.execute(
            f"SELECT min(snapshot_id) FILTER (WHERE snapshot_time >= now() - $lookback), max(snapshot_id) "
            f"FROM {snapshots}",
            {"lookback": FIRST_LOOKBACK},
        ).fetchone()
    else:
        first, (last,) = seen + 1, con.execute(f"SELECT max(snapshot_id) FROM {snapshots}").fetchone()
    if first is None or first > last:
        return last, {}
    landed: dict[datetime, datetime] = {}
    for hour, at in _hours(con, snapshots, first, last):
        moment = datetime.fromtimestamp(hour * HOUR_S, UTC)
        landed[moment] = max(at, landed.get(moment, at))
    return last, landed


def _hours(con: duckdb.DuckDBPyConnection, snapshots: str, first: int, last: int) -> Iterable[tuple[int, datetime]]:
    """(hour since the epoch, latest landing time) of the hours the rows each raw table gained in [first, last]
    bear on."""
    for topic, (begins, ends) in ROW_SPANS.items():
        sql = f"""
            SELECT hour, max(landed) FROM (
                SELECT unnest(range(floor(epoch(c.{begins}) / {HOUR_S})::BIGINT,
                                    floor(epoch(c.{ends}) / {HOUR_S})::BIGINT + 1)) AS hour,
                       s.snapshot_time AS landed
                FROM ducklake_table_changes('{LAKE_ALIAS}', '{RAW}', '{TABLE_NAMES[topic]}', $first, $last) c
                JOIN {snapshots} s USING (snapshot_id)
                WHERE c.change_type = 'insert')
            GROUP BY hour"""
        yield from con.execute(sql, {"first": first, "last": last}).fetchall()


def _computed_before(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, landed: datetime) -> bool:
    """Whether `key`'s partition was last materialized by a run that started before `landed` (never: False, the
    hour's first computation is the schedule's)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return False
    entry = records[0].event_log_entry
    run = instance.get_run_record_by_id(entry.run_id)
    started = run.start_time if run is not None and run.start_time is not None else entry.timestamp
    return datetime.fromtimestamp(started, UTC) < landed
