"""Observing the stream process: a sensor that reads the loader's reports from the lake, and the loader as a
Dagster job for batch use (drain every partition, then stop).

No Kafka client runs inside a sensor (pipeline_patterns.md §1.6): the sensor only reads what the loader wrote.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import duckdb

from pipelines.lib.assets import SENSORS_DEFAULT
from pipelines.lib.resources import LakeResource
from pipelines.lib.stream_status import StreamStatus, raw_events, read_loader, read_streams

# The docs suggest 60–120 s for observation sensors; the loader reports at least every 30 s.
OBSERVE_EVERY_S = 60


@dg.sensor(
    name="loader_observer",
    minimum_interval_seconds=OBSERVE_EVERY_S,
    default_status=SENSORS_DEFAULT,
    description="Reads the loader's status rows and the raw tables from the lake; records lag, rows/s and "
    "watermark age as observations of the raw tables, and a materialization of each table that gained rows.",
)
def loader_observer(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    try:
        with lake.connection(read_only=True) as con:
            streams, loader = read_streams(con), read_loader(con)
    except (FileNotFoundError, duckdb.CatalogException) as exc:
        return dg.SkipReason(f"nothing to observe yet: {str(exc).splitlines()[0]}")
    cursor = json.loads(context.cursor or "{}")
    status_ts = loader["ts"].isoformat() if loader else None
    rows = {stream.name: stream.rows for stream in streams}
    if status_ts == cursor.get("status_ts") and rows == cursor.get("rows"):
        return dg.SkipReason(f"no new loader status since {status_ts}")
    events = raw_events(streams, loader, cursor.get("rows", {}), datetime.now(UTC))
    context.update_cursor(json.dumps({"status_ts": status_ts, "rows": rows}))
    return dg.SensorResult(asset_events=events)


@dg.op(description="Run the exactly-once loader until every assigned partition is drained, then stop.")
def load_until_idle(
    context: dg.OpExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetObservation | dg.AssetMaterialization | dg.Output]:
    from ingest.lake.loader import Loader, LoaderOptions

    def log(status: dict) -> None:
        context.log.info(
            f"{status['rows_total']:,} rows, {status['rows_per_s']:,.0f} rows/s, lag {status['lag_total']:,} messages"
        )

    before = {stream.name: stream.rows for stream in _streams_so_far(lake)}
    final = Loader(lake.settings, LoaderOptions(follow=False, crash_points=lake.crash_points), on_status=log).run()
    with lake.connection(read_only=True) as con:
        streams, loader = read_streams(con), read_loader(con)
    yield from raw_events(streams, loader, before, datetime.now(UTC))
    yield dg.Output(
        None,
        metadata={
            key: final[key]
            for key in (
                "rows_total",
                "messages_total",
                "quarantined_total",
                "replayed_messages_skipped",
                "duplicate_messages_skipped",
                "elapsed_s",
            )
        },
    )


def _streams_so_far(lake: LakeResource) -> list[StreamStatus]:
    """The raw tables before loading; none before the first load created the lake."""
    try:
        with lake.connection(read_only=True) as con:
            return read_streams(con)
    except (FileNotFoundError, duckdb.CatalogException):
        return []


@dg.job(
    name="ingest_until_idle",
    description="`leo-fleet ingest --until-idle` as a Dagster job: load everything on the topics, record the raw "
    "tables' new rows as materializations, and stop.",
)
def ingest_until_idle() -> None:
    load_until_idle()
