"""Reading a raw stream from a lake where a batch was stored twice (re-sent in a new Kafka message) gives each row
once: what reading it before the copies landed gives, whole or a group of controllers at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from ingest import contract, lake
from ingest.lake.raw_tables import Batch, Rows, ensure_tables, write_batch
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from models.series import Controllers
from pipelines.lib.partitions import Window
from pipelines.lib.telemetry import StreamRead, by_controller_group, read_stream

NOW = datetime(2026, 1, 6, tzinfo=UTC)


@pytest.mark.parametrize("topic", [contract.TOPIC_ERRORS, contract.TOPIC_LINK, contract.TOPIC_LATENCY])
def test_rows_stored_twice_are_read_once(tmp_path, topic: str) -> None:
    simulation = Simulation(SimConfig(controllers=8, hours=2, seed=2))
    chunk = next(iter(simulation.chunks()))
    rows = getattr(chunk, contract.TABLE_NAMES[topic])
    window = Window(chunk.window_start, chunk.window_end)
    con = lake.connect(Settings().with_data_dir(tmp_path))
    try:
        ensure_tables(con)
        write_batch(con, Batch(rows=[Rows(contract.TABLE_NAMES[topic], rows)]), NOW)
        once = read_stream(con, topic, window)
        # A batch of a third of the rows arrives again, in a message of its own.
        write_batch(con, Batch(rows=[Rows(contract.TABLE_NAMES[topic], rows.slice(0, rows.num_rows // 3))]), NOW)
        (stored,) = con.execute(f"SELECT count(*) FROM raw.{contract.TABLE_NAMES[topic]}").fetchone()
        twice = read_stream(con, topic, window)
        columns = read_stream(con, topic, window, [contract.TIME_COLUMNS[topic], "controller_id"])
        controllers = Controllers.of(once.column("controller_id"))
        groups = [tables[topic] for _, tables in by_controller_group(con, window, [StreamRead(topic)], controllers, 3)]
    finally:
        con.close()
    assert once.num_rows > 0 and stored == rows.num_rows + rows.num_rows // 3
    assert twice.equals(once)
    assert columns.num_rows == once.num_rows
    assert pa.Table.from_batches(columns.to_batches()).equals(once.select(columns.column_names))
    assert len(groups) == -(-len(controllers) // 3) > 1
    grouped = pa.concat_tables(groups)
    assert grouped.num_rows == once.num_rows
    # Each group in read order, so by controller (a stable sort) the rows match; dictionaries differ per group.
    assert grouped.sort_by("controller_id").to_pylist() == once.sort_by("controller_id").to_pylist()
