"""docs/sql.md answers SRE questions in SQL: every query in it runs, returns the columns the doc promises and, where
the sample fleet guarantees it, rows; and every one of them also runs while the loader is writing to the lake."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import reset_topics
from ingest.settings import KafkaSettings, Settings, default_data_dir
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from pipelines.cli.sql import execute
from tests.ingest.kafka.helpers import CLI, cli_env
from tests.sample_lake import SAMPLE_SPAN, Materialized, copy_lake
from tests.sql.helpers import DOC, documented_queries, sre_session

QUERIES = documented_queries()
# Questions whose answer cannot be empty on any sample fleet (200 controllers x 6 h with accelerated faults): they
# read latency histograms, inventory, health, the fleet-wide SLO, resets and link drops (dozens in every sample),
# corrected errors (thousands). The others (paging now, budget overspent, ...) may legitimately be empty.
MUST_ANSWER = {1, 2, 3, 5, 6, 8, 10, 12, 13, 17}


def test_the_doc_answers_at_least_12_questions() -> None:
    assert len(QUERIES) >= 12
    assert [number for number, *_ in QUERIES] == list(range(1, len(QUERIES) + 1))
    assert {number for number, *_ in QUERIES} >= MUST_ANSWER


def test_the_doc_states_the_default_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert default_data_dir() == Path("/xdg/leo-fleet")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/sre")
    assert default_data_dir() == Path("/home/sre/.local/share/leo-fleet")
    doc = " ".join(DOC.read_text().split())
    assert "default `$XDG_DATA_HOME/leo-fleet` (`~/.local/share/leo-fleet` when `XDG_DATA_HOME` is unset" in doc


@pytest.mark.parametrize("number, question, sql, columns", QUERIES, ids=[f"q{q[0]}" for q in QUERIES])
def test_documented_query(materialized: Materialized, number: int, question: str, sql: str, columns: list[str]) -> None:
    con = sre_session(materialized.data_dir)
    try:
        headers, rows = execute(con, sql)
    finally:
        con.close()
    assert headers == columns
    if number in MUST_ANSWER:
        assert rows, question


@pytest.mark.kafka
def test_every_documented_query_runs_while_the_loader_writes(
    materialized: Materialized, kafka_broker: str, tmp_path: Path
) -> None:
    """The loader streams one more simulated hour (after the sample's span) into a copy of the materialized lake
    while the queries run pass after pass, each pass in a fresh read-only session."""
    data_dir = copy_lake(materialized.data_dir, tmp_path / "data")
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, consumer_group=f"docs-{uuid.uuid4().hex[:8]}")
    settings = Settings(kafka=kafka).with_data_dir(data_dir)
    reset_topics(settings)
    loader = subprocess.Popen(
        [*CLI, "ingest", "--follow", "--json"], env=cli_env(settings), stdout=subprocess.PIPE, text=True
    )
    for line in loader.stdout:  # stream once the loader has joined its group and owns partitions
        if json.loads(line)["lag_by_partition"]:
            break
    simulation = Simulation(SimConfig(controllers=30, hours=1, seed=11, start=SAMPLE_SPAN.end))
    producer = threading.Thread(target=publish_simulation, args=(settings, simulation), kwargs={"speed": 360})
    streamed = sum(chunk.latency.num_rows for chunk in simulation.chunks())
    passes: list[int] = []  # raw.latency rows seen at the start of each pass
    deadline = time.monotonic() + 180
    producer.start()  # one simulated hour in 10 s of wall time
    try:
        while producer.is_alive() or not passes or passes[-1] < passes[0] + streamed:
            assert time.monotonic() < deadline, f"the loader stored {passes[-1] - passes[0]} of {streamed} rows"
            con = sre_session(data_dir)
            try:
                passes.append(con.execute("SELECT count(*) FROM raw.latency").fetchone()[0])
                for number, _, sql, columns in QUERIES:
                    assert execute(con, sql)[0] == columns, number
            finally:
                con.close()
        time.sleep(1.0)
    finally:
        producer.join()
        loader.send_signal(signal.SIGTERM)
        final = json.loads(loader.communicate(timeout=60)[0].splitlines()[-1])
    assert loader.returncode == 0 and final["rows_total"] > 0
    assert passes == sorted(passes)
    assert len(set(passes[:-1])) >= 2  # passes ran while rows were landing, not only before and after
