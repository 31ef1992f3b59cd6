"""What the standalone loader has done, as Dagster sees it: read from the lake, never from Kafka.

The loader writes a status row (rows/s, lag per partition, state) with every batch and at least every 30 s
(ingest/lake/raw_tables.py). From it and the raw tables' row counts and event-time watermarks, `raw_events` builds an
observation per raw table (lag, rows/s, watermark age) and, when a table gained rows, a runless materialization:
the loader did materialize new data, and the raw tables' freshness policy and the marts' automation key off it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import duckdb

from ingest.contract import TABLE_NAMES, TIME_COLUMNS, TOPIC_INVENTORY
from ingest.lake.raw_tables import STATUS_TABLE
from pipelines.lib.telemetry import RAW, raw_key, raw_table

# The time column of each raw table that the loader appends to (the inventory is stamped by deployment).
WATERMARK_COLUMNS = {**TIME_COLUMNS, TOPIC_INVENTORY: "deployed_at"}


@dataclass(frozen=True)
class StreamStatus:
    name: str
    rows: int
    watermark: datetime | None  # the latest event time in the table


def read_streams(con: duckdb.DuckDBPyConnection) -> list[StreamStatus]:
    streams = []
    for topic, column in WATERMARK_COLUMNS.items():
        rows, watermark = con.execute(f"SELECT count(*), max({column}) FROM {raw_table(topic)}").fetchone()
        streams.append(StreamStatus(TABLE_NAMES[topic], int(rows), watermark))
    return streams


def read_loader(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The latest status row any loader wrote, or None before the first."""
    cursor = con.execute(f"SELECT * FROM {RAW}.{STATUS_TABLE} ORDER BY ts DESC LIMIT 1")
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))


def _lag_table(lag_by_partition: str | None) -> dg.MetadataValue:
    lag = json.loads(lag_by_partition or "{}")
    lines = ["| topic/partition | messages behind |", "|---|---:|", *(f"| {k} | {v} |" for k, v in sorted(lag.items()))]
    return dg.MetadataValue.md("\n".join(lines))


def raw_events(
    streams: list[StreamStatus], loader: dict | None, previous_rows: dict[str, int], now: datetime
) -> list[dg.AssetObservation | dg.AssetMaterialization]:
    """An observation per raw table, plus a materialization for each that gained rows since `previous_rows`."""
    loader_metadata = {}
    if loader is not None:
        loader_metadata = {
            "loader_id": loader["loader_id"],
            "loader_state": loader["state"],
            "loader_status_age_s": round((now - loader["ts"]).total_seconds(), 1),
            "rows_per_s": float(loader["rows_per_s"] or 0.0),
            "lag_messages": int(loader["lag_total"] or 0),
            "lag_by_partition": _lag_table(loader["lag_by_partition"]),
            "quarantined_total": int(loader["quarantined_total"] or 0),
        }
    events: list[dg.AssetObservation | dg.AssetMaterialization] = []
    for stream in streams:
        watermark = {}
        if stream.watermark is not None:
            watermark = {
                "watermark": stream.watermark.isoformat(),
                "watermark_age_s": round((now - stream.watermark).total_seconds(), 1),
            }
        key = raw_key(stream.name)
        events.append(
            dg.AssetObservation(asset_key=key, metadata={"rows": stream.rows, **watermark, **loader_metadata})
        )
        gained = stream.rows - previous_rows.get(stream.name, 0)
        if gained > 0:
            events.append(
                dg.AssetMaterialization(
                    asset_key=key, metadata={"dagster/row_count": stream.rows, "new_rows": gained, **watermark}
                )
            )
    return events
