"""Lake commit conflicts between writers are retried by the loader's write path, counted, and lose or duplicate
nothing: on a SQLite catalog ("database is locked") and on a real PostgreSQL catalog (snapshot-id races, retried by
DuckLake in the catalog; the same partition stored by two writers at once, run again whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import lake
from ingest.settings import Settings
from tests.lake_writers import TOPIC, commit_concurrently
from tests.postgres import PostgresServer

WRITERS = 3
COMMITS = 40


def _settings(catalog: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if catalog == "sqlite":
        return Settings().with_data_dir(tmp_path / "data")
    server: PostgresServer = request.getfixturevalue("postgres")
    return Settings(lake_catalog=server.catalog(server.create_database("conflicts"))).with_data_dir(tmp_path / "data")


def _ledger_and_status(settings: Settings) -> tuple[list[tuple], dict[str, tuple[int, int]]]:
    """Messages stored per partition (rows, distinct offsets) and each writer's last retry and conflict totals."""
    con = lake.connect(settings, read_only=True)
    try:
        ledger = con.execute(
            "SELECT kafka_partition, count(*), count(DISTINCT kafka_offset) FROM raw.ingest_messages "
            "WHERE kafka_topic = ? GROUP BY ALL ORDER BY ALL",
            [TOPIC],
        ).fetchall()
        rows = con.execute(
            "SELECT loader_id, max(commit_retries_total), max(commit_conflicts_total) FROM raw.loader_status "
            "GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    return ledger, {loader_id: (retries, conflicts) for loader_id, retries, conflicts in rows}


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_concurrent_commits_are_retried_and_counted(catalog: str, request: pytest.FixtureRequest, tmp_path: Path):
    settings = _settings(catalog, request, tmp_path)
    totals = commit_concurrently(settings, WRITERS, COMMITS)

    assert sum(writer.retries for writer in totals) > 0, "writers committing together never conflicted"
    if catalog == "postgres":  # other partitions: DuckLake retries in the catalog, nothing is written twice
        assert sum(writer.conflicts for writer in totals) == 0
    ledger, status = _ledger_and_status(settings)
    assert ledger == [(index, COMMITS, COMMITS) for index in range(WRITERS)]  # every message once
    # Each status row carries the totals before its own commit: the last one lags by that commit's own.
    for writer in totals:
        retries, conflicts = status[writer.loader_id]
        assert retries <= writer.retries and conflicts <= writer.conflicts
    assert sum(retries for retries, _ in status.values()) > 0


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_writers_storing_the_same_partition_at_once_store_each_message_once(
    catalog: str, request: pytest.FixtureRequest, tmp_path: Path
):
    """A loader the group has dropped may still commit the messages the partition's new owner commits: the
    partition's fence makes one of the two transactions conflict and run again, filters included."""
    settings = _settings(catalog, request, tmp_path)
    totals = commit_concurrently(settings, WRITERS, COMMITS, same_messages=True)

    ledger, _ = _ledger_and_status(settings)
    assert ledger == [(0, COMMITS, COMMITS)]  # every message once, though each writer committed every one
    assert sum(writer.conflicts for writer in totals) > 0, "writers on one partition never conflicted"
