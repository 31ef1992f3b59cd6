"""`leo-fleet sql` output as people and programs read it: the table rounds, separates thousands, writes reasons as
words and times in one format, and fits 160 columns (the README's example included); CSV and JSON keep every
value at full precision."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

from ingest.lake import connect
from ingest.settings import ENV_PREFIX, Settings
from pipelines.cli.sql import DEFAULT_WIDTH, readable, table
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import REPO, Materialized


def readme_example() -> str:
    """The SQL of the README's `leo-fleet sql -c "SELECT ... FROM sre.fleet_health ..."` example, as documented."""
    (line,) = [
        line
        for line in (REPO / "README.md").read_text().splitlines()
        if 'leo-fleet sql -c "' in line and "FROM sre.fleet_health" in line
    ]
    words = shlex.split(line.split("leo-fleet", 1)[1])
    return words[words.index("-c") + 1]


def sql(materialized: Materialized, query: str, output_format: str = "table") -> str:
    """`leo-fleet sql` as a user runs it, its output on a pipe (no terminal: the default width)."""
    env = {name: value for name, value in os.environ.items() if name != "COLUMNS"}
    env[f"{ENV_PREFIX}DATA_DIR"] = str(materialized.data_dir)
    completed = subprocess.run(
        [*CLI, "sql", "-c", query, "--format", output_format], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_the_readme_example_fits_160_columns_with_reasons_in_words(materialized: Materialized) -> None:
    query = readme_example()
    out = sql(materialized, query)
    assert max(len(line) for line in out.splitlines()) <= 160
    assert "{'reason'" not in out and "[{" not in out
    con = connect(Settings().with_data_dir(materialized.data_dir), read_only=True)
    try:
        rows = con.execute(f"SELECT controller_id, health, reason, why FROM ({query})").fetchall()
    finally:
        con.close()
    assert rows and all(why for *_, why in rows)  # the least healthy controllers each lost points for a reason
    for controller_id, health, reason, why in rows:
        # Every controller with its health to four significant digits, its worst reason and that reason in words.
        assert re.search(rf"\b{controller_id}\b", out) and f"{health:.4g}" in out
        assert re.search(rf"\b{reason}\b", out) and why in out


def test_csv_and_json_keep_full_precision(materialized: Materialized) -> None:
    query = "SELECT controller_id, health, window_end FROM sre.fleet_health ORDER BY health, controller_id LIMIT 5"
    con = connect(Settings().with_data_dir(materialized.data_dir), read_only=True)
    try:
        expected = con.execute(query).fetchall()
    finally:
        con.close()
    rows = list(csv.DictReader(io.StringIO(sql(materialized, query, "csv"))))
    assert [(r["controller_id"], float(r["health"])) for r in rows] == [(c, h) for c, h, _ in expected]
    records = json.loads(sql(materialized, query, "json"))
    assert [(r["controller_id"], r["health"]) for r in records] == [(c, h) for c, h, _ in expected]
    assert [datetime.fromisoformat(r["window_end"]) for r in records] == [t for _, _, t in expected]


def test_cells_read_as_words_and_rounded_numbers() -> None:
    assert readable(811487239.0) == "811,487,239" and readable(1234567) == "1,234,567"
    assert readable(0.005678123) == "0.005678" and readable(24.768518) == "24.77" and readable(Decimal("2.50")) == "2.5"
    assert readable(datetime(2026, 1, 5, 6, tzinfo=UTC)) == readable(datetime(2026, 1, 5, 6)) == "2026-01-05 06:00:00"
    assert readable([{"reason": "error_rate", "points": 24.768518}, {"reason": "temperature", "points": 3.0}]) == (
        "error_rate 24.77, temperature 3"
    )
    assert readable(None) == "" and readable(True) == "yes"


def test_a_table_too_wide_shows_one_record_per_block() -> None:
    headers = [f"column_{i}" for i in range(30)]
    narrow = table(headers[:3], [(1, 2.5, "a")])
    assert narrow.splitlines()[0].split() == headers[:3]  # fits: an ordinary table
    wide = table(headers, [tuple(range(30)), tuple(range(30, 60))])
    lines = wide.splitlines()
    assert max(map(len, lines)) <= DEFAULT_WIDTH and lines[0].startswith("-[ record 1 ]")
    assert "column_29 | 59" in lines and len(lines) == 2 * (1 + 30)
