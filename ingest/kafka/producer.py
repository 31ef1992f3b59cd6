"""Publish contract tables to Kafka as Arrow IPC (zstd) messages of 64–512 KB, partitioned by controller.

Rows are grouped by the partition Kafka's default partitioner assigns their controller_id (ingest.kafka.topics) and
packed many to a message; each message's key is the controller_id of its first row, which hashes to the same
partition as every other row in it. Per-partition buffers carry rows over between `send` calls so messages
stay near the target size; `flush` sends the remainders. kafka-python retries failed deliveries until
`delivery_timeout_ms`; after that the failure is raised, never swallowed: `DeliveryError` names how many messages
and rows were lost and how many Kafka acknowledged (`delivered_rows`), the only rows a caller may count as sent.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np
import pyarrow as pa
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.topics import ensure_topics, row_partitions
from ingest.settings import Settings

# Rows encoded to estimate a topic's compressed bytes per row before its first message; refined afterwards.
CALIBRATION_ROWS = 4096
# Whole messages per batch (a message larger than batch_size would travel alone anyway); acks from all replicas.
PRODUCER_CONFIG = {
    "acks": "all",
    # Retries after a lost ack carry the same producer id and sequence number, so the broker can drop the copy.
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": codec.MAX_PRODUCED_BYTES + 64 * 1024,
    "max_request_size": 1024 * 1024,
    # A broker that lost its topics (the local one after a restart) must not get them back with its defaults.
    "allow_auto_create_topics": False,
}


class DeliveryError(RuntimeError):
    """Messages that Kafka did not acknowledge after all retries."""

    def __init__(self, message: str, failed_messages: int = 0, failed_rows: int = 0, delivered_rows: int = 0) -> None:
        super().__init__(message)
        self.failed_messages = failed_messages
        self.failed_rows = failed_rows
        self.delivered_rows = delivered_rows


class TelemetryProducer:
    """One KafkaProducer for all telemetry topics; use as a context manager so remainders are flushed."""

    def __init__(
        self,
        settings: Settings,
        target_bytes: int = codec.TARGET_MESSAGE_BYTES,
        config: dict[str, object] | None = None,
    ) -> None:
        """`config` overrides PRODUCER_CONFIG (e.g. a short `delivery_timeout_ms` in the outage tests)."""
        ensure_topics(settings)
        config = {**PRODUCER_CONFIG, **(config or {})}
        self._producer = KafkaProducer(**settings.kafka.client_config(), **config)
        # How long a message may take to succeed or fail: bounds every wait on a broker that is gone.
        self._delivery_timeout_s = (
            config.get("delivery_timeout_ms", KafkaProducer.DEFAULT_CONFIG["delivery_timeout_ms"]) / 1000
        )
        self._target = target_bytes
        self._partitions = {topic: self._partition_count(topic) for topic in contract.TELEMETRY_SCHEMAS}
        self._bytes_per_row: dict[str, float] = {}
        self._pending: dict[tuple[str, int], list[pa.Table]] = defaultdict(list)
        self._failures: list[BaseException] = []  # one per message Kafka gave up on
        self.messages = 0
        self.bytes = 0
        self.rows = 0
        self.delivered_messages = 0
        self.delivered_rows = 0

    def _partition_count(self, topic: str) -> int:
        partitions = self._producer.partitions_for(topic)
        if not partitions:
            raise DeliveryError(f"topic {topic} has no partitions")
        return len(partitions)

    def __enter__(self) -> TelemetryProducer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._close()

    def _close(self) -> None:
        """Close within the delivery timeout; a broker that is gone must not hide the DeliveryError in flight.

        kafka-python's close flushes first and raises KafkaTimeoutError while a batch is still pending, before it
        stops its network thread. Those messages are already counted as undelivered (flush raised DeliveryError),
        so the timeout is dropped and the thread is stopped without sending, as the Java client's close(0) does.
        """
        try:
            self._producer.close(timeout=self._delivery_timeout_s)
        except KafkaTimeoutError:
            self._producer._sender.force_close()  # no public way to abandon pending batches in kafka-python

    def send(self, topic: str, table: pa.Table) -> None:
        """Queue `table`'s rows; full-size messages go out now, the rest on a later send or `flush`."""
        self._raise_failures()
        table = contract.conform(table, contract.TELEMETRY_SCHEMAS[topic])
        if not table.num_rows:
            return
        partitions = row_partitions(table.column("controller_id"), self._partitions[topic])
        order = np.argsort(partitions, kind="stable")
        grouped = table.take(pa.array(order))
        bounds = np.searchsorted(partitions[order], np.arange(self._partitions[topic] + 1))
        for partition in range(self._partitions[topic]):
            start, end = int(bounds[partition]), int(bounds[partition + 1])
            if end > start:
                pending = self._pending[(topic, partition)]
                pending.append(grouped.slice(start, end - start))
                self._drain(topic, partition, complete_only=True)

    def flush(self) -> None:
        """Send every buffered row and wait until Kafka has acknowledged all messages."""
        for topic, partition in list(self._pending):
            self._drain(topic, partition, complete_only=False)
        self._settle()
        self._raise_failures(settled=True)

    def _drain(self, topic: str, partition: int, complete_only: bool) -> None:
        pending = self._pending[(topic, partition)]
        rows = pa.concat_tables(pending) if len(pending) > 1 else pending[0] if pending else None
        while rows is not None and rows.num_rows:
            n = self._rows_per_message(topic, rows)
            if complete_only and rows.num_rows < n:
                break
            n = self._publish(topic, partition, rows.slice(0, n))
            rows = rows.slice(n)
        self._pending[(topic, partition)] = [rows] if rows is not None and rows.num_rows else []

    def _rows_per_message(self, topic: str, rows: pa.Table) -> int:
        if topic not in self._bytes_per_row:
            sample = rows.slice(0, CALIBRATION_ROWS)
            self._bytes_per_row[topic] = len(codec.encode_arrow(sample)) / sample.num_rows
        return max(1, int(self._target / self._bytes_per_row[topic]))

    def _publish(self, topic: str, partition: int, rows: pa.Table) -> int:
        """Encode and send a prefix of `rows` no larger than MAX_PRODUCED_BYTES; returns how many rows went."""
        payload = codec.encode_arrow(rows)
        while len(payload) > codec.MAX_PRODUCED_BYTES and rows.num_rows > 1:
            rows = rows.slice(0, rows.num_rows // 2)
            payload = codec.encode_arrow(rows)
        self._bytes_per_row[topic] = 0.5 * self._bytes_per_row[topic] + 0.5 * len(payload) / rows.num_rows
        key = rows.column("controller_id")[0].as_py().encode()
        headers = codec.message_headers(contract.TELEMETRY_SCHEMAS[topic])
        self._send(topic, payload, key, headers, rows.num_rows, partition)
        return rows.num_rows

    def send_rejected(self, topic: str, raw: bytes, reason: str, key: bytes) -> None:
        """Forward input a collector could not map, so the loader quarantines its raw bytes with `reason`.

        Acknowledged by `flush` like any message, so a collector may advance its position past it afterwards.
        """
        self._raise_failures()
        headers = codec.rejected_headers(contract.TELEMETRY_SCHEMAS[topic], reason)
        self._send(topic, raw[: codec.MAX_PRODUCED_BYTES], key, headers, 0)

    def _send(
        self, topic: str, payload: bytes, key: bytes, headers: list, rows: int, partition: int | None = None
    ) -> None:
        try:
            future = self._producer.send(topic, value=payload, key=key, partition=partition, headers=headers)
        except KafkaTimeoutError as error:  # no metadata or buffer space within max_block_ms: the broker is gone
            self.messages += 1
            self.rows += rows
            self._failures.append(error)
            self._raise_failures()
        future.add_callback(self._delivered, rows)
        future.add_errback(self._failures.append)
        self.messages += 1
        self.bytes += len(payload)
        self.rows += rows

    def _delivered(self, rows: int, _metadata) -> None:
        self.delivered_messages += 1
        self.delivered_rows += rows

    def _settle(self) -> None:
        """Wait until every message sent is acknowledged or failed; a broker that is gone bounds the wait."""
        with contextlib.suppress(KafkaTimeoutError):
            self._producer.flush(timeout=2 * self._delivery_timeout_s)

    def _raise_failures(self, settled: bool = False) -> None:
        """Raise DeliveryError once a message failed (or, `settled`, is still unacknowledged), counting them all."""
        if not (self._failures or (settled and self.delivered_messages < self.messages)):
            return
        if not settled:
            self._settle()
        undelivered, undelivered_rows = self.messages - self.delivered_messages, self.rows - self.delivered_rows
        cause = repr(self._failures[0]) if self._failures else "no acknowledgement within the delivery timeout"
        raise DeliveryError(
            f"{undelivered} message(s) ({undelivered_rows} rows) were not delivered after retries "
            f"({self.delivered_rows} rows were acknowledged): {cause}",
            undelivered,
            undelivered_rows,
            self.delivered_rows,
        )
