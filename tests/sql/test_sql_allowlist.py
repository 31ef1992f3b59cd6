"""`leo-fleet sql` reads only the lake: every DuckDB table function that is not on the allowlist is refused, so none
of them can read a SQLite, DuckDB, CSV, JSON or Parquet file outside the lake; names that are no table of the lake
(replacement scans of files), and macro arguments that would reach query_table, are refused too. Temp files go to a
private directory under the data dir. Empty input answers one line."""

from __future__ import annotations

import io
import secrets
import sqlite3
import threading
from pathlib import Path

import duckdb
import pytest

from ingest import lake
from ingest.settings import Settings
from pipelines.cli import main
from pipelines.cli.errors import CliError
from pipelines.cli.sql import execute, lock_down, temp_dir
from pipelines.cli.sql_guard import PURE_TABLE_FUNCTIONS
from tests.sample_lake import Materialized
from tests.sql.helpers import sre_session

# Named by the issue; each must be among the refused.
MUST_REFUSE = {"sqlite_scan", "sqlite_attach", "read_csv", "read_parquet", "parquet_scan", "parquet_metadata", "glob"}
MUST_REFUSE |= {"query", "query_table", "read_json", "read_text", "read_blob", "read_duckdb", "ducklake_list_files"}


@pytest.fixture
def outside(tmp_path: Path) -> tuple[str, list[Path]]:
    """A marker, and files outside the lake holding it: SQLite, DuckDB, CSV, JSON, Parquet, text."""
    marker = f"secret-{secrets.token_hex(8)}"
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("CREATE TABLE runs (secret TEXT)")
        db.execute("INSERT INTO runs VALUES (?)", [marker])
    db.close()
    (tmp_path / "runs.csv").write_text(f"secret\n{marker}\n")
    (tmp_path / "runs.json").write_text(f'[{{"secret": "{marker}"}}]')
    (tmp_path / "runs.txt").write_text(marker)
    with duckdb.connect(str(tmp_path / "runs.duckdb")) as writer:
        writer.execute("CREATE TABLE runs AS SELECT $1 AS secret", [marker])
        writer.execute(f"COPY runs TO '{tmp_path / 'runs.parquet'}'")
    return marker, sorted(tmp_path.iterdir())


def table_functions(con: duckdb.DuckDBPyConnection) -> tuple[list[str], set[str]]:
    """Every table function and table macro of a `leo-fleet sql` session (its extensions loaded as it loads them),
    and the lake's table macros among them; those outside the search path (`sre.slo_budget`) with their schema."""
    rows = con.execute("""
        SELECT DISTINCT database_name = 'lake',
               CASE WHEN schema_name IN ('main', 'pg_catalog') THEN '' ELSE schema_name || '.' END || function_name
        FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro')""").fetchall()
    return sorted(name for _, name in rows), {name for in_lake, name in rows if in_lake}


def test_every_table_function_off_the_allowlist_is_refused_and_none_reads_outside_the_lake(
    materialized: Materialized, outside: tuple[str, list[Path]]
) -> None:
    marker, files = outside
    con = sre_session(materialized.data_dir)
    off_the_list, ran = set(), set()
    try:
        names, macros = table_functions(con)
        calls = [(path, args) for path in files for args in (f"'{path}'", f"'{path}', 'runs'")]
        for name in names:
            for path, args in calls:
                try:
                    _, rows = execute(con, f"SELECT * FROM {name}({args})")
                except CliError as exc:
                    if "is not on the allowlist" in str(exc):
                        off_the_list.add(name)
                        if name not in macros:
                            break  # refused by its name alone (sql_guard): every other argument is refused alike
                    continue
                ran.add(name)
                assert marker not in repr(rows), f"{name}({args}) read {path.name}"
        for query in (  # also in a lateral join, a subquery, a CTE
            f"SELECT * FROM range(1) r, read_csv('{files[0]}')",
            f"SELECT (SELECT count(*) FROM sqlite_scan('{files[0]}', 'runs'))",
            f"WITH t AS (FROM read_parquet('{files[0]}')) FROM t",
        ):
            with pytest.raises(CliError, match="is not on the allowlist"):
                execute(con, query)
    finally:
        con.close()
    assert len(names) > 100
    assert off_the_list == set(names) - PURE_TABLE_FUNCTIONS - macros
    assert off_the_list >= MUST_REFUSE
    assert ran <= PURE_TABLE_FUNCTIONS


