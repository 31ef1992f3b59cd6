"""The raw lake tables and the one write transaction every loader path goes through.

`raw.<stream>` holds the contract's columns plus provenance: `kafka_topic`, `kafka_partition`, `kafka_offset`
for rows that came through Kafka, `source_file` for rows loaded from a Parquet run directory. DuckLake has no
UNIQUE constraints, so exactly-once comes from `write_batch`, which in ONE transaction applies two independent
filters and then appends rows of every table, quarantined messages, the new watermarks, the message ledger and
the loader's status row:

1. the watermark: the last offset stored per partition of each topic incarnation (topic id, KIP-516), from the
   append-only `raw.ingest_offsets`; anything at or below it is a replay;
2. the ledger: `raw.ingest_messages` keeps every stored message's (topic, partition, offset) and a digest of its
   bytes; a message already there is a duplicate, whatever the watermark said (a broker that answered offsets
   inconsistently, a loader that rewound, a topic recreated under a stale id).

A file loaded by `leo-fleet load` goes through `write_file`: its rows, streamed, and its sha256 in `raw.ingest_files`
in one transaction per file; a file whose sha256 is there is skipped. A crash before COMMIT leaves nothing; a
replay after it is filtered.

The filters read the snapshot the transaction began on. When another writer commits first, DuckLake retries the
commit in the catalog alone (no data file is written again) unless the two transactions conflict logically, and
two transactions that change the same table conflict. So every transaction that stores messages of a partition
also updates that partition's one-row fence table (`raw.ingest_fence_<topic>_<partition>`; `leo-fleet load`'s
files share one): two loaders storing the same partition at once (one of them already dropped by the group, still
committing) conflict, and the loser runs its whole transaction again, filters included; loaders on different
partitions commit side by side. `WriteResult.retries` counts both kinds of retry, `conflicts` the reruns.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract
from ingest.lake import LAKE_ALIAS
from ingest.lake.fault_injection import CrashPoints

RAW = "raw"
TRUTH_TABLE = "truth_faults"
OFFSETS_TABLE = "ingest_offsets"
QUARANTINE_TABLE = "quarantine"
STATUS_TABLE = "loader_status"
FILES_TABLE = "ingest_files"
OFFSET_ANOMALIES_TABLE = "offset_resets"
MESSAGES_TABLE = "ingest_messages"
FENCE_PREFIX = "ingest_fence"  # + one table per partition, and one for files (module docstring)
FILES_FENCE = f"{FENCE_PREFIX}_files"
NOT_IN_NAME = re.compile(r"\W")  # a topic's characters that cannot stand in a table name
# DuckLake's catalog tables, as the extension attaches them beside the lake (for the snapshot a commit made).
SNAPSHOT_CHANGES = f"__ducklake_metadata_{LAKE_ALIAS}.ducklake_snapshot_changes"

TS_US = pa.timestamp("us", tz="UTC")
_d = contract.described
TOPIC = _d("kafka_topic", pa.string(), "the Kafka topic the message came from")
TOPIC_ID = _d(
    "kafka_topic_id", pa.string(), "the topic's id (KIP-516): a recreated topic gets a new id and new offsets"
)
PARTITION = _d("kafka_partition", pa.int32(), "the topic partition the message came from")
OFFSET = _d("kafka_offset", pa.int64(), "the message's offset in its partition")
PROVENANCE_FIELDS = [
    _d("kafka_topic", pa.string(), "the Kafka topic the row came from; NULL for rows loaded from a file"),
    _d("kafka_partition", pa.int32(), "the topic partition the row came from; NULL for rows loaded from a file"),
    _d("kafka_offset", pa.int64(), "the offset of the message that carried the row; NULL for rows loaded from a file"),
    _d("source_file", pa.string(), "the Parquet file the row was loaded from; NULL for rows that came through Kafka"),
]
PROVENANCE_COLUMNS = tuple(f.name for f in PROVENANCE_FIELDS)

# Raw table name -> contract schema of its rows.
ROW_SCHEMAS: dict[str, pa.Schema] = {
    **{contract.TABLE_NAMES[topic]: schema for topic, schema in contract.TELEMETRY_SCHEMAS.items()},
    TRUTH_TABLE: contract.TRUTH_FAULTS_SCHEMA,
}
OFFSETS_SCHEMA = pa.schema(
    [
        TOPIC,
        TOPIC_ID,
        PARTITION,
        _d("last_offset", pa.int64(), "the last offset stored from this partition of this topic id: the watermark"),
        _d("committed_at", TS_US, "when the lake transaction that stored it committed (UTC)"),
    ]
)
HEADER_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
QUARANTINE_SCHEMA = pa.schema(
    [
        TOPIC,
        PARTITION,
        OFFSET,
        _d("received_at", TS_US, "when the loader received the message (UTC)"),
        _d(
            "reason_code",
            pa.string(),
            "why it was rejected, a stable code: e.g. missing_columns, retyped_column, null_in_required, oversize, "
            "undecodable_ipc, producer_rejected",
        ),
        _d("reason", pa.string(), "the detail of the rejection: which column, value or header"),
        _d("raw_bytes", pa.binary(), "the message value exactly as received, to replay once fixed"),
        _d("kafka_key", pa.binary(), "the message key as received; NULL when it had none"),
        _d("headers", HEADER_TYPE, "the message headers as received (key, value)"),
    ]
)
STATUS_SCHEMA = pa.schema(
    [
        _d("loader_id", pa.string(), "the loader process that wrote the row"),
        _d("ts", TS_US, "when the status was taken (UTC)"),
        _d("state", pa.string(), "the loader's state: running, paused or stopped"),
        _d("rows_total", pa.int64(), "rows stored since the loader started, count"),
        _d("quarantined_total", pa.int64(), "messages quarantined since the loader started, count"),
        _d("rows_per_s", pa.float64(), "rows stored per second since the previous status row"),
        _d("bytes_per_s", pa.float64(), "message bytes stored per second since the previous status row"),
        _d("lag_total", pa.int64(), "messages behind the end of the logs over all partitions, count"),
        _d(
            "replayed_total",
            pa.int64(),
            "messages skipped since the loader started because they were at or below the watermark, count",
        ),
        _d(
            "duplicates_total",
            pa.int64(),
            "messages skipped since the loader started because the ledger already held them, count",
        ),
        _d(
            "commit_retries_total",
            pa.int64(),
            "lake commits retried since the loader started, count: by DuckLake in the catalog (another writer took "
            "the next snapshot id first) or run again whole (commit_conflicts_total)",
        ),
        _d(
            "commit_conflicts_total",
            pa.int64(),
            "lake transactions run again whole since the loader started, count: the same partition stored "
            'concurrently, "database is locked"',
        ),
        _d(
            "lag_by_partition",
            pa.string(),
            'JSON object {"topic/partition": messages behind}, so Dagster can show lag without a Kafka client',
        ),
    ]
)
FILES_SCHEMA = pa.schema(
    [
        _d("source_file", pa.string(), "the Parquet file loaded by leo-fleet load"),
        _d("sha256", pa.string(), "the file's sha256: a file whose digest is here is skipped"),
        _d("table_name", pa.string(), "the raw table its rows went to"),
        _d("rows", pa.int64(), "rows loaded from the file, count"),
        _d("loaded_at", TS_US, "when the file's lake transaction committed (UTC)"),
    ]
)
# Offsets the broker answered that do not fit the lake's watermark, one row per partition and detection
# (docs/reliability.md).
OFFSET_ANOMALIES_SCHEMA = pa.schema(
    [
        TOPIC,
        TOPIC_ID,
        PARTITION,
        _d(
            "kind",
            pa.string(),
            "topic_recreated (a new topic id: the partition is read from its beginning under the new id), "
            "end_below_watermark (the log ends before the watermark under the same id) or fetch_past_watermark (the "
            "first fetched offset lies beyond watermark + 1: retention, truncation); the last two never move the "
            "watermark",
        ),
        _d("previous_offset", pa.int64(), "the lake's watermark for the partition when detected"),
        _d(
            "last_seen_end_offset",
            pa.int64(),
            "the last end offset seen on the old topic: with previous_offset it bounds the messages lost with it",
        ),
        _d("log_end_offset", pa.int64(), "the partition's log end offset the broker answered"),
        _d("detected_at", TS_US, "when the loader detected it (UTC)"),
        _d("reason", pa.string(), "the detail, in words"),
    ]
)
# One row per Kafka message stored (as rows or in quarantine): the second line of defence against duplicates.
MESSAGES_SCHEMA = pa.schema(
    [
        TOPIC,
        TOPIC_ID,
        PARTITION,
        OFFSET,
        _d("digest", pa.binary(), "BLAKE2b-128 of the message value"),
        _d("table_name", pa.string(), "the raw table its rows went to; NULL when quarantined"),
        _d("rows", pa.int64(), "rows the message carried, count"),
        _d("committed_at", TS_US, "when the lake transaction that stored it committed (UTC)"),
    ]
)
BOOKKEEPING_SCHEMAS = {
    OFFSETS_TABLE: OFFSETS_SCHEMA,
    MESSAGES_TABLE: MESSAGES_SCHEMA,
    OFFSET_ANOMALIES_TABLE: OFFSET_ANOMALIES_SCHEMA,
    QUARANTINE_TABLE: QUARANTINE_SCHEMA,
    STATUS_TABLE: STATUS_SCHEMA,
    FILES_TABLE: FILES_SCHEMA,
}


def row_table_schema(table_name: str) -> pa.Schema:
    """The stored shape of a raw table: contract columns, then provenance."""
    schema = ROW_SCHEMAS[table_name]
    return pa.schema([*schema, *PROVENANCE_FIELDS], metadata=schema.metadata)


def stored_schemas() -> dict[str, pa.Schema]:
    """Every raw table but the fences, by name, with its stored shape (each column described)."""
    return {name: row_table_schema(name) for name in ROW_SCHEMAS} | BOOKKEEPING_SCHEMAS


def table_columns(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, set[str]]:
    """The column names of every table in `schema` of the lake, by table."""
    columns: dict[str, set[str]] = defaultdict(set)
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?", [schema]
    ).fetchall():
        columns[table].add(column)
    return columns


def add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, shape: str, existing: set[str]) -> None:
    """Add to `table` (which has the columns `existing`) every column of the relation `shape` it lacks: a column a
    newer version defined, on a table an older one created. The rows stored before read NULL in it."""
    for column, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {shape}").fetchall():
        if column not in existing:
            con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {kind}')


def ensure_tables(con: duckdb.DuckDBPyConnection, attempts: int = 5) -> None:
    """Create the `raw` schema and its tables if missing, and add columns a newer version defined to tables an
    older one created; retried because DDL from two processes can conflict."""
    shapes = stored_schemas()
    for attempt in range(attempts):
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
            existing = table_columns(con, RAW)
            for name, schema in shapes.items():
                con.register("empty_shape", schema.empty_table())
                try:
                    if name not in existing:
                        con.execute(f"CREATE TABLE IF NOT EXISTS {RAW}.{name} AS SELECT * FROM empty_shape")
                        continue
                    add_missing_columns(con, f"{RAW}.{name}", "empty_shape", existing[name])
                finally:
                    con.unregister("empty_shape")
            return
        except duckdb.TransactionException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


@dataclass(frozen=True)
class Position:
    """Where a Kafka message sits, and what identifies it in the lake: its topic's incarnation (the topic id, None
    when the broker has none) and a digest of its bytes."""

    topic: str
    partition: int
    offset: int
    topic_id: str | None = None
    digest: bytes | None = None

    @property
    def partition_key(self) -> PartitionKey:
        return (self.topic, self.partition, self.topic_id)


# (topic, partition, topic id): one partition of one incarnation of a topic.
PartitionKey = tuple[str, int, str | None]


def message_digest(value: bytes | None) -> bytes:
    return hashlib.blake2b(value or b"", digest_size=16).digest()


@dataclass(frozen=True)
class Rows:
    """Contract-conforming rows for one raw table, from one Kafka message."""

    table_name: str
    rows: pa.Table
    position: Position | None = None


@dataclass(frozen=True)
class Quarantined:
    position: Position
    received_at: datetime
    code: str
    reason: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class OffsetAnomaly:
    """Offsets of a partition that do not fit the lake's watermark (see OFFSET_ANOMALIES_SCHEMA)."""

    key: PartitionKey
    kind: str
    previous_offset: int
    last_seen_end_offset: int | None
    log_end_offset: int | None
    reason: str


