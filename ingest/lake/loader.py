"""The exactly-once loader: Kafka telemetry topics → DuckLake raw tables (pipeline_patterns.md §2).

A consumer group member polls, decodes each message (codec: accepted rows or a quarantine reason) and hands
batches to the lake writer thread; `raw_tables.write_batch` stores rows, quarantined messages and the new
per-partition watermark in one transaction. On assignment the consumer seeks to watermark + 1; offsets are
committed to Kafka only after the lake commit (for lag monitoring; the lake stays the source of truth).
When the writer falls behind, the loader pauses its partitions and keeps polling, which keeps it in the group.

Watermarks belong to one incarnation of a topic, named by its topic id (KIP-516). A topic that was recreated (a
broker restarted without storage, as the local one does) has a new id and restarts its offsets at 0: the loader
reads it from its beginning, whether it notices the new id on assignment (no watermark under it, one under an older
id) or while it runs. Offsets that look inconsistent under the same id (the log ends below the watermark, the
first fetch starts past it) never move the loader: they are recorded in `raw.offset_resets`, logged once, and the
watermark stands. Whatever the loader decides, `write_batch`'s message ledger stores no message twice.

`load_run_directory` streams a simulator Parquet run directory into the same raw tables, a transaction per file
(`write_file`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition

from ingest import contract, lake
from ingest.kafka import codec
from ingest.kafka.topics import TELEMETRY_TOPICS, ensure_topics
from ingest.lake.fault_injection import LOAD_STAGE, CrashPoints
from ingest.lake.raw_tables import (
    OFFSET_ANOMALIES_TABLE,
    RAW,
    ROW_SCHEMAS,
    TRUTH_TABLE,
    Batch,
    OffsetAnomaly,
    PartitionKey,
    Position,
    Quarantined,
    Rows,
    WriteResult,
    duckdb_safe,
    ensure_tables,
    message_digest,
    retry_transaction,
    watermark_for,
    watermarks,
    write_file,
)
from ingest.lake.writer import LakeWriter
from ingest.settings import Settings

# The consumer-group join takes ~24 s on the local broker with kafka-python's defaults, ~4 s with these.
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
# Wait for a few messages' worth per fetch rather than returning every record the moment it lands.
FETCH_CONFIG = {"fetch_min_bytes": 64 * 1024, "fetch_max_wait_ms": 200}
# raw.offset_resets kinds (OFFSET_ANOMALIES_SCHEMA): only a new topic id sends the loader back to offset 0.
RECREATED = "topic_recreated"
END_BELOW_WATERMARK = "end_below_watermark"
FETCH_PAST_WATERMARK = "fetch_past_watermark"
# `leo-fleet load` hands DuckDB a row group in batches of this many rows. DuckDB's scan of the stream keeps a roughly
# fixed number of batches alive (zero-copy) while it writes, so the batch size sets the load's memory: a
# 1,000-controller week peaked at 2.17 GiB RSS in 64 K-row batches, 1.20 GiB in 8 K ones, at the same rows/s
# (whole row groups, ~330 K latency rows, were another half GiB above 64 K).
LOAD_BATCH_ROWS = 8 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderOptions:
    follow: bool = False  # run until stopped; otherwise exit once every assigned partition is drained
    idle_s: float = 2.0  # --until-idle: how long the stream must stay quiet before checking end offsets
    flush_rows: int = 500_000
    flush_bytes: int = 96 * 1024 * 1024  # decoded Arrow bytes
    flush_interval_s: float = 5.0
    status_interval_s: float = 2.0
    heartbeat_s: float = 30.0  # a status row reaches the lake at least this often, even when idle
    max_poll_records: int = 200
    crash_points: CrashPoints | None = None  # reliability tests only (fault_injection.py)


@dataclass
class _Pending:
    """Decoded messages waiting for the lake."""

    batch: Batch = field(default_factory=Batch)
    rows: int = 0
    decoded_bytes: int = 0
    wire_bytes: int = 0
    started: float = 0.0
    max_skew_s: float = Settings.max_clock_skew_s  # rows further ahead of the clock are quarantined

    def add(self, record, now: float, topic_id: str | None = None) -> None:
        if not self.batch.positions:
            self.started = now
        position = Position(record.topic, record.partition, record.offset, topic_id, message_digest(record.value))
        self.batch.positions.append(position)
        self.wire_bytes += len(record.value or b"")
        try:
            rows = codec.decode(record.topic, record.value, record.headers, max_skew_s=self.max_skew_s)
        except codec.Rejected as rejected:
            self.batch.quarantined.append(
                Quarantined(
                    position=position,
                    received_at=datetime.now(UTC),
                    code=rejected.code,
                    reason=rejected.reason,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers or ()),
                )
            )
            return
        self.batch.rows.append(Rows(contract.TABLE_NAMES[record.topic], rows, position))
        self.rows += rows.num_rows
        self.decoded_bytes += rows.nbytes


class Loader:
    """Run with `run()`; `stop()` (e.g. from a signal handler) ends it cleanly after a final flush."""

    def __init__(
        self,
        settings: Settings,
        options: LoaderOptions = LoaderOptions(),
        on_status: Callable[[dict], None] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.loader_id = f"{socket.gethostname()}:{os.getpid()}"
        self._on_status = on_status or (lambda status: None)
        self._stop = threading.Event()
        self._pending = _Pending(max_skew_s=self.settings.max_clock_skew_s)
        self._submitted: deque[tuple[int, int]] = deque()  # (wire bytes, messages) per batch in flight
        self._marks: dict[tuple[str, int], int] = {}  # watermark per assigned partition, current incarnation
        self._topic_ids: dict[str, str | None] = {}  # the incarnation being read, per topic
        self._seen_ends: dict[tuple[str, int], int] = {}  # last end offset seen per partition, for resets
        self._newly_assigned: set[TopicPartition] = set()  # end offsets checked after the poll that assigned them
        self._ids_unconfirmed = False  # an assignment came since the last metadata fetch
        self._expected_first: dict[TopicPartition, int] = {}  # offset the first fetch after a seek should start at
        self._anomalies: list[OffsetAnomaly] = []  # found while polling or in the rebalance callback
        self._logged: set[tuple[PartitionKey, str]] = set()
        self._paused = False
        self._started = time.monotonic()
        self._last_write = self._started
        self._last_status = (self._started, 0, 0)
        self._last_commit_at: datetime | None = None
        # Monotonic times of the first partition assignment and of the last commit that stored rows, so a
        # benchmark can time the work itself without the consumer-group join or the idle wait at the end.
        self.assigned_at: float | None = None
        self.last_rows_committed_at: float | None = None
        self.totals = {
            "rows": 0,
            "bytes": 0,
            "messages": 0,
            "quarantined": 0,
            "replayed": 0,
            "duplicates": 0,
            "lake_write_s": 0.0,
            "lake_retries": 0,
            "lake_conflicts": 0,
        }

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> dict:
        """Load until stopped (follow) or drained (until idle); returns the final status."""
        ensure_topics(self.settings)
        con = lake.connect(self.settings)
        ensure_tables(con)
        self._reader = lake.lake_cursor(con)  # for the main thread, beside the writer's thread on `con`
        self._writer = LakeWriter(con, self.options.crash_points)
        self._consumer = KafkaConsumer(
            **self.settings.kafka.client_config(),
            **GROUP_TIMEOUTS,
            group_id=self.settings.kafka.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.options.max_poll_records,
            **FETCH_CONFIG,
            allow_auto_create_topics=False,  # ensure_topics creates them, with the configured partitions
        )
        try:
            self._consumer.subscribe(list(TELEMETRY_TOPICS), listener=_SeekToWatermark(self))
            self._loop()
            self.drain(final_state="stopped")
            return self.status("stopped")
        finally:
            self._consumer.close(autocommit=False)
            self._writer.close()
            self._reader.close()
            con.close()

    def _loop(self) -> None:
        last_record = time.monotonic()
        while not self._stop.is_set():
            polled = self._consumer.poll(timeout_ms=200)
            if self._ids_unconfirmed:
                self._confirm_topic_ids()
            now = time.monotonic()
            recreated = self._recreated_topics()
            for tp, records in polled.items():
                if tp.topic in recreated:
                    continue  # fetched from the new topic before we noticed: re-read from its beginning
                self._check_first_fetch(tp, records[0].offset)
                topic_id = self._topic_ids.get(tp.topic)
                for record in records:
                    self._pending.add(record, now, topic_id)
                self._seen_ends[(tp.topic, tp.partition)] = self._consumer.highwater(tp) or 0
            if recreated:
                self._rewind_recreated(recreated)
            self._check_assigned_ends()
            self._record_anomalies()
            if polled:
                last_record = now
            self._absorb(self._writer.results())
            self._flush_if_due(now, quiet=not polled)
            self._report_if_due(now)
            if not self.options.follow and now - last_record >= self.options.idle_s and self._caught_up():
                return

    def _flush_if_due(self, now: float, quiet: bool) -> None:
        pending, options = self._pending, self.options
        full = pending.rows >= options.flush_rows or pending.decoded_bytes >= options.flush_bytes
        aged = bool(pending.batch) and (quiet or now - pending.started >= options.flush_interval_s)
        heartbeat = now - self._last_write >= options.heartbeat_s
        if not (full or aged or heartbeat):
            return
        if not self._writer.busy:
            self._submit("running")
            self._set_paused(False)
        elif pending.rows >= 2 * options.flush_rows or pending.decoded_bytes >= 2 * options.flush_bytes:
            self._set_paused(True)  # back-pressure: the lake is behind; keep polling to stay in the group

    def _submit(self, state: str) -> None:
        batch = self._pending.batch
        batch.status = self._status_row(state)
        self._submitted.append((self._pending.wire_bytes, len(batch.positions)))
        self._writer.submit(batch)
        self._pending = _Pending(max_skew_s=self.settings.max_clock_skew_s)
        self._last_write = time.monotonic()

    def drain(self, final_state: str = "running") -> None:
        """Write everything decoded so far and wait for it (before a rebalance and at shutdown)."""
        self._absorb(self._writer.results(wait=True))
        if self._pending.batch or final_state != "running":
            self._submit(final_state)
            self._absorb(self._writer.results(wait=True))

    def _absorb(self, results: list[WriteResult]) -> None:
        """Account for committed batches and only now tell Kafka how far the group got."""
        for result in results:
            wire_bytes, messages = self._submitted.popleft()
            self.totals["rows"] += result.rows
            self.totals["bytes"] += wire_bytes
            self.totals["messages"] += messages
            self.totals["quarantined"] += result.quarantined
            self.totals["replayed"] += result.replayed
            self.totals["duplicates"] += result.duplicates
            self.totals["lake_write_s"] += result.seconds
            self.totals["lake_retries"] += result.retries
            self.totals["lake_conflicts"] += result.conflicts
            self._adopt(result.watermarks)
            self._last_commit_at = datetime.now(UTC)
            if result.rows:
                self.last_rows_committed_at = time.monotonic()
        if results:
            assigned = self._consumer.assignment()
            offsets = {
                tp: OffsetAndMetadata(self._marks[(tp.topic, tp.partition)] + 1, "", -1)
                for tp in assigned
                if (tp.topic, tp.partition) in self._marks
            }
            if offsets:
                if self.options.crash_points:
                    self.options.crash_points.reach("after_lake_commit")
                self._consumer.commit_async(offsets)

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            assigned = self._consumer.assignment()
            (self._consumer.pause if paused else self._consumer.resume)(*assigned)
            self._paused = paused

    def _topic_id(self, topic: str) -> str | None:
        """The topic's id (KIP-516) in the consumer's cluster metadata, None if the broker has none; kafka-python
        keeps ids only there, hence the private attribute."""
        id_ = self._consumer._client.cluster.topic_id(topic)
        return None if id_ is None or id_.int == 0 else str(id_)

    def _key(self, tp: TopicPartition) -> PartitionKey:
        return (tp.topic, tp.partition, self._topic_ids.get(tp.topic))

    def _adopt(self, marks: dict[PartitionKey, int]) -> None:
        """Take the lake's watermarks of the incarnations being read."""
        for tp in self._consumer.assignment():
            mark = watermark_for(marks, self._key(tp))
            if mark is not None:
                self._marks[(tp.topic, tp.partition)] = mark

    def _confirm_topic_ids(self) -> None:
        """An assignment can rest on metadata cached from before the broker lost its topics (the local broker's restart
        recreates them under new ids), and kafka-python refreshes it only every metadata_max_age_ms (5 minutes). Fetch
        it now, before any record of the new assignment is stored, so `_recreated_topics` sees the new ids and the
        loader reads those topics from their beginning rather than after the old incarnation's watermark."""
        self._consumer.topics()  # always a request to the broker
        self._ids_unconfirmed = False

    def _recreated_topics(self) -> set[str]:
        """Subscribed topics whose id changed since the last poll."""
        ids = {topic: self._topic_id(topic) for topic in TELEMETRY_TOPICS}
        changed = {topic for topic, id_ in ids.items() if id_ is not None and self._topic_ids.get(topic, id_) != id_}
        self._topic_ids.update({topic: id_ for topic, id_ in ids.items() if id_ is not None})
        return changed

    def _rewind_recreated(self, topics: set[str]) -> None:
        """Topics that got a new id while the loader ran: record it, then read them from their beginning."""
        tps = [tp for tp in self._consumer.assignment() if tp.topic in topics]
        self.drain()
        ends = self._consumer.end_offsets(tps)
        self._anomalies.extend(
            [
                OffsetAnomaly(
                    self._key(tp),
                    RECREATED,
                    self._marks[(tp.topic, tp.partition)],
                    self._seen_ends.get((tp.topic, tp.partition)),
                    ends.get(tp),
                    f"topic id changed to {self._topic_ids[tp.topic]}: the topic was recreated",
                )
                for tp in tps
                if (tp.topic, tp.partition) in self._marks
            ]
        )
        self._record_anomalies()
        for tp in tps:
            self._marks.pop((tp.topic, tp.partition), None)
            self._seen_ends.pop((tp.topic, tp.partition), None)
            self._expected_first.pop(tp, None)
            self._consumer.seek_to_beginning(tp)

    def _record_anomalies(self) -> None:
        """Store the offset anomalies found so far in raw.offset_resets, after what is pending, and log each kind
        once per process and partition."""
        anomalies, self._anomalies = self._anomalies, []
        if not anomalies:
            return
        self.drain()
        self._pending.batch.offset_anomalies = anomalies
        self._submit("running")
        self._absorb(self._writer.results(wait=True))
        for anomaly in anomalies:
            if (anomaly.key, anomaly.kind) not in self._logged:
                self._logged.add((anomaly.key, anomaly.kind))
                topic, partition, _ = anomaly.key
                log.warning("%s/%d: %s (%s)", topic, partition, anomaly.reason, anomaly.kind)

    def _check_assigned_ends(self) -> None:
        """Under the same topic id, a log that ends below the watermark is the broker's inconsistency (or a
        truncation), never a reason to re-read: recorded, and the watermark stands. Done outside the rebalance
        callback, where kafka-python cannot block on a request."""
        checked = [tp for tp in self._newly_assigned if (tp.topic, tp.partition) in self._marks]
        self._newly_assigned = set()
        ends = self._consumer.end_offsets(checked) if checked else {}
        below = [
            OffsetAnomaly(
                self._key(tp),
                END_BELOW_WATERMARK,
                mark,
                self._seen_ends.get((tp.topic, tp.partition)),
                end,
                f"log end offset {end} is below the lake's watermark {mark} + 1 under the same topic id",
            )
            for tp, end in ends.items()
            if end < (mark := self._marks[(tp.topic, tp.partition)]) + 1
        ]
        self._anomalies.extend(below)

    def _check_first_fetch(self, tp: TopicPartition, first_offset: int) -> None:
        """The first record after a seek to watermark + 1 lies further on: the offsets between were never read
        (retention, truncation, compaction). Recorded; the loader goes on from there."""
        expected = self._expected_first.pop(tp, None)
        if expected is not None and first_offset > expected:
            self._anomalies.append(
                OffsetAnomaly(
                    self._key(tp),
                    FETCH_PAST_WATERMARK,
                    expected - 1,
                    self._seen_ends.get((tp.topic, tp.partition)),
                    self._consumer.highwater(tp),
                    f"first fetched offset {first_offset} is past the lake's watermark {expected - 1} + 1",
                )
            )

    def seek_to_watermarks(self, assigned: set[TopicPartition]) -> None:
        """Resume each partition after its watermark under the topic's current id; a partition with watermarks only
        under older ids belongs to a recreated topic and is read from its beginning."""
        self.assigned_at = self.assigned_at or time.monotonic()
        self._ids_unconfirmed = True
        # drain() emptied the buffer before the rebalance, so the new assignment starts unpaused; kafka-python keeps
        # the paused flag of partitions that stay assigned, so resume them explicitly or they never fetch again.
        self._consumer.resume(*assigned)
        self._paused = False
        marks = watermarks(self._reader)
        recorded = _recorded_recreations(self._reader)
        for topic in {tp.topic for tp in assigned}:
            self._topic_ids[topic] = self._topic_id(topic)
        for tp in assigned:
            key = self._key(tp)
            mark = watermark_for(marks, key)
            if mark is not None:
                self._marks[(tp.topic, tp.partition)] = mark
                self._newly_assigned.add(tp)
                self._expected_first[tp] = mark + 1
                self._consumer.seek(tp, mark + 1)
                continue
            self._marks.pop((tp.topic, tp.partition), None)
            self._consumer.seek_to_beginning(tp)
            older = {id_: m for (t, p, id_), m in marks.items() if (t, p) == (tp.topic, tp.partition)}
            if older and key not in recorded:
                previous_id, previous = max(older.items(), key=lambda item: item[1])
                reason = f"topic id changed from {previous_id} to {key[2]}: the topic was recreated"
                self._anomalies.append(OffsetAnomaly(key, RECREATED, previous, None, None, reason))

    def _caught_up(self) -> bool:
        if self._pending.batch or self._writer.busy or self._rebalancing():
            return False
        assigned = self._consumer.assignment()
        if not assigned:
            return self.assigned_at is not None and self._group_caught_up()
        ends = self._consumer.end_offsets(list(assigned))
        return all(self._consumer.position(tp) >= ends[tp] for tp in assigned)

    def _rebalancing(self) -> bool:
        """The group asked this member to rejoin. A member that leaves mid-rebalance can leave the local broker's
        group without a leader (Tansu 0.6.0 elects none), and kafka-python's poll then retries the join forever
        in the members left behind, so an --until-idle loader finishes the rebalance before it leaves."""
        coordinator = self._consumer._coordinator  # kafka-python exposes no public rebalance state
        return coordinator.need_rejoin() or coordinator.rejoining

    def _group_caught_up(self) -> bool:
        """A member that joined and got no partitions (the group gave them all to others) is done once the lake holds
        every partition up to its end offset; otherwise it could wait forever for a rebalance. Only asked after a
        join: the local broker's end offsets can be short, so a rerun must read its partitions, not trust them."""
        partitions = [
            TopicPartition(topic, partition)
            for topic in TELEMETRY_TOPICS
            for partition in self._consumer.partitions_for_topic(topic) or ()
        ]
        if not partitions:
            return False
        marks = watermarks(self._reader)
        ends = self._consumer.end_offsets(partitions)
        stored = {tp: watermark_for(marks, (tp.topic, tp.partition, self._topic_id(tp.topic))) for tp in partitions}
        return all(end == 0 or (stored[tp] is not None and stored[tp] >= end - 1) for tp, end in ends.items())

    def _lag(self) -> dict[str, int]:
        lag = {}
        for tp in sorted(self._consumer.assignment()):
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag[f"{tp.topic}/{tp.partition}"] = max(
                    0, highwater - self._marks.get((tp.topic, tp.partition), -1) - 1
                )
        return lag

    def status(self, state: str = "running") -> dict:
        now = time.monotonic()
        since, rows_then, bytes_then = self._last_status
        elapsed = max(now - since, 1e-9)
        lag = self._lag()
        return {
            "loader_id": self.loader_id,
            "state": "paused" if self._paused and state == "running" else state,
            "elapsed_s": round(now - self._started, 3),
            "rows_total": self.totals["rows"],
            "bytes_total": self.totals["bytes"],
            "messages_total": self.totals["messages"],
            "quarantined_total": self.totals["quarantined"],
            "replayed_messages_skipped": self.totals["replayed"],
            "duplicate_messages_skipped": self.totals["duplicates"],
            "rows_per_s": (self.totals["rows"] - rows_then) / elapsed,
            "bytes_per_s": (self.totals["bytes"] - bytes_then) / elapsed,
            "lake_write_s": round(self.totals["lake_write_s"], 3),
            "lake_commit_retries": self.totals["lake_retries"],
            "lake_commit_conflicts": self.totals["lake_conflicts"],
            "lag_total": sum(lag.values()),
            "lag_by_partition": lag,
            "last_commit_at": self._last_commit_at.isoformat() if self._last_commit_at else None,
        }

    def _status_row(self, state: str) -> dict:
        status = self.status(state)
        row = {key: status[key] for key in ("loader_id", "state", "rows_per_s", "bytes_per_s", "lag_total")}
        return {
            **row,
            "rows_total": status["rows_total"],
            "quarantined_total": status["quarantined_total"],
            "replayed_total": status["replayed_messages_skipped"],
            "duplicates_total": status["duplicate_messages_skipped"],
            "commit_retries_total": status["lake_commit_retries"],
            "commit_conflicts_total": status["lake_commit_conflicts"],
            "lag_by_partition": json.dumps(status["lag_by_partition"]),
        }

    def _report_if_due(self, now: float) -> None:
        if now - self._last_status[0] >= self.options.status_interval_s:
            self._on_status(self.status())
            self._last_status = (now, self.totals["rows"], self.totals["bytes"])


