"""A Dagster run worker killed in the middle of writing a mart partition (between the DELETE of the window's old
rows and the INSERT of the new ones, ingest/lake/fault_injection.py). A reader polling the lake throughout never sees
a partial window, and a rerun leaves exactly the rows of an uninterrupted run (pipelines/marts.replace_window:
one transaction per window)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from ingest.lake.fault_injection import ENV, EXIT_CODE, MART_STAGE
from pipelines.lib.instance import install_instance_config
from pipelines.lib.marts import MARTS
from pipelines.lib.resources import LakeResource
from tests.reliability.mart_worker import MART, materialize_mart
from tests.sample_lake import sample_lake

WINDOW_ROWS = f"SELECT count(*) FROM {MARTS}.{MART}"


def _mart(lake: LakeResource) -> pa.Table:
    with lake.connection(read_only=True) as con:
        return con.execute(f"SELECT * FROM {MARTS}.{MART} ORDER BY ALL").to_arrow_table()


class _Reader(threading.Thread):
    """Counts the mart's rows over and over while a run writes it: every count it ever saw."""

    def __init__(self, lake: LakeResource) -> None:
        super().__init__(name="mart-reader", daemon=True)
        self.lake, self.seen, self.polls, self.stopped = lake, set(), 0, threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.lake.connection(read_only=True) as con:
                tables = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
                self.seen.add(con.execute(WINDOW_ROWS).fetchone()[0] if MART in tables else 0)
            self.polls += 1


def _killed_run(data_dir: Path, home: Path) -> tuple[subprocess.CompletedProcess, _Reader]:
    """The worker in a subprocess that dies mid-write, watched by a polling reader."""
    reader = _Reader(LakeResource(data_dir=str(data_dir)))
    reader.start()
    worker = subprocess.run(
        [sys.executable, "-m", "tests.reliability.mart_worker", str(data_dir), str(home)],
        env={**os.environ, ENV: f"{MART_STAGE}:1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    reader.stopped.set()
    reader.join()
    return worker, reader


@pytest.mark.timeout(300)
def test_a_killed_mart_run_leaves_no_partial_window_and_a_rerun_repairs_it(tmp_path: Path) -> None:
    data_dir, home = tmp_path / "data", install_instance_config(tmp_path / "dagster")
    lake = sample_lake(data_dir)
    assert materialize_mart(str(data_dir), str(home))
    uninterrupted = _mart(lake)

    # Killed while rewriting the window: readers keep seeing the previous rows, all of them, never a partial window.
    worker, reader = _killed_run(data_dir, home)
    assert worker.returncode == EXIT_CODE, worker.stderr[-2000:]
    assert reader.polls > 0 and reader.seen == {uninterrupted.num_rows}
    assert _mart(lake).equals(uninterrupted)

    # The rerun succeeds (the dead worker's run is failed and its lake_write slot freed first) and writes the same rows.
    assert materialize_mart(str(data_dir), str(home))
    assert _mart(lake).equals(uninterrupted)
    runs = dg.DagsterInstance.from_config(str(home)).get_run_records()
    assert sorted(record.dagster_run.status.value for record in runs) == ["FAILURE", "SUCCESS", "SUCCESS"]
