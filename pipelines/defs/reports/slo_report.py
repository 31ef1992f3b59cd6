"""The SLO report as three partitioned assets: daily, weekly (ISO weeks) and monthly, each on its own schedule.

One asset per period rather than a period config: each keeps its own partition history in the UI, and a
backfill of "every week of January" is an ordinary partition range. The report itself (figures, charts, HTML,
Markdown and CSV under <data dir>/reports/slo/<label>/) lives in pipelines/reports, shared with
`leo-fleet report`. Every figure is a ratio of summed good and total events or a quantile of merged histograms.
"""

import dagster as dg

from pipelines.defs.reports.sql_views import VIEWS_KEY
from pipelines.lib.assets import SCHEDULES_DEFAULT
from pipelines.lib.marts import mart_key
from pipelines.lib.metadata import image, markdown_table
from pipelines.lib.partitions import DAILY, MONTH_END, SINGLE_RUN, WEEK_END, Window, partitions_start
from pipelines.lib.resources import LakeResource
from pipelines.reports import write_report
from pipelines.reports.serve import report_url

REPORT_HOUR_UTC = 6  # each schedule reports on the period just ended once its late telemetry has landed
MARTS_READ = (
    "slo_overview",
    "slo_compliance",
    "slo_breaches",
    "latency_rollups",
    "link_events",
    "resets",
    "health_scores",
)
# ISO weeks (Monday 00:00 UTC) and calendar months, from the week and month that contain the partitions start.
WEEKLY = dg.WeeklyPartitionsDefinition(
    start_date=partitions_start(), end_date=WEEK_END, day_offset=1, timezone="UTC", fmt="%Y-%m-%d"
)
MONTHLY = dg.MonthlyPartitionsDefinition(
    start_date=partitions_start()[:7], end_date=MONTH_END, timezone="UTC", fmt="%Y-%m"
)
PARTITIONS = {"day": DAILY, "week": WEEKLY, "month": MONTHLY}
_NAMES = {"day": "slo_report", "week": "slo_report_weekly", "month": "slo_report_monthly"}
_JOBS = {"day": "slo_report_daily", "week": "slo_report_weekly", "month": "slo_report_monthly"}


def _report_asset(period: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=_NAMES[period],
        key_prefix="reports",
        group_name="reports",
        owners=["team:fleet-sre"],
        kinds={"html", "markdown", "csv"},
        deps=[VIEWS_KEY, *(mart_key(name) for name in MARTS_READ)],
        partitions_def=partitions_def,
        backfill_policy=SINGLE_RUN,
        description=f"SLO report per {period} under `<data dir>/reports/slo/<{period}>/`, linked from each "
        "partition's `html` (served by `leo-fleet ui` on 127.0.0.1): report.html, first the "
        "SLO overview (budget remaining, alert state with firing since and resolved at, the groups burning each), "
        "the least healthy controllers with reasons, the link drops and the silent resets; then burn rates against "
        "their alert thresholds, budget burn-down, CXL against local-DRAM tails, worst controllers/hosts/racks, "
        "link recovery, health, anomalies; report.md, compliance.csv, slo_summary.csv, worst.csv, latency.csv and "
        "the charts as PNG.",
    )
    def report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        window = Window.of(context)
        keys = context.partition_keys
        with lake.connection(read_only=True) as con:
            reports = [
                write_report(con, lake.settings.reports_dir, period, Window.of_partition(partitions_def, key))
                for key in keys
            ]
        latest = reports[-1]
        # Each partition links to its own report, over http (`leo-fleet ui` serves them): a browser does not open a
        # file:// link from the UI's http page.
        for key, written in zip(keys, reports, strict=True):
            url = report_url(lake.settings, written.html)
            context.add_asset_metadata({"html": dg.MetadataValue.url(url)}, partition_key=key)
        return dg.MaterializeResult(
            metadata={
                "reports": len(reports),
                "window": str(window),
                "latest_report": dg.MetadataValue.path(str(latest.directory / "report.md")),
                "summary": markdown_table(latest.summary, limit=latest.summary.num_rows),
                "report": dg.MetadataValue.md("\n## ".join(latest.markdown.split("\n## ")[:2])),  # with the overview
                "burn_down": image("Error-budget burn-down", latest.charts["slo-burn.png"]),
            }
        )

    return report


slo_report, slo_report_weekly, slo_report_monthly = (_report_asset(p, d) for p, d in PARTITIONS.items())
_jobs = {
    period: dg.define_asset_job(
        _JOBS[period],
        selection=[asset.key],
        partitions_def=PARTITIONS[period],
        description=f"Writes the SLO report of each {period} selected (HTML, Markdown, CSV, charts).",
    )
    for period, asset in zip(PARTITIONS, (slo_report, slo_report_weekly, slo_report_monthly), strict=True)
}
_WHEN = {"day": "every day", "week": "on Mondays", "month": "on the 1st of each month"}
# The day before at 06:00, the week before on Mondays at 06:00, the month before on the 1st at 06:00.
slo_report_schedule, slo_report_weekly_schedule, slo_report_monthly_schedule = (
    dg.build_schedule_from_partitioned_job(
        _jobs[period],
        hour_of_day=REPORT_HOUR_UTC,
        **timing,
        default_status=SCHEDULES_DEFAULT,
        description=f"{_WHEN[period].capitalize()} at {REPORT_HOUR_UTC:02d}:00 UTC, the report of the {period} just "
        "ended (its late telemetry has landed by then).",
    )
    for period, timing in (("day", {}), ("week", {"day_of_week": 1}), ("month", {"day_of_month": 1}))
)
