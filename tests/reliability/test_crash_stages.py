"""The real loader process crashed at each step of a load (ingest/lake/fault_injection.py), then restarted: the lake
holds every produced row exactly once (pipeline_patterns.md §2: rows and watermark in one transaction, the lake's
watermark, not Kafka's committed offset, decides where a restarted loader resumes)."""

from __future__ import annotations

import subprocess

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest import lake
from ingest.kafka.producer import TelemetryProducer
from ingest.lake.fault_injection import ENV, EXIT_CODE, STAGES
from ingest.lake.raw_tables import watermarks
from ingest.settings import Settings
from tests.ingest.kafka.helpers import (
    CLI,
    NATURAL_KEYS,
    cli_env,
    duplicates,
    run_loader,
    simulated_streams,
    simulation,
    stored_rows,
)

pytestmark = pytest.mark.kafka


def _publish(settings: Settings, streams: dict[str, pa.Table]) -> int:
    with TelemetryProducer(settings) as producer:
        for topic, rows in streams.items():
            producer.send(topic, rows)
    return producer.rows


def _group_offsets(settings: Settings, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
    """Next offset per partition as committed to Kafka by the loader's consumer group (None: never committed)."""
    consumer = KafkaConsumer(
        **settings.kafka.client_config(), group_id=settings.kafka.consumer_group, enable_auto_commit=False
    )
    try:
        return {partition: consumer.committed(TopicPartition(*partition)) for partition in partitions}
    finally:
        consumer.close(autocommit=False)


def _lake_watermarks(settings: Settings) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the topics were created once, so each has one incarnation."""
    con = lake.connect(settings, read_only=True)
    try:
        return {(topic, partition): mark for (topic, partition, _), mark in watermarks(con).items()}
    finally:
        con.close()


@pytest.mark.parametrize("stage", STAGES)
def test_a_loader_crashed_at_each_stage_of_a_load_restarts_exactly_once(settings: Settings, stage: str) -> None:
    streams = simulated_streams(simulation(controllers=200, hours=1, seed=11))
    first = _publish(settings, {topic: rows.slice(0, rows.num_rows // 2) for topic, rows in streams.items()})
    run_loader(settings)  # the first half is in the lake before the crash
    second = _publish(settings, {topic: rows.slice(rows.num_rows // 2) for topic, rows in streams.items()})
    crashed = subprocess.run(
        [*CLI, "ingest", "--until-idle", "--flush-rows", "5000", "--flush-seconds", "0.5"],
        env={**cli_env(settings), ENV: f"{stage}:1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert crashed.returncode == EXIT_CODE, crashed.stderr[-2000:]
    # Before the lake commit the crashed batch left nothing; after it, the whole batch is in.
    at_crash = stored_rows(settings)
    assert at_crash > first if stage == "after_lake_commit" else at_crash == first
    if stage == "after_lake_commit":
        # The lake committed a batch that Kafka never heard of: the group's offsets lag the lake's watermarks.
        marks = _lake_watermarks(settings)
        group = _group_offsets(settings, list(marks))
        assert any((group[partition] or 0) < mark + 1 for partition, mark in marks.items())

    final = run_loader(settings)

    assert stored_rows(settings) == first + second
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)
    assert final["rows_total"] == first + second - at_crash
    print(f"\n{stage}: produced {first + second:,} rows, {at_crash:,} at the crash, {stored_rows(settings):,} after")
