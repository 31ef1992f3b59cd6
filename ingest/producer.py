"""Publish contract tables to Kafka as Arrow IPC (zstd) messages of 64–512 KB, partitioned by controller.

Rows are grouped by the partition Kafka's default partitioner assigns their controller_id (ingest.topics) and
packed many to a message; each message's key is the controller_id of its first row, which hashes to the same
partition as every other row in it. Per-partition buffers carry rows over between `send` calls so messages
stay near the target size; `flush` sends the remainders. kafka-python retries failed deliveries until
`delivery_timeout_ms`; after that the failure is raised, never swallowed.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
from kafka import KafkaProducer

from ingest import codec, contract
from ingest.settings import Settings
from ingest.topics import ensure_topics, row_partitions

# Rows encoded to estimate a topic's compressed bytes per row before its first message; refined afterwards.
CALIBRATION_ROWS = 4096
# Whole messages per batch (a message larger than batch_size would travel alone anyway); acks from all replicas.
PRODUCER_CONFIG = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": codec.MAX_PRODUCED_BYTES + 64 * 1024,
    "max_request_size": 1024 * 1024,
}


class DeliveryError(RuntimeError):
    """Messages that Kafka did not acknowledge after all retries."""


class TelemetryProducer:
    """One KafkaProducer for all telemetry topics; use as a context manager so remainders are flushed."""

    def __init__(self, settings: Settings, target_bytes: int = codec.TARGET_MESSAGE_BYTES) -> None:
        ensure_topics(settings)
        self._producer = KafkaProducer(**settings.kafka.client_config(), **PRODUCER_CONFIG)
        self._target = target_bytes
        self._partitions = {topic: self._partition_count(topic) for topic in contract.TELEMETRY_SCHEMAS}
        self._bytes_per_row: dict[str, float] = {}
        self._pending: dict[tuple[str, int], list[pa.Table]] = defaultdict(list)
        self._failures: list[BaseException] = []
        self.messages = 0
        self.bytes = 0
        self.rows = 0

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
            self._producer.close()

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
        self._producer.flush()
        self._raise_failures()

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
        future = self._producer.send(
            topic,
            value=payload,
            key=key,
            partition=partition,
            headers=codec.message_headers(contract.TELEMETRY_SCHEMAS[topic]),
        )
        future.add_errback(self._failures.append)
        self.messages += 1
        self.bytes += len(payload)
        self.rows += rows.num_rows
        return rows.num_rows

    def _raise_failures(self) -> None:
        if self._failures:
            raise DeliveryError(
                f"{len(self._failures)} message(s) were not delivered after retries: {self._failures[0]!r}"
            )
