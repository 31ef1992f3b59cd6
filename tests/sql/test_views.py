"""The sre views and the histogram macros live in the lake: a plain DuckDB session that only ATTACHes it sees and
runs them; re-installing is harmless; a view whose marts do not exist yet is skipped, not an error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingest import lake
from ingest.lake.raw_tables import ensure_tables
from ingest.settings import Settings
from pipelines.sql import VIEWS_FILE, install_views
from tests.sample_lake import Materialized, copy_lake
from tests.sql.helpers import plain_duckdb

DEFINED = re.findall(r"CREATE OR REPLACE (VIEW|MACRO) sre\.(\w+)", VIEWS_FILE.read_text())
# Event-rate anomalies are rare by construction (Bonferroni-bounded): a sample fleet may have none.
# Six hours cannot label the early warning's 24 h horizon: no model, no rows (tests/dagster/test_early_warning.py
# has a lake that can).
# The latency detector scores an hourly series from its ninth hour: six hours flag nothing, so no episode.
MAY_BE_EMPTY = {"anomalies", "early_warning", "latency_anomalies"}
REQUIRED = {"fleet_health", "slo_status", "slo_breaches", "link_events", "controller_resets", "anomalies"}


def test_views_file_defines_what_the_issue_asks_for() -> None:
    assert {name for kind, name in DEFINED if kind == "VIEW"} >= REQUIRED


def test_a_plain_duckdb_client_sees_every_view_and_macro(materialized: Materialized) -> None:
    con = plain_duckdb(materialized.data_dir)
    try:
        con.execute("USE warehouse")
        views = {
            name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'sre'").fetchall()
        }
        assert views == {name for kind, name in DEFINED if kind == "VIEW"}
        for name in views:
            rows = con.execute(f"SELECT * FROM sre.{name} LIMIT 5").fetchall()
            assert rows or name in MAY_BE_EMPTY, f"sre.{name} is empty on the sample lake"
        budget = con.execute("SELECT count(*) FROM sre.slo_budget(TIMESTAMPTZ '2026-01-05', TIMESTAMPTZ '2026-01-06')")
        assert budget.fetchone()[0] > 0
        quantiles = con.execute("FROM leo_quantiles('sre.latency_hourly', ['memory_tier', 'op'], [0.99])").fetchall()
        assert len(quantiles) == 4 and all(value > 0 for *_, value in quantiles)
    finally:
        con.close()


def test_reinstalling_is_idempotent(materialized: Materialized) -> None:
    definitions = "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'sre' ORDER BY view_name"
    with materialized.lake.connection() as con:
        before = con.execute(definitions).fetchall()
        first, second = install_views(con), install_views(con)
        after = con.execute(definitions).fetchall()
    assert first == second and first.skipped == {}
    assert after == before


def test_views_over_missing_marts_are_skipped(tmp_path: Path) -> None:
    con = lake.connect(Settings().with_data_dir(tmp_path / "data"))
    try:
        ensure_tables(con)  # the raw tables the loader creates, empty: no asset has run
        installed = install_views(con)
    finally:
        con.close()
    assert installed.views == ["burn_rate", "inventory", "pilot_jobs", "pilot_summary"]  # raw tables only
    assert installed.skipped["fleet_health"] == ["sre.health_history"]
    assert installed.skipped["slo_status"] == ["marts.slo_compliance"]
    assert "leo_quantiles" in installed.macros


@pytest.mark.parametrize("alias", ["lake", "fleet"])
def test_macros_resolve_under_any_alias_once_used(materialized: Materialized, alias: str) -> None:
    con = plain_duckdb(materialized.data_dir, alias)
    try:
        con.execute(f"USE {alias}")
        (n,) = con.execute("SELECT count(*) FROM leo_merge_histograms('marts.latency_rollups', ['op'])").fetchone()
    finally:
        con.close()
    assert n == 2


def test_a_job_stored_twice_is_one_pilot_job_the_first_stored(materialized: Materialized, tmp_path: Path) -> None:
    """A re-sent batch's jobs are in raw.jobs twice; sre.pilot_jobs keeps each job once, as first stored."""
    data_dir = copy_lake(materialized.data_dir, tmp_path / "data")
    con = lake.connect(Settings().with_data_dir(data_dir))
    try:
        (jobs,) = con.execute("SELECT count(*) FROM sre.pilot_jobs").fetchone()
        con.execute("INSERT INTO raw.jobs SELECT * REPLACE ('failed' AS outcome) FROM raw.jobs LIMIT 5")
        twice, views, failed = con.execute(
            "SELECT (SELECT count(*) - count(DISTINCT job_id) FROM raw.jobs), (SELECT count(*) FROM sre.pilot_jobs), "
            "(SELECT count(*) FROM sre.pilot_jobs WHERE outcome = 'failed')"
        ).fetchone()
        (failed_before,) = con.execute(
            "SELECT count(*) FROM raw.jobs WHERE outcome = 'failed' AND rowid < (SELECT max(rowid) - 4 FROM raw.jobs)"
        ).fetchone()
    finally:
        con.close()
    assert jobs > 5 and twice == 5
    assert views == jobs and failed == failed_before  # the copies (all 'failed') are not the rows kept