@dataclass
class Batch:
    rows: list[Rows] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    # Kafka positions consumed (accepted or quarantined), so the watermark advances past both.
    positions: list[Position] = field(default_factory=list)
    # Offsets that did not fit the watermark; the loader sends them with nothing else in the batch.
    offset_anomalies: list[OffsetAnomaly] = field(default_factory=list)
    status: dict | None = None

    @property
    def row_count(self) -> int:
        return sum(part.rows.num_rows for part in self.rows)

    def __bool__(self) -> bool:
        return bool(self.rows or self.quarantined or self.positions or self.offset_anomalies or self.status)


@dataclass(frozen=True)
class WriteResult:
    rows: int
    quarantined: int
    replayed: int  # messages at or below the watermark
    duplicates: int  # messages above it that the ledger already holds
    watermarks: dict[PartitionKey, int]
    seconds: float
    retries: int = 0  # commits retried: by DuckLake in the catalog, or run again whole after a conflict
    conflicts: int = 0  # of those, the transactions run again whole (a logical conflict, a locked catalog)

    @property
    def skipped_messages(self) -> int:
        return self.replayed + self.duplicates


def watermarks(con: duckdb.DuckDBPyConnection) -> dict[PartitionKey, int]:
    """Last offset stored per partition of each topic incarnation: where consumption resumes."""
    sql = (
        f"SELECT kafka_topic, kafka_partition, kafka_topic_id, max(last_offset) FROM {RAW}.{OFFSETS_TABLE} GROUP BY ALL"
    )
    return {(topic, partition, id_): offset for topic, partition, id_, offset in con.execute(sql).fetchall()}


