"""The raw lake tables as the telemetry contract: which table holds each stream, and reading a window of it.

The loader writes `raw.<stream>` with the contract's columns plus provenance (ingest/lake/raw_tables.py). Readers
select the contract's columns and `conform` them back to the Arrow schema, so models/ sees exactly what the
simulator produced (nanosecond timestamps, dictionary strings) whatever DuckDB stored.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contract import (
    INVENTORY_SCHEMA,
    LATENCY_OPS,
    MAINTENANCE_SCHEMA,
    NATURAL_KEYS,
    TABLE_NAMES,
    TELEMETRY_SCHEMAS,
    TIME_COLUMNS,
    TOPIC_ERRORS,
    TOPIC_INVENTORY,
    TOPIC_LATENCY,
    TOPIC_LINK,
    TOPIC_MAINTENANCE,
    TRUTH_FAULTS_SCHEMA,
    conform,
)
from ingest.lake.raw_tables import RAW, TRUTH_TABLE
from models.features import ERRORS_COLUMNS, LATENCY_COLUMNS, LINK_COLUMNS, Telemetry
from models.series import Controllers
from pipelines.lib.marts import read_window, window_query
from pipelines.lib.partitions import Window, read_chunk

# Controllers whose rows a stage holds at once (`by_controller_group`): its memory no longer grows with the fleet.
CONTROLLERS_PER_GROUP = 250
SPLIT_BATCH_ROWS = 1_000_000  # rows of a stream held at once while it is split by controller group
SPILL_ROWID = "_lake_rowid"  # each spilled row's rowid in the lake: of rows stored twice, the group keeps the first


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
    schema = stream_schema(topic, columns)
    where = f"({where}) AND {first_copies(topic)}"
    rows = read_window(
        con, raw_table(topic), TIME_COLUMNS[topic], window, _columns(schema), where=where, order_by=_order(topic)
    )
    return conform(rows, schema)


def _order_keys(topic: str) -> list[str]:
    """The order `read_stream` gives a stream's rows in: time, then the natural key (unique once copies are gone)."""
    return list(dict.fromkeys([TIME_COLUMNS[topic], *NATURAL_KEYS[topic]]))


def _order(topic: str) -> str:
    return ", ".join(_order_keys(topic))


def stream_schema(topic: str, columns: Sequence[str] | None) -> pa.Schema:
    """A stream's contract schema, or the part of it that holds `columns`."""
    schema = TELEMETRY_SCHEMAS[topic]
    if columns is None:
        return schema
    return pa.schema([schema.field(name) for name in columns], metadata=schema.metadata)


@dataclass(frozen=True)
class StreamRead:
    """What a reader takes of one stream: its columns (None: all) and which rows (SQL)."""

    topic: str
    columns: Sequence[str] | None = None
    where: str = "TRUE"


def read_chunks(con: duckdb.DuckDBPyConnection, window: Window) -> list[Window]:
    """`window` in the chunks raw latency is read in for the lake's fleet (its inventory), so that memory stays
    flat as the fleet grows."""
    (controllers,) = con.execute(f"SELECT count(DISTINCT controller_id) FROM {raw_table(TOPIC_INVENTORY)}").fetchone()
    return list(window.chunks(read_chunk(controllers)))


def stream_controllers(con: duckdb.DuckDBPyConnection, topics: Iterable[str], window: Window) -> pa.Array:
    """The controllers with rows in `window` of any of `topics` (DuckDB finds them; no row is fetched)."""
    sql = " UNION ".join(
        window_query(raw_table(topic), TIME_COLUMNS[topic], "DISTINCT controller_id") for topic in topics
    )
    return con.execute(sql, {"start": window.start, "end": window.end}).to_arrow_table().column(0).combine_chunks()


