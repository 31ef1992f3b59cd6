"""Whatever offsets the broker answers, the lake holds every produced message once (issue 11).

The local broker answers ListOffsets one or two short for partitions where several messages shared a produce
batch: a fetch returns offset N with high watermark N + 1 while ListOffsets says N. The loader used to read that
as a recreated topic and re-read the partition into the lake on every restart.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import replace

import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import TELEMETRY_TOPICS
from ingest.lake.loader import END_BELOW_WATERMARK, RECREATED
from ingest.settings import Settings
from tests.ingest.kafka.helpers import (
    CLI,
    assert_exactly,
    cli_env,
    create_tables,
    in_own_group,
    lake_rows,
    run_cli,
    run_loader,
    simulated_streams,
    simulation,
    start_publishing,
    stored_rows,
)
from tests.ingest.kafka.jsonl import to_jsonl

pytestmark = pytest.mark.kafka


def short_end_offsets(settings: Settings) -> set[tuple[str, int]]:
    """Partitions whose ListOffsets end is below the high watermark a fetch reports, asked of the broker directly."""
    consumer = KafkaConsumer(**settings.kafka.client_config(), enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for topic in TELEMETRY_TOPICS for p in consumer.partitions_for_topic(topic)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while any(consumer.highwater(tp) is None for tp in partitions if ends[tp] > 0):
            assert time.monotonic() < deadline, "no fetch answered with a high watermark"
            consumer.poll(timeout_ms=500)
        return {(tp.topic, tp.partition) for tp in partitions if ends[tp] < (consumer.highwater(tp) or 0)}
    finally:
        consumer.close()


def recorded(settings: Settings, kind: str) -> set[tuple[str, int]]:
    resets = lake_rows(settings, "offset_resets", ["kafka_topic", "kafka_partition", "kind"])
    resets = resets.filter(pc.equal(resets["kind"], kind))
    return set(zip(resets["kafka_topic"].to_pylist(), resets["kafka_partition"].to_pylist(), strict=True))


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_three_reruns_after_a_full_speed_publish_leave_exactly_the_produced_rows(settings, catalog, request):
    """The issue's reproduction: a full-speed publish (several messages per produce batch), then three loaders one
    after the other, as a user runs `leo-fleet ingest --until-idle` three times; with either lake catalog."""
    if catalog == "postgres":
        server = request.getfixturevalue("postgres")
        settings = replace(settings, lake_catalog=server.catalog(server.create_database()))
    produced = publish_simulation(settings, simulation(controllers=500, hours=6, seed=42))
    statuses = []
    for _ in range(3):
        completed = run_cli(settings, "ingest", "--until-idle", "--json", timeout=300)
        assert completed.returncode == 0, completed.stderr
        statuses.append(json.loads(completed.stdout.splitlines()[-1]))

    assert_exactly(settings, produced.rows)
    assert [s["rows_total"] for s in statuses[1:]] == [0, 0]
    # The broker's inconsistency is recorded where it happened, and read as nothing else.
    short = short_end_offsets(settings)
    assert recorded(settings, END_BELOW_WATERMARK) == short
    assert recorded(settings, RECREATED) == set()
    if not short:  # timing-dependent (seen under a loaded parallel run): say so rather than pass as a reproduction
        pytest.skip("the broker answered every end offset right this run: the quirk was not reproduced")


def test_loaders_joining_and_leaving_one_group_while_data_flows(settings):
    create_tables(settings)
    producer, published = start_publishing(settings, simulation(controllers=300, hours=2, seed=23), seconds=30)

    def start_loader() -> subprocess.Popen:
        args = ["ingest", "--follow", "--json", "--flush-rows", "20000", "--flush-seconds", "0.5"]
        return subprocess.Popen(
            [*CLI, *args], env=cli_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    first, second = start_loader(), start_loader()
    deadline = time.monotonic() + 60
    while stored_rows(settings) == 0:
        if time.monotonic() > deadline:
            for loader in (first, second):
                loader.kill()
            pytest.fail(f"no loader committed anything: {[loader.communicate()[1] for loader in (first, second)]}")
        time.sleep(0.5)
    third = start_loader()  # joins mid-stream: a rebalance while both others hold partitions
    time.sleep(6)
    first.send_signal(signal.SIGTERM)  # leaves cleanly: drains, then gives its partitions up
    assert first.wait(timeout=60) == 0, first.stderr.read()
    time.sleep(4)
    second.send_signal(signal.SIGKILL)  # leaves without a word: the group notices at its session timeout
    second.wait()
    producer.join()
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=60) == 0, third.stderr.read()
    run_loader(in_own_group(settings), idle_s=2.0)  # a member of the old group may wait minutes after the SIGKILL

    assert_exactly(settings, published["summary"].rows)


def test_json_lines_from_confluent_kafka_at_full_speed_survive_reruns(settings):
    """An independent client batching many messages per request (librdkafka), then three loader runs."""
    streams = simulated_streams(simulation(controllers=60, hours=2, seed=12))
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "partitioner": "murmur2_random",
            "linger.ms": 50,  # several messages per produce batch, as at full speed
        }
    )
    failed = []
    produced = 0
    for topic, rows in streams.items():
        headers = codec.message_headers(contract.TELEMETRY_SCHEMAS[topic], contract.CONTENT_TYPE_JSONL)
        for controller in pc.unique(rows["controller_id"]).to_pylist():
            mine = rows.filter(pc.equal(rows["controller_id"], controller))
            producer.produce(
                topic,
                key=str(controller).encode(),
                value=to_jsonl(mine),
                headers=headers,
                on_delivery=lambda err, _msg: err and failed.append(err),
            )
            produced += mine.num_rows
            producer.poll(0)
    assert producer.flush(60) == 0 and not failed

    for _ in range(3):
        status = run_loader(settings)
        assert status["quarantined_total"] == 0

    assert_exactly(settings, produced)
