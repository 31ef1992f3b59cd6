"""The broker stopped mid-stream and started again on the same port, with a producer and a loader running.

The local broker keeps topics in memory (local_kafka.md), so its restart is also a topic reset: offsets start
again at 0 under a lake watermark that is higher. The producer must fail loudly for what it could not deliver;
the loader, never restarted, must record the reset and load every message of the new topics exactly once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ingest import lake
from ingest.kafka import broker
from ingest.kafka.producer import DeliveryError, TelemetryProducer
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import ensure_topics
from ingest.lake.loader import RECREATED, Loader, LoaderOptions
from ingest.lake.raw_tables import ensure_tables
from ingest.settings import KafkaSettings, Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from tests.ingest.kafka.helpers import (
    NATURAL_KEYS,
    STREAMS,
    duplicates,
    lake_count,
    run_loader,
    simulated_streams,
    stored_rows,
)

pytestmark = pytest.mark.kafka

# Short enough that the producer gives up while the broker is down, long enough to ride out a blip.
PRODUCER_TIMEOUTS = {"request_timeout_ms": 1500, "delivery_timeout_ms": 3000, "max_block_ms": 3000}
OUTAGE_S = 6.0
AFTER_MESSAGES = 30  # messages per partition after the restart: more than the old incarnation's watermark


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Settings]:
    """A broker of this test's own: the session broker serves the other tests."""
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}")
    settings = Settings(kafka=kafka).with_data_dir(tmp_path / "data")
    broker.start(settings)
    yield settings
    broker.stop(settings)


def _wait_for(condition, timeout_s: float, what: str, state: Callable[[], object] = lambda: "") -> float:
    """Seconds until `condition()` held; on a time-out the message shows `state()`, what was seen instead."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}: {state()}"
        time.sleep(0.2)
    return time.monotonic() - started


def _resets(settings: Settings) -> int:
    return lake_count(settings, f"SELECT count(*) FROM raw.offset_resets WHERE kind = '{RECREATED}'")


def test_a_broker_restart_mid_stream_loses_nothing_it_did_not_report(own_broker: Settings) -> None:
    settings = own_broker
    con = lake.connect(settings)
    ensure_tables(con)  # so the test can count rows before the loader or producer has created the tables
    con.close()
    loader = Loader(settings, LoaderOptions(follow=True, flush_interval_s=0.5))
    outcome: dict[str, object] = {}

    def load() -> None:
        try:
            loader.run()
        except BaseException as error:  # shown by the time-out below, which would otherwise only say "no rows"
            outcome["loader_error"] = error
            raise

    loader_thread = threading.Thread(target=load, name="loader")
    loader_thread.start()
    before = Simulation(SimConfig(controllers=150, hours=2, seed=3))

    def produce_live() -> None:
        try:
            speed = before.config.hours * 3600 / 120  # paced over ~120 s: the outage comes long before the end
            outcome["summary"] = publish_simulation(settings, before, speed=speed, producer_config=PRODUCER_TIMEOUTS)
        except Exception as error:  # anything but a DeliveryError fails the assertion below, showing what it was
            outcome["error"] = error

    producer_thread = threading.Thread(target=produce_live, name="producer")
    producer_thread.start()
    _wait_for(lambda: stored_rows(settings) > 0, 60, "the loader's first commit")
    assert producer_thread.is_alive(), outcome  # the outage must come mid-stream

    broker.stop(settings)
    producer_thread.join(timeout=60)
    assert not producer_thread.is_alive()
    time.sleep(max(0.0, OUTAGE_S - PRODUCER_TIMEOUTS["delivery_timeout_ms"] / 1000))
    stored_before = stored_rows(settings)  # what the loader saved of the old topics before they vanished
    broker.start(settings, port=broker.configured_port(settings))
    restarted = time.monotonic()

    # The producer failed loudly, naming what it could not deliver; what it acknowledged bounds what was stored.
    error = outcome.get("error")
    assert isinstance(error, DeliveryError), outcome
    assert error.failed_messages > 0 and f"{error.failed_messages} message(s)" in str(error)
    assert stored_before <= error.delivered_rows

    # The topics come back empty under new ids, and new telemetry arrives at once: the loader, still running, may
    # fetch some of it before its metadata shows the new ids; the message ledger keeps that from being stored twice.
    ensure_topics(settings)

    # New telemetry (a later day of another fleet run) on the recreated topics, which start again at offset 0.
    after = Simulation(SimConfig(controllers=150, hours=1, seed=4, start=before.config.start + timedelta(days=1)))
    streams = simulated_streams(after)
    with TelemetryProducer(settings) as producer:
        for part in range(AFTER_MESSAGES):  # each flush ends a message per partition: the new logs outgrow the old
            for topic in STREAMS:  # watermarks, so a loader that kept the old topic ids would skip their beginning
                rows = streams[topic].num_rows
                start, stop = rows * part // AFTER_MESSAGES, rows * (part + 1) // AFTER_MESSAGES
                producer.send(topic, streams[topic].slice(start, stop - start))
            producer.flush()
    expected = stored_before + producer.rows
    _wait_for(
        lambda: stored_rows(settings) == expected,
        90,
        "the new topics' rows in the lake",
        lambda: f"{stored_rows(settings):,} of {expected:,} rows; loader {loader.totals}, {outcome}",
    )
    recovered_s = time.monotonic() - restarted
    loader.stop()
    loader_thread.join(timeout=60)

    assert not loader_thread.is_alive()
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    resets = _resets(settings)
    assert resets > 0
    lost = error.delivered_rows - stored_before
    print(
        f"\nacknowledged before the outage {error.delivered_rows:,} rows, stored {stored_before:,}, lost with the "
        f"broker {lost:,}; undelivered {error.failed_rows:,} rows in {error.failed_messages} messages (reported); "
        f"after the restart {producer.rows:,} rows produced, all stored, {resets} partition resets recorded, "
        f"lake complete {recovered_s:.1f} s after the broker restart"
    )


def test_a_topic_recreated_while_no_loader_ran_is_read_from_its_beginning(own_broker: Settings) -> None:
    """Recreation is decided by the topic id stored with the watermark, so it is recognised across loader restarts:
    the new topics' messages sit at offsets the old watermark already passed, and every one of them is loaded."""
    settings = own_broker
    first = Simulation(SimConfig(controllers=150, hours=2, seed=31))
    produced = publish_simulation(settings, first).rows
    run_loader(settings)
    stored_first = stored_rows(settings)

    broker.stop(settings)
    broker.start(settings, port=broker.configured_port(settings))  # memory-only: every topic is gone
    later = SimConfig(controllers=150, hours=1, seed=32, start=first.config.start + timedelta(days=1))
    produced += publish_simulation(settings, Simulation(later)).rows  # recreates the topics under new ids
    run_loader(settings)
    recreations = _resets(settings)
    again = run_loader(settings)  # a third run finds nothing new and records nothing new

    assert stored_first > 0
    assert stored_rows(settings) == produced
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    # One recreation per partition the lake had a watermark for, recorded once.
    partitions_loaded = lake_count(
        settings,
        "SELECT count(DISTINCT (kafka_topic, kafka_partition)) FROM raw.ingest_offsets "
        f"WHERE committed_at <= (SELECT min(detected_at) FROM raw.offset_resets WHERE kind = '{RECREATED}')",
    )
    assert recreations == partitions_loaded > 0
    assert (again["rows_total"], _resets(settings)) == (0, recreations)