def by_controller_group(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    reads: Sequence[StreamRead],
    controllers: Controllers,
    group_size: int = CONTROLLERS_PER_GROUP,
) -> Iterator[tuple[Controllers, dict[str, pa.Table]]]:
    """Each group of `group_size` consecutive `controllers` with its rows of `window` in every stream of `reads`
    (by topic, as `read_stream` gives them): what a controller's detectors and features need is its own sequence,
    so memory is bounded by the group, not by the fleet. Each stream is scanned once, streamed in batches and split
    by group into Parquet files in a temporary directory, read back one group at a time: time grows with the rows,
    not with rows × groups. Rows of controllers outside `controllers` are dropped. Rows stored twice are dropped
    group by group (a copy has its first's controller), so finding them, too, holds a group's rows at a time: over
    a 10,000-controller fleet's week of lookback the fleet-wide search for copies took a run to 6 GiB RSS."""
    with tempfile.TemporaryDirectory(prefix="leo-fleet-groups-") as spill:
        groups = max(1, -(-len(controllers) // group_size))  # one (empty) group of no controllers
        for read in reads:
            _split(con, window, read, controllers, group_size, Path(spill, read.topic))
        for index in range(groups):
            group = Controllers(controllers.ids[index * group_size : (index + 1) * group_size])
            tables = {}
            for read in reads:
                path = Path(spill, read.topic, f"{index}.parquet")
                schema = stream_schema(read.topic, read.columns)
                tables[read.topic] = (
                    read_spilled_group(con, str(path), read.topic, schema) if path.exists() else schema.empty_table()
                )
            yield group, tables


def _split(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    read: StreamRead,
    controllers: Controllers,
    group_size: int,
    into: Path,
) -> None:
    """One stream's rows of `window`, a batch at a time, into one Parquet file per controller group under `into`,
    each row with its lake rowid and the keys its group is sorted and rid of copies by."""
    into.mkdir()
    schema = stream_schema(read.topic, read.columns)
    missing = [key for key in _order_keys(read.topic) if key not in schema.names]
    columns = ", ".join([_columns(schema), *(f'"{key}"' for key in missing), f"rowid AS {SPILL_ROWID}"])
    sql = window_query(raw_table(read.topic), TIME_COLUMNS[read.topic], columns, where=read.where)
    batches = con.execute(sql, {"start": window.start, "end": window.end}).to_arrow_reader(SPLIT_BATCH_ROWS)
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for batch in batches:
            group = controllers.codes(batch.column("controller_id")) // group_size  # -1: not one of `controllers`
            order = np.argsort(group, kind="stable")
            rows, group = batch.take(pa.array(order)), group[order]
            bounds = np.searchsorted(group, np.arange(group.max(initial=-1) + 2))
            for index in np.flatnonzero(np.diff(bounds)):
                if index not in writers:
                    writers[index] = pq.ParquetWriter(into / f"{index}.parquet", batch.schema)
                writers[index].write_batch(rows.slice(bounds[index], bounds[index + 1] - bounds[index]))
    finally:
        for writer in writers.values():
            writer.close()


def read_spilled_group(con: duckdb.DuckDBPyConnection, path: str, topic: str, schema: pa.Schema) -> pa.Table:
    """One group's rows of a stream back from its spill file(s) (`path`, a glob too), the first stored of each
    natural key only, in the order `read_stream` gives them and in `schema`'s types."""
    keys = ", ".join(NATURAL_KEYS[topic])
    sql = (
        f"SELECT {_columns(schema)} FROM read_parquet('{path}') "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {SPILL_ROWID}) = 1 ORDER BY {_order(topic)}"
    )
    return conform(con.execute(sql).to_arrow_table(), schema)


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


def read_maintenance(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """The declared maintenance windows that overlap `window`, each once (a calendar published twice is one)."""
    sql = (
        f"SELECT DISTINCT {_columns(MAINTENANCE_SCHEMA)} FROM {raw_table(TOPIC_MAINTENANCE)} "
        "WHERE end_ts >= $start AND start_ts <= $end ORDER BY ALL"
    )
    rows = con.execute(sql, {"start": window.start, "end": window.end}).to_arrow_table()
    return conform(rows, MAINTENANCE_SCHEMA)


def telemetry_by_group(
    con: duckdb.DuckDBPyConnection, window: Window, latency_op: str, group_size: int = CONTROLLERS_PER_GROUP
) -> Iterator[tuple[Controllers, Telemetry]]:
    """What the features read (models.features *_COLUMNS), a group of controllers at a time (`by_controller_group`):
    the inventory's controllers and those with health or error rows in `window`, with only the CXL `latency_op`
    rows of the latency histograms (the per-controller SLO's): a fleet-day of every column and tier is gigabytes.
    Each group's Telemetry holds the whole inventory."""
    if latency_op not in LATENCY_OPS:
        raise ValueError(f"unknown latency op {latency_op!r}: one of {LATENCY_OPS}")
    inventory = read_inventory(con)
    controllers = Controllers.of(inventory.column("controller_id"), stream_controllers(con, [TOPIC_ERRORS], window))
    reads = [
        StreamRead(TOPIC_ERRORS, ERRORS_COLUMNS),
        StreamRead(TOPIC_LINK, LINK_COLUMNS),
        StreamRead(TOPIC_LATENCY, LATENCY_COLUMNS, f"memory_tier = 'cxl' AND op = '{latency_op}'"),
    ]
    for group, tables in by_controller_group(con, window, reads, controllers, group_size):
        yield group, Telemetry(tables[TOPIC_ERRORS], tables[TOPIC_LINK], tables[TOPIC_LATENCY], inventory)


def read_truth(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Injected faults, for evaluation only: no detector ever reads this."""
    sql = f"SELECT {_columns(TRUTH_FAULTS_SCHEMA)} FROM {RAW}.{TRUTH_TABLE}"
    return conform(con.execute(sql).to_arrow_table(), TRUTH_FAULTS_SCHEMA)
