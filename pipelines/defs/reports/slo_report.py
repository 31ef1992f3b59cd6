"""The daily SLO report: a Markdown summary, a CSV compliance table and one PNG chart per day, under the reports
directory, on a daily schedule (the model is DOP's scheduled health-report asset).

Every figure is a ratio of summed good and total events, or a quantile of merged histograms: a day's SLI is the
day's good events over its events, never a mean of hourly SLIs or percentiles.
"""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from matplotlib.axes import Axes

from models.histogram import merge_table, with_quantiles
from pipelines.marts import MARTS, mart_key, read_window
from pipelines.metadata import draw, image, markdown_table, png, time_axis
from pipelines.partitions import DAILY, DAY_FORMAT, SINGLE_RUN, Window
from pipelines.resources import LakeResource

NAME = "slo_report"
DAY = timedelta(days=1)
REPORT_HOUR_UTC = 6  # the schedule reports on the previous day once its late telemetry has landed
TAIL_COLUMNS = ("p50_ns", "p99_ns", "p999_ns")


def _compliance(con, day: Window) -> pa.Table:
    """Per SLO and group: the day's events, bad events, SLI, objective, and burn rate (1 = on budget)."""
    sql = f"""
        SELECT slo, group_key, any_value(objective) AS objective, sum(events)::BIGINT AS events,
               sum(bad_events)::BIGINT AS bad_events,
               CASE WHEN sum(events) > 0 THEN 1 - sum(bad_events) / sum(events) END AS sli,
               CASE WHEN sum(events) > 0 THEN (sum(bad_events) / sum(events)) / (1 - any_value(objective) / 100) END
                   AS burn_rate,
               count(*) FILTER (WHERE state IN ('page', 'ticket')) AS alerting_hours
        FROM {MARTS}.slo_compliance WHERE hour >= $start AND hour < $end
        GROUP BY ALL ORDER BY slo, sli NULLS FIRST"""
    rows = con.execute(sql, {"start": day.start, "end": day.end}).to_arrow_table()
    return rows.append_column("met", pc.greater_equal(rows["sli"], pc.divide(rows["objective"], 100.0)))


def _summary(con, day: Window) -> pa.Table:
    """Per SLO over all its groups: the day's SLI and burn rate, groups missing the objective, alert episodes."""
    sql = f"""
        WITH c AS (SELECT * FROM {MARTS}.slo_compliance WHERE hour >= $start AND hour < $end),
        groups AS (
            SELECT slo, group_key, sum(events) AS events, sum(bad_events) AS bad, any_value(objective) AS objective
            FROM c GROUP BY ALL),
        alerts AS (
            SELECT slo, count(*) FILTER (WHERE kind = 'page') AS pages,
                   count(*) FILTER (WHERE kind = 'ticket') AS tickets
            FROM {MARTS}.slo_breaches WHERE start > $start AND start <= $end GROUP BY ALL)
        SELECT g.slo, any_value(g.objective) AS objective, sum(g.events)::BIGINT AS events,
               sum(g.bad)::BIGINT AS bad_events,
               CASE WHEN sum(g.events) > 0 THEN 1 - sum(g.bad) / sum(g.events) END AS sli,
               CASE WHEN sum(g.events) > 0 THEN (sum(g.bad) / sum(g.events)) / (1 - any_value(g.objective) / 100) END
                   AS burn_rate,
               count(*) AS groups,
               count(*) FILTER (WHERE g.events > 0 AND 1 - g.bad / g.events < g.objective / 100) AS groups_missing,
               coalesce(any_value(a.pages), 0) AS pages, coalesce(any_value(a.tickets), 0) AS tickets
        FROM groups g LEFT JOIN alerts a USING (slo) GROUP BY g.slo ORDER BY g.slo"""
    return con.execute(sql, {"start": day.start, "end": day.end}).to_arrow_table()


def _hourly_burn(con, day: Window) -> pa.Table:
    sql = f"""
        SELECT slo, hour, (sum(bad_events) / sum(events)) / (1 - any_value(objective) / 100) AS burn_rate
        FROM {MARTS}.slo_compliance WHERE hour >= $start AND hour < $end AND events > 0
        GROUP BY ALL ORDER BY slo, hour"""
    return con.execute(sql, {"start": day.start, "end": day.end}).to_arrow_table()


