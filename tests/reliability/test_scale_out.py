"""Scale-out on real components (issue 18): three `ingest --follow` loaders in one consumer group write one lake
whose catalog is a PostgreSQL server and whose Parquet files live in an S3 object store (SeaweedFS), while data is
being published; loaders are SIGKILLed at random moments and restarted. Afterwards one `--until-idle` run drains
the rest, and the lake holds every produced row exactly once, its files in the bucket.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from ingest import lake
from ingest.settings import S3Settings, Settings
from tests.ingest.kafka.helpers import (
    CLI,
    assert_exactly,
    cli_env,
    create_tables,
    in_own_group,
    run_cli,
    simulation,
    start_publishing,
    stored_rows,
)
from tests.postgres import PostgresServer
from tests.s3 import S3Server

pytestmark = pytest.mark.kafka

LOADERS = 3
PUBLISH_S = 25.0
KILLS = 4


@pytest.fixture
def scale_settings(settings: Settings, postgres: PostgresServer, s3: S3Server) -> Settings:
    """The test's broker group and data dir, a fresh Postgres catalog database and its own prefix in the bucket."""
    object_store = S3Settings(
        endpoint=s3.endpoint,
        region="us-east-1",
        url_style="path",
        use_ssl=False,
        key_id=s3.access_key,
        secret=s3.secret_key,
    )
    return replace(
        settings,
        lake_catalog=postgres.catalog(postgres.create_database("scale")),
        lake_data_path=s3.data_path(f"scale-{uuid.uuid4().hex[:8]}"),
        s3=object_store,
    )


def test_three_loaders_killed_and_restarted_on_postgres_and_s3(scale_settings: Settings, tmp_path: Path) -> None:
    settings = scale_settings
    create_tables(settings)
    logs: list[Path] = []
    status_files: dict[int, Path] = {}

    def start_loader() -> subprocess.Popen:
        args = ["ingest", "--follow", "--json", "--flush-rows", "20000", "--flush-seconds", "0.5"]
        log, status = tmp_path / f"loader-{len(logs)}.log", tmp_path / f"loader-{len(logs)}.jsonl"
        logs.append(log)
        with open(log, "wb") as stderr, open(status, "wb") as stdout:
            loader = subprocess.Popen([*CLI, *args], env=cli_env(settings), stdout=stdout, stderr=stderr)
        status_files[loader.pid] = status
        return loader

    def wait_running(loader: subprocess.Popen) -> None:
        """Until its first status line: from then on SIGTERM stops it cleanly (before, Python's default kills it)."""
        deadline = time.monotonic() + 60
        while not status_files[loader.pid].stat().st_size:
            assert loader.poll() is None, f"a loader exited with {loader.returncode} (seed {seed}):\n{tails()}"
            assert time.monotonic() < deadline, f"a loader printed no status in 60 s (seed {seed}):\n{tails()}"
            time.sleep(0.2)

    def tails() -> str:
        return "\n".join(f"{log.name}: {log.read_text(errors='replace')[-1500:]}" for log in logs)

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    loaders = [start_loader() for _ in range(LOADERS)]
    producer, published = start_publishing(settings, simulation(controllers=200, hours=2, seed=31), PUBLISH_S)
    kills = 0
    try:
        deadline = time.monotonic() + 60
        while stored_rows(settings) == 0:
            assert time.monotonic() < deadline, f"no loader committed anything (seed {seed}):\n{tails()}"
            time.sleep(0.5)
        while producer.is_alive() or kills < KILLS:
            time.sleep(rng.uniform(1.0, 4.0))
            victim = rng.randrange(LOADERS)
            loaders[victim].send_signal(signal.SIGKILL)  # any moment: mid-batch, mid-commit, mid-rebalance
            loaders[victim].wait()
            kills += 1
            time.sleep(rng.uniform(0.0, 1.0))
            loaders[victim] = start_loader()
            if kills >= 3 * KILLS:
                break
        producer.join(timeout=120)
        assert not producer.is_alive(), "the publisher did not finish"
        for loader in loaders:
            wait_running(loader)
            loader.send_signal(signal.SIGTERM)  # leaves cleanly: drains, then gives its partitions up
        for loader in loaders:
            assert loader.wait(timeout=60) == 0, f"(seed {seed})\n{tails()}"
    finally:
        for loader in loaders:
            if loader.poll() is None:
                loader.kill()
                loader.wait()

    before_drain = stored_rows(settings)
    drain = in_own_group(settings)
    try:
        final = run_cli(drain, "ingest", "--until-idle", "--json", "--idle-seconds", "2", timeout=90)
    except subprocess.TimeoutExpired as exc:
        out, err = (
            text.decode(errors="replace") if isinstance(text, bytes) else text or ""
            for text in (exc.stdout, exc.stderr)
        )
        pytest.fail(f"the --until-idle run did not finish in 90 s (seed {seed}):\n{out[-3000:]}\n{err[-3000:]}")
    assert final.returncode == 0, final.stderr[-3000:]

    produced = published["summary"].rows
    after_drain = stored_rows(settings)
    print(f"seed {seed}: {kills} SIGKILLs, {len(logs)} loader starts; rows produced {produced}, stored {after_drain}")
    print(f"({before_drain} of them by the --follow loaders, the rest by the drain)")
    assert kills >= KILLS
    assert_exactly(settings, published["summary"].rows)
    assert_files_in_bucket(settings)
    assert_commit_counts_kept(settings)


def assert_commit_counts_kept(settings: Settings) -> None:
    """Every loader commit recorded its running counts of commit retries and conflicts (docs/scale-out.md)."""
    con = lake.connect(settings, read_only=True)
    try:
        loaders, missing, retries, conflicts = con.execute(
            """SELECT count(*), sum(missing), sum(retries), sum(conflicts) FROM (
                   SELECT count(*) FILTER (commit_retries_total IS NULL OR commit_conflicts_total IS NULL) AS missing,
                          max(commit_retries_total) AS retries, max(commit_conflicts_total) AS conflicts
                   FROM raw.loader_status GROUP BY loader_id)"""
        ).fetchone()
    finally:
        con.close()
    print(f"{loaders} loader runs; commit retries {retries}, conflicts {conflicts} (each run's last count, summed)")
    assert loaders > LOADERS and missing == 0


def assert_files_in_bucket(settings: Settings) -> None:
    """Every data file the catalog lists is an object under the test's s3:// prefix, and nothing went to local disk."""
    con = lake.connect(settings, read_only=True)
    try:
        listed = {
            row[0]
            for row in con.execute(
                f"SELECT file FROM glob('{settings.data_path}**/*.parquet')"  # the bucket itself, via S3 ListObjects
            ).fetchall()
        }
        referenced = set()
        for table in ("errors", "link", "latency", "inventory", "ingest_messages"):
            referenced |= {
                row[0]
                for row in con.execute(
                    "SELECT data_file FROM ducklake_list_files('lake', ?, schema => 'raw')", [table]
                ).fetchall()
            }
    finally:
        con.close()
    assert referenced, "the catalog lists no data files"
    assert all(path.startswith(settings.data_path) for path in referenced), sorted(referenced)[:5]
    assert referenced <= listed, sorted(referenced - listed)[:5]
    assert not list(settings.data_dir.glob("**/*.parquet")), "Parquet files written to the local data dir"