def watermark_for(marks: dict[PartitionKey, int], key: PartitionKey) -> int | None:
    """The partition's watermark under its topic id; watermarks stored without an id (a broker without topic ids,
    or a lake written before ids were kept) belong to whichever incarnation the loader reads first."""
    topic, partition, _ = key
    return marks.get(key, marks.get((topic, partition, None)))


def commit_batch(
    con: duckdb.DuckDBPyConnection,
    batch: Batch,
    give_up_after_s: float = 120.0,
    crash_points: CrashPoints | None = None,
) -> WriteResult:
    """`write_batch`, run again whole with jittered backoff while its transaction fails to commit: two writers
    storing one partition at once (module docstring), or a SQLite catalog answering "database is locked"
    (duckdb/ducklake#128, #1309). The batch is immutable and the filters run again inside the new transaction, so
    retrying can neither lose nor duplicate a message."""
    result, reruns = retry_transaction(
        lambda: write_batch(con, batch, datetime.now(UTC), crash_points), give_up_after_s
    )
    return replace(result, retries=result.retries + reruns, conflicts=reruns)


T = TypeVar("T")


def retry_transaction(transaction: Callable[[], T], give_up_after_s: float = 120.0) -> tuple[T, int]:
    """Run `transaction` (a whole BEGIN ... COMMIT) again, with jittered exponential backoff (at most 2 s), while
    it fails with a duckdb.TransactionException, until `give_up_after_s` have passed; returns its result and the
    number of retries. The transaction must roll back what it began and be safe to run again from the start."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return transaction(), attempt
        except duckdb.TransactionException:
            attempt += 1
            if time.monotonic() - started > give_up_after_s:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))


def write_batch(
    con: duckdb.DuckDBPyConnection, batch: Batch, now: datetime, crash_points: CrashPoints | None = None
) -> WriteResult:
    """Append the batch in one transaction, minus anything already stored (see module docstring); `crash_points`
    (reliability tests only) may end the process before the transaction or before its COMMIT."""
    started = time.perf_counter()
    if batch.positions and crash_points:
        crash_points.reach("before_write")
    con.execute("BEGIN TRANSACTION")
    try:
        (began_on,) = con.execute(f"SELECT id FROM {LAKE_ALIAS}.current_snapshot()").fetchone()
        marks = watermarks(con)
        after_mark = [p for p in batch.positions if p.offset > _stored_up_to(marks, p)]
        stored = _in_ledger(con, after_mark)
        fresh = {p for p in after_mark if p not in stored}

        rows = [p for p in batch.rows if _is_new(p.position, fresh)]
        quarantined = [q for q in batch.quarantined if q.position in fresh]
        for fence in _fences(fresh):
            _fence(con, fence)
        by_table: dict[str, list[Rows]] = defaultdict(list)
        for part in rows:
            by_table[part.table_name].append(part)
        for table_name, parts in by_table.items():
            _append(con, table_name, _with_provenance(table_name, parts))
        new_marks = _last_offsets(after_mark)
        _append(con, OFFSETS_TABLE, _offsets_table(new_marks, now))
        _append(con, MESSAGES_TABLE, _messages_table(rows, quarantined, now))
        _append(con, QUARANTINE_TABLE, _quarantine_table(quarantined))
        _append(con, OFFSET_ANOMALIES_TABLE, _offset_anomalies_table(batch.offset_anomalies, now))
        if batch.status is not None:
            _append(con, STATUS_TABLE, pa.Table.from_pylist([{**batch.status, "ts": now}], schema=STATUS_SCHEMA))
        if after_mark and crash_points:
            crash_points.reach("mid_transaction")
        token = uuid.uuid4().hex
        con.execute(f"CALL {LAKE_ALIAS}.set_commit_message(?, ?)", [(batch.status or {}).get("loader_id", ""), token])
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
    return WriteResult(
        rows=sum(p.rows.num_rows for p in rows),
        quarantined=len(quarantined),
        replayed=len(batch.positions) - len(after_mark),
        duplicates=len(stored),
        watermarks={**marks, **new_marks},
        seconds=time.perf_counter() - started,
        retries=int(_committed_as(con, began_on, token) > began_on + 1),
    )


def write_file(
    con: duckdb.DuckDBPyConnection,
    table_name: str,
    source_file: str,
    sha256: str,
    rows: Callable[[], pa.RecordBatchReader],
    now: datetime,
) -> int | None:
    """Append one file's rows and its `raw.ingest_files` row in one transaction; None when a file with the same
    sha256 is already loaded. DuckDB writes the rows out as it reads them from `rows()` (a new stream per attempt),
    so memory holds a batch, never the file."""
    con.execute("BEGIN TRANSACTION")
    try:
        if con.execute(f"SELECT 1 FROM {RAW}.{FILES_TABLE} WHERE sha256 = ? LIMIT 1", [sha256]).fetchone():
            con.execute("ROLLBACK")
            return None
        _fence(con, FILES_FENCE)  # two loads of one file at once: one conflicts, and finds it loaded when run again
        con.register("incoming", rows())
        try:
            (count,) = con.execute(
                f"INSERT INTO {RAW}.{table_name} BY NAME SELECT *, $source AS source_file FROM incoming",
                {"source": source_file},
            ).fetchone()
        finally:
            con.unregister("incoming")
        loaded = {"source_file": source_file, "sha256": sha256, "table_name": table_name, "rows": count}
        _append(con, FILES_TABLE, pa.Table.from_pylist([{**loaded, "loaded_at": now}], schema=FILES_SCHEMA))
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
    return count


def _fences(fresh: set[Position]) -> list[str]:
    """The fence tables of the partitions a transaction stores messages of, in one order."""
    return sorted({f"{FENCE_PREFIX}_{NOT_IN_NAME.sub('_', p.topic)}_{p.partition}" for p in fresh})


def _fence(con: duckdb.DuckDBPyConnection, table_name: str) -> None:
    """Change the fence's one row, so that a concurrent transaction changing it too conflicts with this one (a
    fence created by two writers at once conflicts as well: both created the same name)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {RAW}.{table_name} AS SELECT 0::BIGINT AS commits")
    con.execute(f"UPDATE {RAW}.{table_name} SET commits = commits + 1")


