"""The pilot's jobs stream end to end: JSON lines from an independent client (confluent-kafka) land like our Arrow
messages, keyed by host; `simulate --to-kafka` and `leo-fleet load DIR` both fill raw.jobs with the simulated jobs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from confluent_kafka import Producer

from ingest import contract
from ingest.kafka import codec
from ingest.kafka.producer import TelemetryProducer
from ingest.kafka.topics import key_partition
from ingest.lake.loader import load_run_directory
from ingest.sim.parquet_sink import write_run
from tests.ingest.kafka import helpers
from tests.ingest.kafka.jsonl import to_jsonl

pytestmark = pytest.mark.kafka
COLUMNS = list(contract.JOBS_SCHEMA.names)
KEYS = helpers.NATURAL_KEYS["jobs"]


def test_json_lines_jobs_land_like_our_arrow_jobs(settings):
    jobs = helpers.simulated_streams(helpers.simulation(controllers=16, hours=2, seed=11))[contract.TOPIC_JOBS]
    host = jobs["controller_id"][0].as_py()
    mine = jobs.filter(pc.equal(jobs["controller_id"], host))
    theirs = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    delivered = {}
    theirs.produce(
        contract.TOPIC_JOBS,
        key=host.encode(),
        value=to_jsonl(mine),
        headers=codec.message_headers(contract.JOBS_SCHEMA, contract.CONTENT_TYPE_JSONL),
        on_delivery=lambda err, msg: delivered.update(json=(err, msg.partition(), msg.offset())),
    )
    assert theirs.flush(30) == 0
    with TelemetryProducer(settings) as ours:
        ours.send(contract.TOPIC_JOBS, mine)

    status = helpers.run_loader(settings)

    assert status["quarantined_total"] == 0
    error, partition, offset = delivered["json"]
    assert error is None and partition == key_partition(host.encode(), settings.kafka.partitions)
    stored = helpers.lake_rows(settings, "jobs")
    via_json = stored.filter(pc.equal(stored["kafka_offset"], offset)).select(COLUMNS)
    via_arrow = stored.filter(pc.not_equal(stored["kafka_offset"], offset)).select(COLUMNS)
    assert via_json.num_rows == via_arrow.num_rows == mine.num_rows > 0
    assert helpers.sorted_by(via_json, KEYS).equals(helpers.sorted_by(via_arrow, KEYS))


def test_a_run_directory_loads_every_simulated_job(settings, tmp_path):
    sim = helpers.simulation(controllers=30, hours=3, seed=4)
    write_run(sim, tmp_path / "run", progress=False)
    expected = pa.concat_tables([chunk.jobs for chunk in sim.chunks()])

    load_run_directory(settings, tmp_path / "run")

    stored = helpers.lake_rows(settings, "jobs", COLUMNS)
    assert expected.num_rows > 0
    assert helpers.sorted_by(stored, KEYS).equals(helpers.sorted_by(helpers.as_stored(expected), KEYS))