def _recorded_recreations(con) -> set[PartitionKey]:
    """Partitions of topic incarnations already recorded as recreated, so a restarted loader records them once."""
    sql = f"""SELECT DISTINCT kafka_topic, kafka_partition, kafka_topic_id
              FROM {RAW}.{OFFSET_ANOMALIES_TABLE} WHERE kind = ?"""
    return set(con.execute(sql, [RECREATED]).fetchall())


class _SeekToWatermark(ConsumerRebalanceListener):
    """Called inside poll(): drain before giving partitions up, resume from the lake's watermark on assignment."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def on_partitions_revoked(self, revoked) -> None:
        self.loader.drain()

    def on_partitions_assigned(self, assigned) -> None:
        self.loader.seek_to_watermarks(set(assigned))


# ---------------------------------------------------------------------------------------------------------
# Bulk path: a simulator Parquet run directory through the same write transaction.
# ---------------------------------------------------------------------------------------------------------


class RunDirectoryError(ValueError):
    """The directory is not a simulator run directory, or a file in it breaks the contract."""


def run_directory_files(directory: Path) -> dict[str, Path]:
    """Raw table name -> Parquet file; every stream of the contract is required (a run directory written before a
    stream was added must be simulated again), truth is optional."""
    files = {name: contract.run_table_file(directory, name) for name in ROW_SCHEMAS}
    missing = [path.name for name, path in files.items() if name != TRUTH_TABLE and not path.is_file()]
    if missing:
        raise RunDirectoryError(f"{directory} is not a simulator run directory: missing {', '.join(missing)}")
    return {name: path for name, path in files.items() if path.is_file()}


def load_run_directory(settings: Settings, directory: Path, crash_points: CrashPoints | None = None) -> LoadResult:
    """Load every stream of a run directory, one transaction per file, its rows streamed a Parquet row group at a time
    (the simulator writes one per chunk, so memory holds a chunk, never a table); files loaded before (same sha256)
    are skipped. Every file's columns are checked against the contract before anything is written."""
    started = time.perf_counter()
    files = [_FileRows(name, path, crash_points) for name, path in run_directory_files(directory).items()]
    con = lake.connect(settings)
    try:
        ensure_tables(con)
        rows = 0
        for file in files:
            count, _ = retry_transaction(lambda file=file: file.write(con))
            rows += count or 0
    finally:
        con.close()
    return LoadResult(rows, time.perf_counter() - started)