def _tails(con, day: Window) -> pa.Table:
    """The day's fleet latency quantiles per tier and operation, from the merged hourly histograms."""
    rollups = read_window(con, f"{MARTS}.latency_rollups", "window_start", day)
    return with_quantiles(merge_table(rollups, ["memory_tier", "op"])).sort_by([("memory_tier", "ascending")])


def _chart(burn: pa.Table, day: Window) -> bytes:
    def plot(ax: Axes) -> None:
        for slo in pc.unique(burn["slo"]).to_pylist():
            rows = burn.filter(pc.equal(burn["slo"], slo))
            ax.plot(rows["hour"].to_pylist(), rows["burn_rate"].to_pylist(), marker=".", label=slo)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="on budget")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylabel("burn rate (fleet, per hour)")
        time_axis(ax)
        ax.legend(fontsize=7)

    return png(draw(f"SLO burn rate, {day.start:{DAY_FORMAT}} (1 = spending exactly the budget)", plot))


def _markdown(day: Window, summary: pa.Table, compliance: pa.Table, tails: pa.Table) -> str:
    missing = compliance.filter(pc.invert(pc.fill_null(compliance["met"], True)))
    missing = missing.sort_by([("burn_rate", "descending")])
    return "\n\n".join(
        [
            f"# SLO report {day.start:{DAY_FORMAT}}",
            f"Window {day}. SLI = good events / events; burn rate = error ratio / error budget (1 = on budget).",
            "## SLOs",
            markdown_table(summary, limit=summary.num_rows).value,
            "## Groups that missed their objective (worst first)",
            markdown_table(missing, ["slo", "group_key", "events", "bad_events", "sli", "burn_rate"], limit=20).value,
            "## Fleet latency from merged histograms",
            markdown_table(tails, ["memory_tier", "op", "count", *TAIL_COLUMNS, "max_ns"]).value,
            "![SLO burn rate](slo-burn.png)",
        ]
    )


REPORT_KEY = dg.AssetKey(["reports", NAME])


@dataclass(frozen=True)
class DayReport:
    directory: Path
    summary: pa.Table
    chart: bytes


def _write_report(con, reports_dir: Path, day: Window) -> DayReport:
    """report.md, compliance.csv and slo-burn.png for one day, in reports/slo/<day>/."""
    directory = reports_dir / "slo" / f"{day.start:{DAY_FORMAT}}"
    directory.mkdir(parents=True, exist_ok=True)
    summary, compliance = _summary(con, day), _compliance(con, day)
    burn_chart = _chart(_hourly_burn(con, day), day)
    (directory / "slo-burn.png").write_bytes(burn_chart)
    pa_csv.write_csv(compliance, directory / "compliance.csv")
    (directory / "report.md").write_text(_markdown(day, summary, compliance, _tails(con, day)) + "\n")
    return DayReport(directory, summary, burn_chart)


@dg.asset(
    key=REPORT_KEY,
    group_name="reports",
    owners=["team:fleet-sre"],
    kinds={"markdown", "csv"},
    deps=[mart_key("slo_compliance"), mart_key("slo_breaches"), mart_key("latency_rollups")],
    partitions_def=DAILY,
    backfill_policy=SINGLE_RUN,
    description="Daily SLO report under <data dir>/reports/slo/<day>/: report.md (per-SLO SLI, burn rate, groups "
    "missing their objective, alert episodes, fleet latency tails), compliance.csv (per SLO and group) and "
    "slo-burn.png (hourly burn rate per SLO).",
)
def slo_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    with lake.connection(read_only=True) as con:
        reports = [_write_report(con, lake.settings.reports_dir, day) for day in Window.of(context).chunks(DAY)]
    latest = reports[-1]
    return dg.MaterializeResult(
        metadata={
            "days": len(reports),
            "latest_report": dg.MetadataValue.path(str(latest.directory / "report.md")),
            "summary": markdown_table(latest.summary, limit=latest.summary.num_rows),
            "burn_rate": image("SLO burn rate", latest.chart),
        }
    )


slo_report_job = dg.define_asset_job("slo_report_daily", selection=[REPORT_KEY], partitions_def=DAILY)
# Each day at REPORT_HOUR_UTC, the report for the day before.
slo_report_schedule = dg.build_schedule_from_partitioned_job(slo_report_job, hour_of_day=REPORT_HOUR_UTC)