def _committed_as(con: duckdb.DuckDBPyConnection, began_on: int, token: str) -> int:
    """The snapshot the commit labelled `token` made; above `began_on + 1` when another writer committed first and
    DuckLake retried this commit in the catalog. A transaction that changed nothing made none: `began_on`."""
    found = con.execute(
        f"SELECT snapshot_id FROM {SNAPSHOT_CHANGES} WHERE snapshot_id > ? AND commit_message = ?", [began_on, token]
    ).fetchone()
    return found[0] if found else began_on


def _stored_up_to(marks: dict[PartitionKey, int], position: Position) -> int:
    mark = watermark_for(marks, position.partition_key)
    return -1 if mark is None else mark


def _is_new(position: Position | None, fresh: set[Position]) -> bool:
    return position is None or position in fresh


def _in_ledger(con: duckdb.DuckDBPyConnection, positions: list[Position]) -> set[Position]:
    """The positions whose message (same topic, partition, offset and bytes) the lake already holds, under any
    topic id: a message re-read after a wrong rewind or under a stale id is the same message."""
    if not positions:
        return set()
    incoming = pa.table(
        {
            "i": pa.array(range(len(positions)), pa.int64()),
            "kafka_topic": [p.topic for p in positions],
            "kafka_partition": pa.array([p.partition for p in positions], pa.int32()),
            "kafka_offset": pa.array([p.offset for p in positions], pa.int64()),
            "digest": pa.array([p.digest for p in positions], pa.binary()),
        }
    )
    offsets = incoming["kafka_offset"]
    con.register("incoming_messages", incoming)
    try:
        # The offset range is a constant filter, so DuckLake skips ledger files by their column statistics.
        found = con.execute(
            f"""SELECT DISTINCT i FROM incoming_messages
                SEMI JOIN (SELECT * FROM {RAW}.{MESSAGES_TABLE} WHERE kafka_offset BETWEEN $low AND $high) AS m
                USING (kafka_topic, kafka_partition, kafka_offset, digest)""",
            {"low": pc.min(offsets).as_py(), "high": pc.max(offsets).as_py()},
        ).fetchall()
    finally:
        con.unregister("incoming_messages")
    return {positions[i] for (i,) in found}