@dataclass(frozen=True)
class LoadResult:
    rows: int  # 0 when every file was loaded before
    seconds: float


class _FileRows:
    """One run-directory file as contract-conforming record batches, read a row group at a time: pyarrow cannot read
    part of a row group when it holds a list of dictionary-encoded strings (raw.errors' error_names)."""

    def __init__(self, name: str, path: Path, crash_points: CrashPoints | None) -> None:
        self.name, self.path, self.crash_points = name, path, crash_points
        self.schema = ROW_SCHEMAS[name]
        self.stored_schema = duckdb_safe(self._read(lambda: pq.read_schema(path).empty_table())).schema
        self.error: RunDirectoryError | None = None

    def _read(self, read: Callable[[], pa.Table]) -> pa.Table:
        """`read()` conformed to the contract; a file that is no Parquet or breaks the contract: RunDirectoryError."""
        try:
            return contract.conform(read(), self.schema)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
            raise RunDirectoryError(f"{self.path}: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        parquet = pq.ParquetFile(self.path)
        for group in range(parquet.num_row_groups):
            try:
                rows = self._read(lambda group=group: parquet.read_row_group(group))
            except RunDirectoryError as exc:
                self.error = exc  # DuckDB, reading the stream, reports it only as its own error
                raise
            if self.crash_points:
                self.crash_points.reach(LOAD_STAGE)
            yield from duckdb_safe(rows).to_batches(max_chunksize=LOAD_BATCH_ROWS)

    def write(self, con: duckdb.DuckDBPyConnection) -> int | None:
        source = str(self.path.resolve())
        try:
            return write_file(
                con,
                self.name,
                source,
                _sha256(self.path),
                lambda: pa.RecordBatchReader.from_batches(self.stored_schema, self._batches()),
                datetime.now(UTC),
            )
        except duckdb.Error:
            if self.error is not None:
                raise self.error from None
            raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
