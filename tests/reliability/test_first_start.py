"""A race-free first start: loaders, Dagster and `leo-fleet sql` opening a lake nobody has created yet, at the same
moment, with the SQLite catalog and with a PostgreSQL catalog (a real server, `tests/postgres.py`).

Creating the lake is one catalog transaction that every writer attempts when it finds no lake; before the fix the
losers died (`database is locked` on SQLite, a unique violation in `pg_type` on PostgreSQL), and a reader of a
PostgreSQL catalog got a raw DuckLake error. `ingest.lake.connect` now serialises creation with an flock next to a
SQLite catalog, retries PostgreSQL's creation race, and raises LakeNotFoundError to readers of either catalog.
Dagster's `sre/views` asset, one catalog transaction, used to fail on SQLite when a loader created the raw tables at
the same moment (its COMMIT: "database is locked", hidden by its ROLLBACK's "no transaction is active"); it is now
retried like the loader's own commits.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest

from ingest import lake
from ingest.kafka.publish import publish_simulation
from ingest.settings import ENV_PREFIX, Settings
from pipelines.sql import install_views
from tests.ingest.kafka.helpers import NATURAL_KEYS, cli_env, duplicates, lake_count, simulation, stored_rows
from tests.reliability.first_start_worker import race_worker
from tests.sample_lake import REPO

pytestmark = pytest.mark.kafka

LOADERS = 3
READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 60.0  # a passing run takes about 20 s
RACE_ROUNDS = 3
READER_LAG_S = 0.2
RACE_WRITERS = 4
RACE_START_S = 0.3  # every worker has its task by then
STACKS_S = 0.5


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_lake(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The `settings` fixture's fresh topics and consumer group, with a lake not created yet on either catalog."""
    if request.param == "sqlite":
        return settings
    server = request.getfixturevalue("postgres")
    return replace(settings, lake_catalog=server.catalog(server.create_database()))


def _env(settings: Settings) -> dict[str, str]:
    env = {name: value for name, value in cli_env(settings).items() if name != f"{ENV_PREFIX}LAKE_CATALOG"}
    if settings.lake_catalog:
        env[f"{ENV_PREFIX}LAKE_CATALOG"] = settings.lake_catalog
    return env


@dataclass
class Finished:
    name: str
    returncode: int
    stdout: str
    stderr: str