def _append(con: duckdb.DuckDBPyConnection, table_name: str, table: pa.Table) -> None:
    if table.num_rows:
        con.register("incoming", table)
        try:
            con.execute(f"INSERT INTO {RAW}.{table_name} BY NAME SELECT * FROM incoming")
        finally:
            con.unregister("incoming")


def _repeat(values: list, counts: list[int], kind: pa.DataType) -> pa.Array:
    """One value per part, repeated for each of its rows (nulls allowed)."""
    return pa.array(values, kind).take(pa.array(np.repeat(np.arange(len(values)), counts)))


def _with_provenance(table_name: str, parts: list[Rows]) -> pa.Table:
    schema = ROW_SCHEMAS[table_name]
    rows = pa.concat_tables([p.rows for p in parts])
    counts = [p.rows.num_rows for p in parts]
    positions = [p.position for p in parts]
    columns = {
        "kafka_topic": _repeat([p and p.topic for p in positions], counts, pa.string()),
        "kafka_partition": _repeat([p and p.partition for p in positions], counts, pa.int32()),
        "kafka_offset": _repeat([p and p.offset for p in positions], counts, pa.int64()),
        "source_file": pa.nulls(rows.num_rows, pa.string()),
    }
    for name, column in columns.items():
        rows = rows.append_column(name, column)
    return duckdb_safe(rows).replace_schema_metadata(schema.metadata)


