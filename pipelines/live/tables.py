"""The live path's lake tables, in schema `sre` beside the views: the one owner of their names and shapes.

`sre.live_incidents` and `sre.alerts` are what SREs query; `sre.alert_outbox` is the append-only log of alert
changes the delivery reads (written in the same transaction as `sre.alerts`); `sre.alert_delivery` holds each
sink's cursor into it and `sre.live_position` the live process's position in the lake and its state, both
append-only so that a crash can leave at most a row too few, never a half-updated one.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingest.lake.raw_tables import TS_US
from pipelines.sql import SCHEMA

LIVE_INCIDENTS = f"{SCHEMA}.live_incidents"
ALERTS = f"{SCHEMA}.alerts"
OUTBOX = f"{SCHEMA}.alert_outbox"
DELIVERY = f"{SCHEMA}.alert_delivery"
POSITION = f"{SCHEMA}.live_position"

LIVE_INCIDENTS_SCHEMA = pa.schema(
    [
        pa.field("incident_id", pa.string(), nullable=False),  # models.incidents.incident_id: the marts' id too
        pa.field("kind", pa.string(), nullable=False),  # reset | drop | slo_page
        pa.field("subject", pa.string(), nullable=False),  # controller_id, or slo/group for an SLO page
        pa.field("start_ts", TS_US, nullable=False),  # data time
        pa.field("detected_ts", TS_US, nullable=False),  # data time of the first evidence
        pa.field("end_ts", TS_US),  # data time; null while open
        pa.field("evidence", pa.string()),
        pa.field("fired_at", TS_US, nullable=False),  # wall clock of the live process
        pa.field("resolved_at", TS_US),
    ]
)
# One alert change: Alertmanager's postable alert (labels, annotations, startsAt, endsAt, generatorURL) plus where
# it came from. `status` is firing while ends_at is null.
_ALERT_FIELDS = [
    pa.field("fingerprint", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("alertname", pa.string(), nullable=False),
    pa.field("labels", pa.string(), nullable=False),  # JSON object
    pa.field("annotations", pa.string(), nullable=False),  # JSON object
    pa.field("starts_at", TS_US, nullable=False),
    pa.field("ends_at", TS_US),
    pa.field("generator_url", pa.string(), nullable=False),
    pa.field("incident_id", pa.string(), nullable=False),
    pa.field("recorded_at", TS_US, nullable=False),
]
ALERTS_SCHEMA = pa.schema(_ALERT_FIELDS)
OUTBOX_SCHEMA = pa.schema([pa.field("seq", pa.int64(), nullable=False), *_ALERT_FIELDS])
DELIVERY_SCHEMA = pa.schema(
    [
        pa.field("sink", pa.string(), nullable=False),  # webhook URL or kafka topic
        pa.field("delivered_seq", pa.int64(), nullable=False),  # every outbox row up to it was accepted
        pa.field("delivered_at", TS_US, nullable=False),
        pa.field("alerts", pa.int64(), nullable=False),
        pa.field("attempts", pa.int64(), nullable=False),  # requests it took, failures included
    ]
)
POSITION_SCHEMA = pa.schema(
    [
        pa.field("snapshot_id", pa.int64(), nullable=False),  # every raw row committed up to it has been read
        pa.field("buffer_from", TS_US, nullable=False),  # the state: rows with ts >= it are carried between batches
        pa.field("committed_at", TS_US, nullable=False),
    ]
)
SHAPES = {
    LIVE_INCIDENTS: LIVE_INCIDENTS_SCHEMA,
    ALERTS: ALERTS_SCHEMA,
    OUTBOX: OUTBOX_SCHEMA,
    DELIVERY: DELIVERY_SCHEMA,
    POSITION: POSITION_SCHEMA,
}


def ensure_live_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema `sre` and the live tables if missing (idempotent; `catalog_lock` around it on first use)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name, schema in SHAPES.items():
        con.register("empty_shape", schema.empty_table())
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM empty_shape")
        finally:
            con.unregister("empty_shape")


def append(con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None:
    """Insert `rows` (by column name) into live table `name`, inside the caller's transaction."""
    if rows.num_rows:
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM rows")  # DuckDB reads the local Arrow table