def _start_together(settings: Settings, barrier: Path, commands: dict[str, list[str]]) -> dict[str, subprocess.Popen]:
    """Start every command as a worker; once all have imported what they need, let them go at the same moment."""
    barrier.mkdir()
    go = barrier / "go"
    processes = {}
    for name, args in commands.items():
        worker = [sys.executable, "-m", "tests.reliability.first_start_worker", str(barrier / name), str(go), *args]
        processes[name] = subprocess.Popen(
            worker, env=_env(settings), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all((barrier / name).exists() for name in commands):
        dead = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
        if dead or time.monotonic() > deadline:
            _finish(processes, timeout_s=0)
            raise AssertionError(f"workers not ready (exited: {dead})")
        time.sleep(0.05)
    go.touch()
    return processes


def _finish(processes: dict[str, subprocess.Popen], timeout_s: float) -> list[Finished]:
    """Wait for each process (all within `timeout_s` together); what is still running then prints its threads'
    stacks and is killed (-9)."""
    deadline = time.monotonic() + timeout_s
    finished = []
    for name, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # the worker prints every thread's stack to stderr
            time.sleep(STACKS_S)
            process.kill()
            stdout, stderr = process.communicate()
        finished.append(Finished(name, process.returncode, stdout, stderr))
    return finished


def test_loaders_dagster_and_sql_starting_together_on_a_fresh_lake_all_come_up(
    fresh_lake: Settings, tmp_path: Path
) -> None:
    # Publish first, through a lake of its own (the producer writes ground truth to a lake): the one under test
    # stays uncreated until the race.
    producer = replace(fresh_lake, lake_catalog=None).with_data_dir(tmp_path / "producer")
    produced = publish_simulation(producer, simulation(controllers=5, hours=1)).rows
    assert produced > 0
    assert not (fresh_lake.data_dir / "lake").exists()

    # Three loaders of one consumer group drain the topics and exit on their own; Dagster materializes sre/views
    # (a catalog transaction that may meet the loaders creating the raw tables); `leo-fleet sql` reads.
    loaders = {f"loader-{i}": ["cli", "ingest", "--until-idle", "--json"] for i in range(LOADERS)}
    others = {"dagster": ["dagster", str(fresh_lake.data_dir)], "sql": ["cli", "sql", "-c", "SELECT 41 + 1 AS up"]}
    processes = _start_together(fresh_lake, tmp_path / "barrier", {**loaders, **others})
    finished = _finish(processes, RUN_TIMEOUT_S)

    for run in finished:
        assert "Traceback" not in run.stderr, f"{run.name}:\n{run.stderr[-3000:]}"
        if run.name == "sql" and run.returncode == 2:
            # It came first: no lake yet is a one-line answer, not a failure.
            assert run.stderr.strip().count("\n") == 0 and "no lake at" in run.stderr, run.stderr
        else:
            # -9: still running after RUN_TIMEOUT_S; its stderr ends with every thread's stack.
            assert run.returncode == 0, f"{run.name} exited {run.returncode}:\n{run.stderr[-3000:]}"
    outputs = {run.name: run.stdout for run in finished}
    assert outputs["sql"] == "" or "42" in outputs["sql"]
    assert "leo_quantiles" in outputs["dagster"]  # the asset's metadata

    # Every produced row exactly once, whoever loaded it; the loaders' own counts add up to it too.
    assert stored_rows(fresh_lake) == produced
    assert duplicates(fresh_lake) == dict.fromkeys(NATURAL_KEYS, 0)
    final = [json.loads(outputs[name].splitlines()[-1]) for name in loaders]
    assert sum(status["rows_total"] for status in final) == produced
    assert all(status["state"] == "stopped" for status in final)
    macro = "SELECT count(*) FROM duckdb_functions() WHERE database_name = 'lake' AND function_name = 'leo_quantiles'"
    assert lake_count(fresh_lake, macro) == 1  # committed, not only reported


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_writers_and_a_reader_racing_to_create_the_lake(
    catalog: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The cheap core of the race, several rounds: writers open a fresh lake and create the raw tables while a
    reader opens it, all released at the same wall-clock instant; every writer comes up, the reader gets the lake or
    LakeNotFoundError (a FileNotFoundError, one line in `leo-fleet sql`), never another error."""
    context = multiprocessing.get_context("spawn")  # no DuckDB state inherited from this process
    results = context.Queue()
    tasks = [context.Queue() for _ in range(RACE_WRITERS + 1)]
    workers = [context.Process(target=race_worker, args=(queue, results)) for queue in tasks]
    for worker in workers:
        worker.start()
    try:
        assert [results.get(timeout=READY_TIMEOUT_S)[0] for _ in workers] == ["ready"] * len(workers)
        for round_ in range(RACE_ROUNDS):
            settings = Settings().with_data_dir(tmp_path / f"round-{round_}")
            if catalog == "postgres":
                server = request.getfixturevalue("postgres")
                settings = replace(settings, lake_catalog=server.catalog(server.create_database()))
            go_at = time.time() + RACE_START_S
            for i, queue in enumerate(tasks):
                reader = i == RACE_WRITERS
                # The reader starts a little later each round: first before the catalog exists, then mid-creation.
                queue.put((settings, reader, go_at + (READER_LAG_S * round_ if reader else 0.0)))
            outcomes = [results.get(timeout=RUN_TIMEOUT_S) for _ in workers]
            odd = [outcome for outcome, _ in outcomes if outcome not in ("ok", "no lake")]
            assert not odd, f"round {round_}: {odd}"
            assert sum(outcome == "ok" for outcome, _ in outcomes) >= RACE_WRITERS, f"round {round_}: {outcomes}"
    finally:
        for queue in tasks:
            queue.put(None)
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()


def test_a_reader_of_a_lake_nobody_created_gets_one_line_on_either_catalog(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sqlite = Settings().with_data_dir(tmp_path / "data")
    server = request.getfixturevalue("postgres")
    database = server.create_database()
    postgres = replace(sqlite, lake_catalog=server.catalog(database))
    for settings, where in ((sqlite, "catalog.sqlite"), (postgres, f"dbname={database}")):
        with pytest.raises(FileNotFoundError) as raised:
            lake.connect(settings, read_only=True)
        assert isinstance(raised.value, lake.LakeNotFoundError)
        message = str(raised.value)
        assert "\n" not in message and where in message and "no lake at" in message
        assert "user=" not in message  # the database, never the connection string (it may hold a password)
    assert not (tmp_path / "data").exists()  # a reader creates nothing
    # The SQLite lock file is private to the user.
    writer = lake.connect(sqlite)
    writer.close()
    lock = tmp_path / "data" / "lake" / "catalog.sqlite.lock"
    assert lock.exists() and lock.stat().st_mode & 0o777 == 0o600


class _CommitFails:
    """A lake connection whose first `failures` COMMITs fail as a SQLite catalog's does while another process
    commits: the transaction is rolled back and DuckLake raises a TransactionException."""

    def __init__(self, con: duckdb.DuckDBPyConnection, failures: int) -> None:
        self.con, self.failures = con, failures

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        if sql == "COMMIT" and self.failures:
            self.failures -= 1
            self.con.execute("ROLLBACK")
            raise duckdb.TransactionException("Failed to flush changes into DuckLake: database is locked")
        return self.con.execute(sql, *args)


def test_installing_the_sre_views_retries_a_failed_commit_and_reports_its_error(tmp_path: Path) -> None:
    con = lake.connect(Settings().with_data_dir(tmp_path / "data"))
    try:
        installed = install_views(_CommitFails(con, failures=2))  # type: ignore[arg-type]
        assert "leo_quantiles" in installed.macros
        macros = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = 'leo_quantiles'")
        assert macros.fetchone()[0] == 1
        # Given up: the COMMIT's error, not the ROLLBACK's "no transaction is active".
        with pytest.raises(duckdb.TransactionException, match="database is locked"):
            install_views(_CommitFails(con, failures=1), give_up_after_s=0.0)
    finally:
        con.close()