def duckdb_safe(table: pa.Table) -> pa.Table:
    """list<dictionary> → list<string> (what DuckDB stores anyway): DuckDB 1.5.5 hits an internal error, which
    invalidates the whole database, when it scans such a column from a chunk whose lists are all null or empty."""
    for index, column in enumerate(table.schema):
        if pa.types.is_list(column.type) and pa.types.is_dictionary(column.type.value_type):
            plain = pa.list_(column.type.value_type.value_type)
            table = table.set_column(index, column.with_type(plain), table.column(index).cast(plain))
    return table


def _last_offsets(positions: list[Position]) -> dict[PartitionKey, int]:
    last: dict[PartitionKey, int] = {}
    for p in positions:
        last[p.partition_key] = max(last.get(p.partition_key, -1), p.offset)
    return last


def _offsets_table(marks: dict[PartitionKey, int], now: datetime) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "kafka_topic": topic,
                "kafka_topic_id": topic_id,
                "kafka_partition": partition,
                "last_offset": offset,
                "committed_at": now,
            }
            for (topic, partition, topic_id), offset in marks.items()
        ],
        schema=OFFSETS_SCHEMA,
    )


def _messages_table(rows: list[Rows], quarantined: list[Quarantined], now: datetime) -> pa.Table:
    stored = [(part.position, part.table_name, part.rows.num_rows) for part in rows if part.position is not None]
    stored += [(q.position, None, 0) for q in quarantined]
    return pa.Table.from_pylist(
        [
            {
                "kafka_topic": p.topic,
                "kafka_topic_id": p.topic_id,
                "kafka_partition": p.partition,
                "kafka_offset": p.offset,
                "digest": p.digest,
                "table_name": table_name,
                "rows": count,
                "committed_at": now,
            }
            for p, table_name, count in stored
        ],
        schema=MESSAGES_SCHEMA,
    )


def _offset_anomalies_table(anomalies: list[OffsetAnomaly], now: datetime) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "kafka_topic": r.key[0],
                "kafka_partition": r.key[1],
                "kafka_topic_id": r.key[2],
                "kind": r.kind,
                "previous_offset": r.previous_offset,
                "last_seen_end_offset": r.last_seen_end_offset,
                "log_end_offset": r.log_end_offset,
                "detected_at": now,
                "reason": r.reason,
            }
            for r in anomalies
        ],
        schema=OFFSET_ANOMALIES_SCHEMA,
    )


def _quarantine_table(quarantined: list[Quarantined]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "kafka_topic": q.position.topic,
                "kafka_partition": q.position.partition,
                "kafka_offset": q.position.offset,
                "received_at": q.received_at,
                "reason_code": q.code,
                "reason": q.reason,
                "raw_bytes": q.value,
                "kafka_key": q.key,
                "headers": [{"key": k, "value": v} for k, v in q.headers],
            }
            for q in quarantined
        ],
        schema=QUARANTINE_SCHEMA,
    )
