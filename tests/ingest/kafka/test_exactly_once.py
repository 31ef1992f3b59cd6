"""SIGKILL the loader at random moments while telemetry streams in; after restarts the lake holds every produced
row exactly once (pipeline_patterns.md §2: rows and watermark in one transaction, seek on assignment)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

from ingest import contract, lake
from ingest.kafka.publish import publish_simulation
from ingest.lake.raw_tables import Batch, Position, Rows, ensure_tables, message_digest, write_batch
from ingest.settings import Settings
from tests.ingest.kafka.helpers import (
    CLI,
    NATURAL_KEYS,
    cli_env,
    duplicates,
    lake_count,
    run_loader,
    simulation,
    stored_rows,
)

pytestmark = pytest.mark.kafka


def _load_with_kills(settings, controllers: int, hours: float, stream_s: float, kills: int, seed: int) -> dict:
    """Stream a simulation live over about `stream_s` seconds while a loader process is killed `kills` times at
    random moments (each after it committed something), then finish with a clean run."""
    rng = random.Random(seed)
    sim = simulation(controllers=controllers, hours=hours, seed=seed)
    speed = hours * 3600 / stream_s
    published = {}
    producer = threading.Thread(target=lambda: published.update(summary=publish_simulation(settings, sim, speed=speed)))
    producer.start()
    killed_at = []
    for _ in range(kills):
        loader = subprocess.Popen(
            [*CLI, "ingest", "--follow", "--json", "--flush-rows", "20000", "--flush-seconds", "0.5"],
            env=cli_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        _wait_until_committing(loader)
        time.sleep(rng.uniform(0.0, 1.5))
        loader.send_signal(signal.SIGKILL)
        loader.wait()
        killed_at.append(stored_rows(settings))
    producer.join()
    final = run_loader(settings, idle_s=2.0)
    return {"produced": published["summary"].rows, "killed_at": killed_at, "final": final}


def _wait_until_committing(loader: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Kill only once this process has committed at least one batch, so every kill lands mid-stream."""
    deadline = time.monotonic() + timeout_s
    for line in loader.stdout:
        if json.loads(line)["rows_total"] > 0 or time.monotonic() > deadline:
            return


def _assert_exactly_once(settings, outcome: dict) -> None:
    assert len(outcome["killed_at"]) > 0
    assert stored_rows(settings) == outcome["produced"]
    assert duplicates(settings) == dict.fromkeys(NATURAL_KEYS, 0)


def test_killed_loaders_leave_exactly_the_produced_rows(settings):
    outcome = _load_with_kills(settings, controllers=300, hours=2, stream_s=40, kills=3, seed=21)
    _assert_exactly_once(settings, outcome)
    # Every loader was killed after committing something of its own: each kill hit a different point.
    assert outcome["killed_at"] == sorted(set(outcome["killed_at"]))


@pytest.mark.slow
def test_ten_kills_during_a_five_million_row_ingest(settings):
    outcome = _load_with_kills(settings, controllers=4000, hours=6.5, stream_s=150, kills=10, seed=5)
    assert outcome["produced"] >= 5_000_000
    _assert_exactly_once(settings, outcome)
    print(
        f"\nproduced {outcome['produced']:,} rows, stored {stored_rows(settings):,}, "
        f"duplicates {duplicates(settings)}; "
        f"rows stored at each kill {outcome['killed_at']}; final run {outcome['final']['rows_total']:,} rows, "
        f"{outcome['final']['replayed_messages_skipped']} replayed messages skipped"
    )


def test_a_replayed_batch_is_filtered_by_the_watermark(tmp_path):
    """The replay filter on its own: the same messages written twice are stored once."""
    settings = Settings().with_data_dir(tmp_path)
    con = lake.connect(settings)
    ensure_tables(con)
    inventory = simulation(controllers=3, hours=1).inventory
    position = Position(contract.TOPIC_INVENTORY, 0, 41)
    batch = Batch(rows=[Rows("inventory", inventory, position)], positions=[position])

    first = write_batch(con, batch, datetime.now(UTC))
    again = write_batch(con, batch, datetime.now(UTC))
    con.close()

    assert (first.rows, first.skipped_messages) == (3, 0)
    assert (again.rows, again.skipped_messages) == (0, 1)
    assert lake_count(settings, "SELECT count(*) FROM raw.inventory") == 3
    assert lake_count(settings, "SELECT max(last_offset) FROM raw.ingest_offsets") == 41


def test_the_ledger_stores_no_message_twice_whatever_the_watermark_says(tmp_path):
    """The second line of defence on its own: the same messages under another topic id (a loader that rewound on a
    wrong guess, or fetched a recreated topic under its stale id) are skipped and counted; a message at the same
    offset with other bytes is new and stored."""
    settings = Settings().with_data_dir(tmp_path)
    con = lake.connect(settings)
    ensure_tables(con)
    inventory = simulation(controllers=3, hours=1).inventory
    other = simulation(controllers=2, hours=1, seed=8).inventory

    def batch(table, topic_id: str, value: bytes) -> Batch:
        position = Position(contract.TOPIC_INVENTORY, 0, 5, topic_id, message_digest(value))
        return Batch(rows=[Rows("inventory", table, position)], positions=[position])

    first = write_batch(con, batch(inventory, "id-1", b"message"), datetime.now(UTC))
    same_bytes = write_batch(con, batch(inventory, "id-2", b"message"), datetime.now(UTC))
    new_bytes = write_batch(con, batch(other, "id-3", b"another message"), datetime.now(UTC))
    con.close()

    assert (first.rows, first.duplicates, first.replayed) == (3, 0, 0)
    assert (same_bytes.rows, same_bytes.duplicates, same_bytes.replayed) == (0, 1, 0)
    assert (new_bytes.rows, new_bytes.duplicates) == (2, 0)
    assert lake_count(settings, "SELECT count(*) FROM raw.inventory") == 5
    assert lake_count(settings, "SELECT count(*) FROM raw.ingest_messages") == 2
