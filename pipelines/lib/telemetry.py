"""The raw lake tables as the telemetry contract: which table holds each stream, and reading a window of it.

The loader writes `raw.<stream>` with the contract's columns plus provenance (ingest/lake/raw_tables.py). Readers
select the contract's columns and `conform` them back to the Arrow schema, so models/ sees exactly what the
simulator produced (nanosecond timestamps, dictionary strings) whatever DuckDB stored.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pyarrow as pa

from ingest.contract import (
    INVENTORY_SCHEMA,
    TABLE_NAMES,
    TELEMETRY_SCHEMAS,
    TIME_COLUMNS,
    TOPIC_ERRORS,
    TOPIC_INVENTORY,
    TOPIC_LATENCY,
    TOPIC_LINK,
    TRUTH_FAULTS_SCHEMA,
    conform,
)
from ingest.lake.raw_tables import RAW, TRUTH_TABLE
from models.features import Telemetry
from pipelines.lib.marts import read_window
from pipelines.lib.partitions import Window


def raw_table(topic: str) -> str:
    return f"{RAW}.{TABLE_NAMES[topic]}"


def raw_key(name: str) -> dg.AssetKey:
    """Asset key of a raw lake table: raw/<table>, mirroring its SQL name raw.<table>."""
    return dg.AssetKey([RAW, name])


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f'"{name}"' for name in schema.names)


def read_stream(con: duckdb.DuckDBPyConnection, topic: str, window: Window) -> pa.Table:
    """One telemetry stream's rows in `window`, in its contract schema."""
    schema = TELEMETRY_SCHEMAS[topic]
    return conform(read_window(con, raw_table(topic), TIME_COLUMNS[topic], window, _columns(schema)), schema)


def read_inventory(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every inventory row (re-deployments included): small, and not partitioned by time."""
    sql = f"SELECT {_columns(INVENTORY_SCHEMA)} FROM {raw_table(TOPIC_INVENTORY)}"
    return conform(con.execute(sql).to_arrow_table(), INVENTORY_SCHEMA)


def read_telemetry(con: duckdb.DuckDBPyConnection, window: Window) -> Telemetry:
    return Telemetry(
        errors=read_stream(con, TOPIC_ERRORS, window),
        link=read_stream(con, TOPIC_LINK, window),
        latency=read_stream(con, TOPIC_LATENCY, window),
        inventory=read_inventory(con),
    )


def read_truth(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Injected faults, for evaluation only: no detector ever reads this."""
    sql = f"SELECT {_columns(TRUTH_FAULTS_SCHEMA)} FROM {RAW}.{TRUTH_TABLE}"
    return conform(con.execute(sql).to_arrow_table(), TRUTH_FAULTS_SCHEMA)
