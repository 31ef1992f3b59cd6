"""Reading a time window out of the lake and replacing exactly that window of a mart table.

Assets never hold analytics logic; they read their window (plus any lookback the analytics need), call models/,
and publish the result here. Publishing deletes the window's rows and inserts the new ones in ONE transaction, so
a re-run replaces rather than duplicates, and a failure leaves the previous rows in place. Rows that the analytics
produced for the lookback are dropped before writing: an asset only ever writes its own partitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.lake import lake_cursor
from ingest.lake.fault_injection import MART_STAGE, CrashPoints
from ingest.lake.raw_tables import add_missing_columns, table_columns
from pipelines.lib.partitions import Window

MARTS = "marts"


def mart_key(name: str) -> dg.AssetKey:
    """Asset key of a mart table: marts/<name>, mirroring its SQL name marts.<name>."""
    return dg.AssetKey([MARTS, name])


# Which side of the window a row's timestamp may touch: "left" keeps start <= t < end (events, windows keyed by
# their start); "right" keeps start < t <= end (features and scores keyed by the end of the hour they describe).
Closed = Literal["left", "right"]


def _bounds(closed: Closed) -> tuple[str, str]:
    """SQL comparisons of a row's time with the window's start and end."""
    return (">=", "<") if closed == "left" else (">", "<=")


def read_window(
    con: duckdb.DuckDBPyConnection,
    table: str,
    time_column: str,
    window: Window,
    columns: str = "*",
    closed: Closed = "left",
    where: str = "TRUE",
    order_by: str | None = None,
    params: Mapping[str, object] | None = None,
) -> pa.Table:
    """Rows of `table` whose `time_column` lies in `window` (see `Closed`) and that satisfy `where` (SQL, its values
    bound from `params`), as Arrow with nanosecond timestamps (the lake stores microseconds; models/ computes in
    nanoseconds); in the order of `order_by` (SQL), else as stored."""
    sql = window_query(table, time_column, columns, closed, where)
    if order_by is not None:
        sql += f" ORDER BY {order_by}"
    rows = con.execute(sql, {**(params or {}), "start": window.start, "end": window.end}).to_arrow_table()
    return rows.cast(pa.schema([_nanoseconds(field) for field in rows.schema]))


def window_query(table: str, time_column: str, columns: str = "*", closed: Closed = "left", where: str = "TRUE") -> str:
    """The SQL of `read_window`, the window's bounds as parameters $start and $end: for readers that stream it."""
    lower, upper = _bounds(closed)
    bounds = f"{time_column} {lower} $start AND {time_column} {upper} $end"
    return f"SELECT {columns} FROM {table} WHERE {bounds} AND ({where})"


T = TypeVar("T")
K = TypeVar("K")


@contextlib.contextmanager
def in_background(
    con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T]
) -> Iterator[Future[T]]:
    """`work(cursor)` in a thread on a cursor of its own while the caller goes on with `con`: a check's SQL scan
    runs without the GIL, so it overlaps the caller's numpy work instead of preceding it. Leaving the block waits
    for the work."""
    with (
        contextlib.closing(lake_cursor(con)) as cursor,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-sql") as worker,
    ):
        yield worker.submit(work, cursor)


def read_ahead(
    con: duckdb.DuckDBPyConnection, parts: Iterable[K], read: Callable[[duckdb.DuckDBPyConnection, K], T]
) -> Iterator[T]:
    """`read(cursor, part)` for each part (a window, a batch of controllers) in order, the next part read while the
    caller works on this one.

    DuckDB reads without holding the GIL, so on two cores the lake read of one chunk overlaps the numpy work on the
    one before. The reads run on a cursor of their own (a second connection to the same attached lake), so the
    caller may keep using `con`; at most two chunks are in memory at once.
    """
    with (
        contextlib.closing(lake_cursor(con)) as cursor,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader,
    ):
        pending = None
        for part in parts:
            following = reader.submit(read, cursor, part)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


def _nanoseconds(field: pa.Field) -> pa.Field:
    if pa.types.is_timestamp(field.type) and field.type.unit != "ns":
        return field.with_type(pa.timestamp("ns", tz=field.type.tz))
    return field


def read_mart(
    con: duckdb.DuckDBPyConnection,
    name: str,
    schema: pa.Schema,
    time_column: str,
    window: Window,
    closed: Closed = "left",
) -> pa.Table:
    """Rows of `marts.<name>` in `window`, cast back to the schema models/ produced them in."""
    columns = ", ".join(f'"{n}"' for n in schema.names)
    return read_window(con, f"{MARTS}.{name}", time_column, window, columns, closed).cast(schema)


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded to their values: the lake stores plain types."""
    fields = [
        field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def replace_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> pa.Table:
    """Make `marts.<name>` hold exactly `table` (for unpartitioned results such as fitted baselines)."""
    rows = _plain(table)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {MARTS}")
    con.register("incoming", rows)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {MARTS}.{name} AS SELECT * FROM incoming")
    finally:
        con.unregister("incoming")
    return rows


def in_window(table: pa.Table, time_column: str, window: Window, closed: Closed = "left") -> pa.Table:
    """The rows of `table` that belong to `window` (see `Closed`)."""
    column = table.column(time_column)
    start, end = pa.scalar(window.start, column.type), pa.scalar(window.end, column.type)
    if closed == "left":
        mask = pc.and_(pc.greater_equal(column, start), pc.less(column, end))
    else:
        mask = pc.and_(pc.greater(column, start), pc.less_equal(column, end))
    return table.filter(pc.fill_null(mask, False))


def window_rows(table: pa.Table, time_column: str, window: Window, closed: Closed = "left") -> pa.Table:
    """The rows of `table` that `marts.<name>` keeps for `window`, in the lake's plain types: what is written."""
    return _plain(in_window(table, time_column, window, closed))


def replace_window(
    con: duckdb.DuckDBPyConnection,
    name: str,
    rows: pa.Table,
    time_column: str,
    window: Window,
    closed: Closed = "left",
    crash_points: CrashPoints | None = None,
) -> None:
    """Make `marts.<name>` hold exactly `rows` (`window_rows` of a step's result) for `window`. `crash_points`
    (reliability tests only) may end the process between the DELETE and the INSERT.

    The table is created from the first result's schema; later writes insert by column name, so values never shift.
    A column the rows have and the table lacks (a table an older version created) is added first; the rows stored
    before read NULL in it.
    """
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {MARTS}")
    con.register("incoming", rows)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {MARTS}.{name} AS SELECT * FROM incoming LIMIT 0")
        add_missing_columns(con, f"{MARTS}.{name}", "incoming", table_columns(con, MARTS)[name])
        lower, upper = _bounds(closed)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"DELETE FROM {MARTS}.{name} WHERE {time_column} {lower} $start AND {time_column} {upper} $end",
                {"start": window.start, "end": window.end},
            )
            if crash_points:
                crash_points.reach(MART_STAGE)
            con.execute(f"INSERT INTO {MARTS}.{name} BY NAME SELECT * FROM incoming")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
                con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("incoming")
