"""Lake commit conflicts between writers are retried by the loader's write path, counted, and lose or duplicate
nothing: on a SQLite catalog ("database is locked") and on a real PostgreSQL catalog (snapshot-id races)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import lake
from ingest.settings import Settings
from tests.lake_writers import TOPIC, commit_concurrently
from tests.postgres import PostgresServer

WRITERS = 3
COMMITS = 40


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_concurrent_commits_are_retried_and_counted(catalog: str, request: pytest.FixtureRequest, tmp_path: Path):
    settings = Settings().with_data_dir(tmp_path / "data")
    if catalog == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        settings = Settings(lake_catalog=server.catalog(server.create_database("conflicts"))).with_data_dir(
            tmp_path / "data"
        )
    totals = commit_concurrently(settings, WRITERS, COMMITS)

    assert sum(writer.retries for writer in totals) > 0, "writers committing together never conflicted"
    con = lake.connect(settings, read_only=True)
    try:
        ledger = con.execute(
            "SELECT kafka_partition, count(*), count(DISTINCT kafka_offset) FROM raw.ingest_messages "
            "WHERE kafka_topic = ? GROUP BY ALL ORDER BY ALL",
            [TOPIC],
        ).fetchall()
        status = dict(
            con.execute("SELECT loader_id, max(commit_retries_total) FROM raw.loader_status GROUP BY ALL").fetchall()
        )
    finally:
        con.close()
    assert ledger == [(index, COMMITS, COMMITS) for index in range(WRITERS)]  # every message once
    # Each status row carries the retries before its own commit: the last one lags by that commit's retries.
    for writer in totals:
        assert status[writer.loader_id] <= writer.retries
    assert sum(status.values()) > 0
