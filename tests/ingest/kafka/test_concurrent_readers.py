"""Other processes read the lake while the loader writes: growing counts, never a lock error (architecture.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from ingest import lake
from ingest.kafka.publish import publish_simulation
from ingest.lake.raw_tables import ensure_tables
from tests.ingest.kafka.helpers import CLI, cli_env, lake_count, run_cli, simulation

pytestmark = pytest.mark.kafka

# A second process that counts rows every 0.2 s until told to stop; it prints each count or the error it got.
COUNTER = """
import sys, time
from pathlib import Path
from ingest import lake
from ingest.settings import Settings
stop = Path(sys.argv[1])
con = lake.connect(Settings.from_env(), read_only=True)
while not stop.exists():
    try:
        print(con.execute("SELECT count(*) FROM raw.latency").fetchone()[0], flush=True)
    except Exception as exc:
        print("ERROR", " ".join(str(exc).split()), flush=True)
    time.sleep(0.2)
"""


def test_other_processes_see_counts_grow_without_errors_while_the_loader_writes(settings, tmp_path):
    con = lake.connect(settings)
    ensure_tables(con)
    con.close()
    stop = tmp_path / "stop"
    counter = subprocess.Popen(
        [sys.executable, "-c", COUNTER, str(stop)], env=cli_env(settings), stdout=subprocess.PIPE, text=True
    )
    loader = subprocess.Popen(
        [*CLI, "ingest", "--follow", "--json"], env=cli_env(settings), stdout=subprocess.PIPE, text=True
    )
    for line in loader.stdout:  # start streaming once the loader has joined its group and owns partitions
        if json.loads(line)["lag_by_partition"]:
            break
    published = {}
    sim = simulation(controllers=200, hours=2)
    producer = threading.Thread(target=lambda: published.update(s=publish_simulation(settings, sim, speed=900)))
    producer.start()  # 2 simulated hours in 8 s of wall time
    queries = []
    try:
        while producer.is_alive() or lake_count(settings, "SELECT count(*) FROM raw.link") < sim_rows(sim, "link"):
            query = "SELECT count(*) AS n FROM raw.latency"
            queries.append(run_cli(settings, "sql", "-c", query, "--format", "csv"))
            time.sleep(0.5)
    finally:
        producer.join()
        loader.send_signal(signal.SIGTERM)
        final = json.loads(loader.communicate(timeout=60)[0].splitlines()[-1])
        stop.touch()
        output, _ = counter.communicate(timeout=30)

    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    counts = [int(line) for line in output.split() if line.isdigit()]
    assert errors == []
    assert loader.returncode == 0
    assert final["state"] == "stopped"
    assert final["rows_total"] == published["s"].rows
    assert counts == sorted(counts)
    assert len(set(counts)) >= 3  # saw the load in progress, not just before and after
    assert [q.returncode for q in queries] == [0] * len(queries), [q.stderr for q in queries]
    sql_counts = [int(q.stdout.splitlines()[1]) for q in queries]
    assert sql_counts == sorted(sql_counts)
    assert len(set(sql_counts)) >= 2


def sim_rows(sim, stream: str) -> int:
    return sum(getattr(chunk, stream).num_rows for chunk in sim.chunks())
