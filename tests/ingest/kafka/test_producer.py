"""What the producer puts on the wire: message sizes, headers, keys and partitions, read back with a plain consumer."""

from __future__ import annotations

from collections import defaultdict

import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import key_partition
from tests.ingest.kafka.helpers import simulation

pytestmark = pytest.mark.kafka

MIN_MESSAGE_BYTES = 64 * 1024


def _records(settings) -> list:
    consumer = KafkaConsumer(**settings.kafka.client_config(), enable_auto_commit=False)
    partitions = [
        TopicPartition(topic, p) for topic in contract.TELEMETRY_SCHEMAS for p in range(settings.kafka.partitions)
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    records = []
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def test_messages_are_packed_sized_labelled_and_keyed_by_controller(settings):
    published = publish_simulation(settings, simulation(controllers=400, hours=3))

    records = _records(settings)

    assert len(records) == published.messages
    assert sum(len(r.value) for r in records) == published.bytes
    by_partition = defaultdict(list)
    for record in records:
        by_partition[(record.topic, record.partition)].append(record)
        schema = contract.TELEMETRY_SCHEMAS[record.topic]
        assert dict(record.headers) == dict(codec.message_headers(schema))
        assert len(record.value) <= codec.MAX_PRODUCED_BYTES
        assert key_partition(record.key, settings.kafka.partitions) == record.partition
        rows = codec.decode(record.topic, record.value, record.headers)
        assert {key_partition(c.encode(), settings.kafka.partitions) for c in rows["controller_id"].to_pylist()} == {
            record.partition
        }
    # Only the last message of a partition (the remainder) may be small.
    for records_in_partition in by_partition.values():
        assert all(len(r.value) >= MIN_MESSAGE_BYTES for r in records_in_partition[:-1])
    assert sum(len(v) > 1 for v in by_partition.values()) > 0


def test_live_mode_sends_each_tick_when_the_wall_clock_reaches_it(settings):
    sim = simulation(controllers=30, hours=2)
    clock = {"now": 0.0}
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock["now"] += seconds

    published = publish_simulation(settings, sim, speed=3600, sleep=sleep, now=lambda: clock["now"])

    span_s = (sim.config.hours * 3600) / 3600  # two simulated hours at 3600x: two wall seconds
    assert clock["now"] == pytest.approx(span_s)
    assert len(waits) == pytest.approx(span_s / 1.0, abs=1)  # one send per wall second (MIN_TICK_WALL_S)
    telemetry = sum(c.errors.num_rows + c.link.num_rows + c.latency.num_rows + c.jobs.num_rows for c in sim.chunks())
    assert published.rows == telemetry + sim.inventory.num_rows
