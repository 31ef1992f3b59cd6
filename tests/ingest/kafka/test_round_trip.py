"""Simulator → Kafka (Arrow IPC, zstd) → loader → DuckLake gives back exactly the simulated rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest import contract
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import key_partition
from tests.ingest.kafka.helpers import (
    BUSY_CALENDAR,
    NATURAL_KEYS,
    as_stored,
    every_stream,
    lake_rows,
    run_loader,
    simulation,
    sorted_by,
)

pytestmark = pytest.mark.kafka


def test_every_simulated_row_arrives_once_with_its_values(settings):
    sim = simulation(controllers=60, hours=2, maintenance_per_host_day=BUSY_CALENDAR)
    expected = every_stream(sim)
    truth = pa.concat_tables([chunk.truth for chunk in sim.chunks()])

    published = publish_simulation(settings, sim)
    status = run_loader(settings)

    produced = sum(table.num_rows for table in expected.values())
    assert published.rows == produced
    assert status["rows_total"] == produced
    assert status["quarantined_total"] == 0
    for topic, table in expected.items():
        name = contract.TABLE_NAMES[topic]
        stored = lake_rows(settings, name, table.schema.names)
        assert stored.num_rows == table.num_rows > 0, name
        assert sorted_by(stored, NATURAL_KEYS[name]).equals(sorted_by(as_stored(table), NATURAL_KEYS[name])), name
    truth_keys = ("controller_id", "kind", "onset_ts")
    stored_truth = lake_rows(settings, "truth_faults", contract.TRUTH_FAULTS_SCHEMA.names)
    assert truth.num_rows > 0
    assert sorted_by(stored_truth, truth_keys).equals(sorted_by(as_stored(truth), truth_keys))
    _assert_each_controller_on_its_key_partition(settings)


def _assert_each_controller_on_its_key_partition(settings):
    """One controller's rows share the partition Kafka's default partitioner picks for its id: ordered per device."""
    for name in ("errors", "link", "latency", "inventory", "maintenance"):
        placed = lake_rows(settings, name, ["controller_id", "kafka_partition"])
        placed = placed.group_by("controller_id").aggregate([("kafka_partition", "min"), ("kafka_partition", "max")])
        assert pc.all(pc.equal(placed["kafka_partition_min"], placed["kafka_partition_max"])).as_py(), name
        for controller_id, partition in zip(
            placed["controller_id"].to_pylist(), placed["kafka_partition_min"].to_pylist(), strict=True
        ):
            assert partition == key_partition(controller_id.encode(), settings.kafka.partitions), name