@pytest.mark.parametrize("function", ["sqlite_scan", "read_csv", "read_parquet", "glob"])
def test_the_cli_refuses_reading_outside_the_lake_in_one_line(
    materialized: Materialized,
    outside: tuple[str, list[Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    function: str,
) -> None:
    marker, files = outside
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(materialized.data_dir))
    for path in files:
        args = f"'{path}', 'runs'" if function == "sqlite_scan" else f"'{path}'"
        assert main(["sql", "-c", f"SELECT * FROM {function}({args})"]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and marker not in captured.err
        assert captured.err.splitlines() == [
            f"leo-fleet sql: error: refused: {function}() is not on the allowlist (the lake's macros, DuckDB's pure "
            "functions)"
        ]


def refused_references(files: dict[str, Path]) -> list[str]:
    """Ways to name a file or another database without a table function."""
    csv, sqlite = files["runs.csv"], files["runs.sqlite"]
    return [
        f"FROM '{csv}'",  # a replacement scan
        f'FROM "{csv}"',
        f"DESCRIBE '{csv}'",
        f"SUMMARIZE '{csv}'",
        f"FROM '{sqlite}'",
        f"SELECT (FROM '{csv}')",
        f'FROM (WITH "{csv}" AS (SELECT 1) FROM "{csv}"), "{csv}"',  # that CTE is out of scope of the 2nd reference
        f'WITH "{csv}" AS (FROM "{csv}") FROM "{csv}"',  # nor is a CTE in its own body, unless recursive
        "FROM __ducklake_metadata_lake.main.ducklake_snapshot",  # the catalog database, not the lake
        "FROM memory.main.nothing",
        f"FROM leo_quantiles('{csv}', [], [0.5])",  # macros hand their relation argument to query_table
        f'FROM leo_merge_histograms("{csv}", [])',
        f"FROM leo_quantiles(rel := '{csv}', keys := [], qs := [0.5])",
        f"FROM leo_histogram_long(['raw.latency', '{csv}'])",
        f"FROM leo_sli('raw.latency' || '{csv}', [], 1024)",
        f"FROM histogram('{csv}', secret)",  # DuckDB's own table macros are not on the allowlist
        f"PRAGMA table_info('{csv}')",
        f"EXPLAIN ANALYZE SELECT * FROM '{csv}'",
        f"SELECT 1; FROM sqlite_scan('{sqlite}', 'runs')",
    ]


def test_names_that_are_not_the_lake_are_refused(materialized: Materialized, outside: tuple[str, list[Path]]) -> None:
    marker, files = outside
    con = sre_session(materialized.data_dir)
    try:
        for query in refused_references({path.name: path for path in files}):
            with pytest.raises(CliError, match=r"^refused: ") as refusal:
                execute(con, query)
            assert marker not in str(refusal.value), query
    finally:
        con.close()


def test_a_query_too_deep_to_check_is_refused_in_one_line(materialized: Materialized) -> None:
    con = sre_session(materialized.data_dir)
    try:
        for query in (
            "SELECT count(*) FROM " + "(FROM " * 400 + "raw.latency" + ")" * 400,
            "SELECT " + "[" * 900 + "1" + "]" * 900,
        ):
            with pytest.raises(CliError, match=r"^refused: the query nests too deeply to be checked$"):
                execute(con, query)
    finally:
        con.close()


ALLOWED = [
    "SELECT count(*) FROM raw.latency",
    "SELECT count(*) FROM lake.raw.inventory",
    "WITH reads AS (FROM raw.latency WHERE op = 'read') FROM leo_quantiles(reads, ['op'], [0.5])",
    "FROM leo_quantiles('sre.latency_hourly', [], [0.5])",
    "FROM leo_quantiles(rel := marts.latency_rollups, keys := [], qs := [0.5])",
    "FROM sre.slo_budget(TIMESTAMPTZ '2026-01-05', TIMESTAMPTZ '2026-01-06')",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT sum(i) FROM n",
    "SELECT count(*) FROM generate_series(1, 3), unnest([1, 2]), range(2)",
    "SHOW TABLES FROM raw",
    "DESCRIBE raw.latency",
    "SUMMARIZE SELECT 1 AS x",
    "FROM information_schema.tables",
    "FROM duckdb_views() WHERE schema_name = 'sre'",
    "EXPLAIN SELECT count(*) FROM raw.link",
    "FROM raw.latency PIVOT (count(*) FOR op IN ('read', 'write'))",
]


@pytest.mark.parametrize("query", ALLOWED)
def test_reading_the_lake_runs(materialized: Materialized, query: str) -> None:
    con = sre_session(materialized.data_dir)
    try:
        headers, rows = execute(con, query)
    finally:
        con.close()
    assert headers and rows


def test_temp_files_go_to_a_private_directory_under_the_data_dir(
    materialized: Materialized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # DuckDB's default is ./.tmp of the working directory
    settings = Settings().with_data_dir(materialized.data_dir)
    con = lake.connect(settings, read_only=True)
    con.execute("SET memory_limit = '32MB'; SET threads = 1")  # so the sort below spills
    lock_down(con, settings)
    spilled: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            spilled.update(path.name for path in temp_dir(settings).iterdir())
            done.wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        big_sort = """SELECT count(*) FROM (
            SELECT i * 7919 % 10000019 AS x, repeat('ab', 20) FROM range(4000000) r(i) ORDER BY x)"""
        assert execute(con, big_sort)[1] == [(4_000_000,)]
        assert execute(con, "SELECT current_setting('temp_directory')")[1] == [(str(temp_dir(settings)),)]
    finally:
        done.set()
        watcher.join()
        con.close()
    assert spilled, "the sort did not spill: nothing to check"
    assert temp_dir(settings).is_relative_to(materialized.data_dir)
    assert temp_dir(settings).stat().st_mode & 0o777 == 0o700
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("query", ["", "   ", "-- x", ";", "/* nothing */ ;", ";\n;"])
def test_empty_input_answers_one_line(
    materialized: Materialized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, query: str
) -> None:
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(materialized.data_dir))
    monkeypatch.setattr("sys.stdin", io.StringIO(query))
    for argv in (["sql", "-c", query], ["sql"]):  # -c, and the same on standard input
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.splitlines() == [
            "leo-fleet sql: error: nothing to run: the input holds no SQL statement (only blanks, comments or ';')"
        ]
