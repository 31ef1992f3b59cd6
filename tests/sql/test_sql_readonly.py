"""`leo-fleet sql` cannot write: every statement that is not a read is refused before it runs, and the session
itself (lake attached READ_ONLY, no file access outside the lake, configuration locked) refuses it again if the
first guard were bypassed. Reads of the lake's Parquet files still work under those settings."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.cli.errors import CliError
from pipelines.cli.sql import execute
from tests.sample_lake import Materialized
from tests.sql.helpers import sre_session

COUNTS = """SELECT (SELECT count(*) FROM raw.inventory), (SELECT count(*) FROM raw.latency),
    (SELECT count(*) FROM sre.fleet_health)"""


def refused_statements(data_path: str, out: Path) -> list[str]:
    return [
        f"COPY (SELECT 1) TO '{out}'",
        f"COPY (SELECT * FROM raw.inventory) TO '{data_path}smuggled.csv'",  # inside the allowed directory
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
        f"EXPORT DATABASE '{out.parent / 'export'}'",
        f"ATTACH '{out.parent / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE raw.evil (i INTEGER)",
        "CREATE TEMP TABLE scratch AS SELECT 1",
        "CREATE OR REPLACE VIEW sre.fleet_health AS SELECT 1",
        "CREATE MACRO evil(x) AS x",
        "INSERT INTO raw.inventory SELECT * FROM raw.inventory LIMIT 1",
        "UPDATE raw.inventory SET rack = 'nowhere'",
        "DELETE FROM raw.inventory",
        "DROP VIEW sre.fleet_health",
        "SELECT 1; DELETE FROM raw.inventory",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET threads = 1",
        "USE memory",
        "DETACH lake",
        "CALL ducklake_expire_snapshots('lake', older_than => now())",
        "CHECKPOINT",
        "FROM ducklake_cleanup_old_files('lake', cleanup_all => true)",
        "SELECT * FROM ducklake_merge_adjacent_files('lake')",
        "FROM query('SELECT 1')",
    ]


def test_every_write_is_refused_and_nothing_changes(materialized: Materialized, tmp_path: Path) -> None:
    con = sre_session(materialized.data_dir)
    data_path = materialized.lake.settings.data_path
    try:
        before = con.execute(COUNTS).fetchone()
        for statement in refused_statements(data_path, tmp_path / "out.csv"):
            with pytest.raises(CliError, match="refused"):
                execute(con, statement)
        assert con.execute(COUNTS).fetchone() == before
        assert execute(con, "SELECT count(*) AS n FROM raw.latency")[1][0][0] > 0  # Parquet reads still work
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []
    assert not Path(data_path, "smuggled.csv").exists()


@pytest.mark.parametrize(
    "statement, error",
    [
        ("COPY (SELECT 1) TO '{tmp}/out.csv'", duckdb.PermissionException),
        ("SELECT * FROM read_csv('/etc/passwd')", duckdb.PermissionException),
        ("ATTACH '{tmp}/other.duckdb' AS other", duckdb.PermissionException),
        ("INSTALL httpfs", duckdb.PermissionException),
        ("SET enable_external_access = true", duckdb.InvalidInputException),
        ("SET allowed_directories = ['/']", duckdb.InvalidInputException),
        ("INSERT INTO raw.inventory SELECT * FROM raw.inventory LIMIT 1", duckdb.InvalidInputException),
        ("CREATE TABLE raw.evil (i INTEGER)", duckdb.InvalidInputException),
    ],
)
def test_the_session_refuses_writes_even_without_the_statement_check(
    materialized: Materialized, tmp_path: Path, statement: str, error: type[Exception]
) -> None:
    con = sre_session(materialized.data_dir)
    try:
        with pytest.raises(error):
            con.execute(statement.format(tmp=tmp_path))
        assert con.execute("SELECT count(*) FROM raw.link").fetchone()[0] > 0
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_in_one_line(
    materialized: Materialized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(materialized.data_dir))
    assert main(["sql", "-c", "DELETE FROM raw.inventory"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "leo-fleet sql: error: read-only: DELETE statements are refused (only SELECT and EXPLAIN SELECT run here)"
    ]
    assert main(["sql", "-c", "SELECT count(*) AS controllers FROM sre.fleet_health", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "controllers" and int(lines[1]) > 0
