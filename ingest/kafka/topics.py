"""Telemetry topics: creating them, and placing each row on the partition Kafka's default partitioner would pick.

Rows are partitioned by `murmur2(controller_id)` exactly as the Java client's (and kafka-python's) default
partitioner does for a record keyed by controller_id, so one controller's rows always share a partition
(ordered) and an independent client publishing one controller's JSON keyed by its id lands on the same one.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from ingest import contract
from ingest.settings import Settings

TELEMETRY_TOPICS = tuple(contract.TELEMETRY_SCHEMAS)
# Alerts of the live path (pipelines/live/delivery.py), keyed by the alert's fingerprint so consumers can dedupe.
ALERTS_TOPIC = "leo.alerts"


def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def row_partitions(controller_ids: pa.ChunkedArray | pa.Array, partitions: int) -> np.ndarray:
    """Partition of every row; hashes each distinct controller once (murmur2 is pure Python)."""
    encoded = pc.dictionary_encode(controller_ids)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    by_controller = np.array(
        [key_partition(cid.encode(), partitions) for cid in encoded.dictionary.to_pylist()], dtype=np.int32
    )
    return by_controller[encoded.indices.to_numpy(zero_copy_only=False)]


def ensure_topics(settings: Settings, topics: tuple[str, ...] = TELEMETRY_TOPICS) -> None:
    """Create missing topics with `settings.kafka.partitions` partitions; existing topics are left as they are.

    Replication factor -1 asks the cluster for its own default (KIP-464), so production keeps its policy.
    """
    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        if missing:
            # Another process may create one between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(t, num_partitions=settings.kafka.partitions, replication_factor=-1) for t in missing]
                )
    finally:
        admin.close()


def reset_topics(settings: Settings, timeout_s: float = 10.0) -> None:
    """Delete and recreate the telemetry topics, empty (demo runs and tests start from a clean stream).

    Deletion is asynchronous on real clusters: wait until the old topics are gone before creating them again.
    """
    admin = KafkaAdminClient(**settings.kafka.client_config())
    try:
        existing = [topic for topic in admin.list_topics() if topic in TELEMETRY_TOPICS]
        if existing:
            admin.delete_topics(existing)
        deadline = time.monotonic() + timeout_s
        while set(existing) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {existing} were not deleted within {timeout_s} s")
            time.sleep(0.1)
    finally:
        admin.close()
    ensure_topics(settings)
