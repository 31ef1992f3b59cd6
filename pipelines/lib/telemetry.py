"""The raw lake tables as the telemetry contract: which table holds each stream, and reading a window of it.

The loader writes `raw.<stream>` with the contract's columns plus provenance (ingest/lake/raw_tables.py). Readers
select the contract's columns and `conform` them back to the Arrow schema, so models/ sees exactly what the
simulator produced (nanosecond timestamps, dictionary strings) whatever DuckDB stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import duckdb
import pyarrow as pa

from ingest.contract import (
    INVENTORY_SCHEMA,
    LATENCY_OPS,
    NATURAL_KEYS,
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
from models.features import ERRORS_COLUMNS, LATENCY_COLUMNS, LINK_COLUMNS, Telemetry
from pipelines.lib.marts import read_window
from pipelines.lib.partitions import Window


def raw_table(topic: str) -> str:
    return f"{RAW}.{TABLE_NAMES[topic]}"


def raw_key(name: str) -> dg.AssetKey:
    """Asset key of a raw lake table: raw/<table>, mirroring its SQL name raw.<table>."""
    return dg.AssetKey([RAW, name])


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f'"{name}"' for name in schema.names)


def read_stream(
    con: duckdb.DuckDBPyConnection,
    topic: str,
    window: Window,
    columns: Sequence[str] | None = None,
    where: str = "TRUE",
) -> pa.Table:
    """One telemetry stream's rows in `window` that satisfy `where` (SQL), in its contract schema (only `columns`
    of it, if given): what a reader does not need is never read. A row stored again (a batch re-sent in a new
    Kafka message) is read once (`first_copies`), and rows come in time and natural-key order, not in the order
    they landed: a late batch gives the same input, down to the order of float sums, as an on-time one."""
    schema = TELEMETRY_SCHEMAS[topic]
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns], metadata=schema.metadata)
    column = TIME_COLUMNS[topic]
    where = f"({where}) AND {first_copies(topic)}"
    order = ", ".join(dict.fromkeys([column, *NATURAL_KEYS[topic]]))
    rows = read_window(con, raw_table(topic), column, window, _columns(schema), where=where, order_by=order)
    return conform(rows, schema)


def first_copies(topic: str) -> str:
    """SQL condition of `read_window` (its $start and $end) that keeps, of rows sharing a natural key, the first
    stored (DuckLake's rowid grows with each insert). The loader's exactly-once is per Kafka message, so the rows of
    a batch an agent sent twice are stored twice; readers drop the copies. The scan for copies reads the key
    columns only, over the window with both ends included (the outer filter applies the window's own ends)."""
    column, keys = TIME_COLUMNS[topic], ", ".join(NATURAL_KEYS[topic])
    copies = (
        f"SELECT rowid FROM {raw_table(topic)} WHERE {column} >= $start AND {column} <= $end "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY rowid) > 1"
    )
    return f"rowid NOT IN ({copies})"


def read_inventory(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every inventory row (re-deployments included): small, and not partitioned by time."""
    sql = f"SELECT {_columns(INVENTORY_SCHEMA)} FROM {raw_table(TOPIC_INVENTORY)}"
    return conform(con.execute(sql).to_arrow_table(), INVENTORY_SCHEMA)


def read_telemetry(con: duckdb.DuckDBPyConnection, window: Window, latency_op: str) -> Telemetry:
    """What the features read (models.features *_COLUMNS), with only the CXL `latency_op` rows of the latency
    histograms (the per-controller SLO's): a fleet-day of every column and tier is gigabytes."""
    if latency_op not in LATENCY_OPS:
        raise ValueError(f"unknown latency op {latency_op!r}: one of {LATENCY_OPS}")
    return Telemetry(
        errors=read_stream(con, TOPIC_ERRORS, window, ERRORS_COLUMNS),
        link=read_stream(con, TOPIC_LINK, window, LINK_COLUMNS),
        latency=read_stream(
            con, TOPIC_LATENCY, window, LATENCY_COLUMNS, f"memory_tier = 'cxl' AND op = '{latency_op}'"
        ),
        inventory=read_inventory(con),
    )


def read_truth(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Injected faults, for evaluation only: no detector ever reads this."""
    sql = f"SELECT {_columns(TRUTH_FAULTS_SCHEMA)} FROM {RAW}.{TRUTH_TABLE}"
    return conform(con.execute(sql).to_arrow_table(), TRUTH_FAULTS_SCHEMA)
