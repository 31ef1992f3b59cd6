"""A JSON-lines message from an independent client (confluent-kafka / librdkafka) is ingested exactly like ours."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.producer import TelemetryProducer
from ingest.kafka.topics import key_partition
from tests.ingest.kafka.helpers import (
    BUSY_CALENDAR,
    NATURAL_KEYS,
    every_stream,
    lake_rows,
    run_loader,
    simulation,
    sorted_by,
)
from tests.ingest.kafka.jsonl import to_jsonl
from tests.sample_lake import REPO

pytestmark = pytest.mark.kafka


def test_json_lines_from_confluent_kafka_land_like_our_arrow_messages(settings):
    streams = every_stream(simulation(controllers=8, hours=1, seed=11, maintenance_per_host_day=BUSY_CALENDAR))
    streams.pop(contract.TOPIC_JOBS)  # keyed by host, not controller: tests/ingest/kafka/test_jobs_stream.py
    controller = streams[contract.TOPIC_MAINTENANCE]["controller_id"][0].as_py()  # one with rows on every topic
    mine = {topic: rows.filter(pc.equal(rows["controller_id"], controller)) for topic, rows in streams.items()}
    # Java's default partitioner (murmur2), which our producer mirrors; librdkafka's own default differs.
    theirs = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    delivered = {}
    for topic, rows in mine.items():
        theirs.produce(
            topic,
            key=controller.encode(),
            value=to_jsonl(rows),
            headers=codec.message_headers(contract.TELEMETRY_SCHEMAS[topic], contract.CONTENT_TYPE_JSONL),
            on_delivery=lambda err, msg: delivered.update({msg.topic(): (err, msg.partition(), msg.offset())}),
        )
    assert theirs.flush(30) == 0
    with TelemetryProducer(settings) as ours:
        for topic, rows in mine.items():
            ours.send(topic, rows)

    status = run_loader(settings)

    assert status["quarantined_total"] == 0
    expected_partition = key_partition(controller.encode(), settings.kafka.partitions)
    for topic, rows in mine.items():
        error, partition, offset = delivered[topic]
        assert error is None and partition == expected_partition
        name = contract.TABLE_NAMES[topic]
        stored = lake_rows(settings, name)
        via_json = stored.filter(pc.equal(stored["kafka_offset"], offset))
        via_arrow = stored.filter(pc.not_equal(stored["kafka_offset"], offset))
        assert via_json.num_rows == via_arrow.num_rows == rows.num_rows > 0, name
        assert set(stored["kafka_partition"].to_pylist()) == {expected_partition}
        columns = list(contract.TELEMETRY_SCHEMAS[topic].names)
        keys = NATURAL_KEYS[name]
        assert sorted_by(via_json.select(columns), keys).equals(sorted_by(via_arrow.select(columns), keys)), name


def test_the_readme_interop_example_runs_as_written(settings, tmp_path):
    """The README's confluent-kafka example, extracted and run as a reader would, against this test's broker."""
    readme = (REPO / "README.md").read_text()
    example = re.search(r"# e\.g\. one health snapshot.*?<<'PY'\n(.*?)\nPY\n", readme, re.S)
    assert example, "the README's interop example is gone"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers}
    completed = subprocess.run(
        [sys.executable, "-"], input=example.group(1), text=True, cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "health_rows.jsonl").is_file()

    status = run_loader(settings)

    assert (status["rows_total"], status["quarantined_total"]) == (1, 0)
    stored = lake_rows(settings, "errors", ["controller_id", "record_type", "device_temp_c"]).to_pylist()
    assert stored == [{"controller_id": "0x1d9af1ed1e760347", "record_type": "health_snapshot", "device_temp_c": 49}]
