"""The SLO report: written by the daily, weekly and monthly assets, regenerated identically by `leo-fleet report`,
and agreeing with the SQL views and the Python models on burn rate, budget remaining and tail latency."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest

from ingest import lake
from ingest.settings import Settings
from models.histogram import merge_table, with_quantiles
from models.slo.burn import evaluate
from pipelines.cli import main
from pipelines.lib import slos as spec
from pipelines.lib.marts import read_window
from pipelines.lib.partitions import Window
from pipelines.reports import period_label, period_window
from pipelines.reports.render import SECTIONS
from tests.sample_lake import SAMPLE_SPAN, Materialized
from tests.sql.helpers import plain_duckdb

DAY = period_window("day", SAMPLE_SPAN.start.date())
LABELS = {"day": "2026-01-05", "week": "2026-W02", "month": "2026-01"}
REL = 1e-9


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def report_dir(materialized: Materialized, label: str) -> Path:
    return materialized.data_dir / "reports" / "slo" / label


def test_periods() -> None:
    assert period_window("week", date(2026, 1, 8)) == Window(
        datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
    )
    assert period_window("month", date(2026, 12, 31)) == Window(
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    assert {p: period_label(p, period_window(p, date(2026, 1, 5))) for p in LABELS} == LABELS


@pytest.mark.parametrize("period", list(LABELS))
def test_each_period_asset_wrote_its_report(materialized: Materialized, period: str) -> None:
    directory = report_dir(materialized, LABELS[period])
    markdown = (directory / "report.md").read_text()
    page = (directory / "report.html").read_text()
    assert markdown.startswith(f"# SLO report {LABELS[period]}\n")
    for section in SECTIONS:
        assert f"## {section.heading}" in markdown and f"<h2>{section.heading}</h2>" in page
        assert (directory / section.chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    slos = {slo.name for slo in spec.load()}
    assert {row["slo"] for row in read_csv(directory / "slo_summary.csv")} == slos
    assert {row["level"] for row in read_csv(directory / "worst.csv")} == {"controller", "host", "rack"}


def test_metadata_points_at_the_report(materialized: Materialized) -> None:
    event = materialized.instance.get_latest_materialization_event(dg.AssetKey(["reports", "slo_report"]))
    metadata = event.asset_materialization.metadata
    # An http link on the reports server `leo-fleet ui` starts (a browser will not open file:// from the UI).
    assert (
        metadata["html"].value == f"http://127.0.0.1:{Settings.from_env().reports_port}/slo/{LABELS['day']}/report.html"
    )
    assert metadata["summary"].value.startswith("| slo")
    assert "data:image/png;base64," in metadata["burn_down"].value


def test_report_sql_and_models_agree_on_burn_rate_and_budget(materialized: Materialized) -> None:
    report = {
        (r["slo"], r["group_key"]): r for r in read_csv(report_dir(materialized, LABELS["day"]) / "compliance.csv")
    }
    con = plain_duckdb(materialized.data_dir)
    try:
        con.execute("USE warehouse")
        sql = con.execute("FROM sre.slo_budget($start, $end)", {"start": DAY.start, "end": DAY.end}).fetchall()
        columns = [c[0] for c in con.description]
    finally:
        con.close()
    views = {(row["slo"], row["group_key"]): row for row in (dict(zip(columns, r, strict=True)) for r in sql)}
    with materialized.lake.connection(read_only=True) as lake_con:
        series = read_window(lake_con, "marts.slo_sli", "ts", DAY)
    compared = 0
    for slo in spec.load():
        mine = spec.series_for(series.filter(pc.equal(series["slo"], slo.name)), slo)
        status = spec.keyed(evaluate(mine, slo, spec.STEP_S, until=DAY.end).status, slo)
        for model in status.to_pylist():
            key = (slo.name, model["group_key"])
            if not model["events"]:
                continue
            assert int(report[key]["events"]) == views[key]["events"] == model["events"], key
            assert int(report[key]["bad_events"]) == views[key]["bad_events"] == model["bad_events"], key
            burn = 1 - model["budget_remaining"]
            assert float(report[key]["burn_rate"]) == pytest.approx(burn, rel=REL, abs=1e-12), key
            assert views[key]["burn_rate"] == pytest.approx(burn, rel=REL, abs=1e-12), key
            assert float(report[key]["budget_remaining"]) == pytest.approx(model["budget_remaining"], rel=REL), key
            assert views[key]["budget_remaining"] == pytest.approx(model["budget_remaining"], rel=REL), key
            compared += 1
    assert compared == sum(1 for row in report.values() if int(row["events"]) > 0)
    assert compared > 200  # every controller of the per-controller SLO, plus racks and the fleet


def test_report_sql_and_models_agree_on_tail_latency(materialized: Materialized) -> None:
    """Report: hourly rollups merged by models.histogram; SQL: leo_quantiles over the view; Python: the raw
    one-minute histograms of the sample merged directly. Merging is associative, so all three must agree."""
    report = {(r["memory_tier"], r["op"]): r for r in read_csv(report_dir(materialized, LABELS["day"]) / "latency.csv")}
    con = plain_duckdb(materialized.data_dir)
    try:
        con.execute("USE warehouse")
        rows = con.execute(
            """WITH day AS (FROM sre.latency_hourly WHERE window_start >= $start AND window_start < $end)
               FROM leo_quantiles(day, ['memory_tier', 'op'], [0.99, 0.999])""",
            {"start": DAY.start, "end": DAY.end},
        ).fetchall()
    finally:
        con.close()
    sql = {(tier, op, q): value for tier, op, _, q, value in rows}
    with materialized.lake.connection(read_only=True) as lake_con:
        raw = read_window(lake_con, "raw.latency", "window_start", SAMPLE_SPAN)  # the span the marts were built on
    models = with_quantiles(merge_table(raw, ["memory_tier", "op"]), (0.99, 0.999)).to_pylist()
    assert len(models) == len(report) == 4
    for model in models:
        key = (model["memory_tier"], model["op"])
        for column, q in (("p99_ns", 0.99), ("p999_ns", 0.999)):
            assert float(report[key][column]) == pytest.approx(model[column], rel=REL), (key, q)
            assert sql[(*key, q)] == pytest.approx(model[column], rel=REL), (key, q)
        assert int(report[key]["count"]) == model["count"]


def test_the_cli_regenerates_the_scheduled_report(
    materialized: Materialized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    directory = report_dir(materialized, LABELS["day"])
    scheduled = {name: (directory / name).read_text() for name in ("compliance.csv", "latency.csv", "worst.csv")}
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(materialized.data_dir))
    assert main(["report", "--date", "2026-01-05"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(directory / "report.html"), str(directory / "report.md")]
    assert {name: (directory / name).read_text() for name in scheduled} == scheduled


@pytest.mark.parametrize(
    "args, message",
    [
        (["--date", "2026-02-30"], "argument --date: must be a date like 2026-01-05, got '2026-02-30'"),
        (["--date", "2026-01-05", "--period", "year"], "--period must be one of day, week, month, got 'year'"),
        (["--date", "2026-01-05"], "no lake at"),
    ],
)
def test_bad_arguments_fail_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(tmp_path / "nothing here"))
    assert exit_code(["report", *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("leo-fleet report: error: ") and message in line


def exit_code(argv: list[str]) -> int:
    """main's return value, or the status of the exit the argument parser takes on a bad argument."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_a_lake_without_views_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    lake.connect(Settings().with_data_dir(tmp_path)).close()  # an empty lake: nothing loaded, nothing materialized
    monkeypatch.setenv("LEO_FLEET_DATA_DIR", str(tmp_path))
    assert main(["report", "--date", "2026-01-05"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "no sre views yet" in line
