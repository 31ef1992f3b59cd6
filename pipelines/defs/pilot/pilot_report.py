"""The pilot report as an asset: CXL-expanded hosts against local-DRAM baselines per workload class, rewritten
whenever the views, the latency rollups or the jobs change (docs/pilot.md). The report itself lives in
pipelines/reports/pilot.py, shared with `leo-fleet report --pilot`."""

import dagster as dg

from pipelines.defs.reports.sql_views import VIEWS_KEY
from pipelines.lib.marts import mart_key
from pipelines.lib.metadata import image, markdown_table
from pipelines.lib.pilot import load_pilot_spec
from pipelines.lib.resources import LakeResource
from pipelines.lib.slos import load_recovery_objectives
from pipelines.lib.telemetry import raw_key
from pipelines.reports.pilot import NoPilot, pilot_report
from pipelines.reports.serve import report_url


@dg.asset(
    key=dg.AssetKey(["reports", "pilot_report"]),
    group_name="reports",
    owners=["team:fleet-sre"],
    kinds={"html", "markdown", "csv"},
    deps=[VIEWS_KEY, raw_key("jobs"), mart_key("latency_rollups")],
    description="The CXL pilot report under `<data dir>/reports/pilot/` (report.html, report.md, CSV, charts): per "
    "workload class, CXL against baseline time to solution and throughput with bootstrap intervals (or 'no "
    "difference shown'), tail latency from merged histograms, capacity uplift, jobs lost to resets and link drops, "
    "detection and recovery against slos.yaml's recovery objectives, cost per job and per GB-hour under "
    "pilot.yaml's price scenarios with break-even and rollback.",
)
def pilot_report_asset(lake: LakeResource) -> dg.MaterializeResult:
    spec = load_pilot_spec()
    with lake.connection(read_only=True) as con:
        try:
            report = pilot_report(con, lake.settings.reports_dir, spec, load_recovery_objectives())
        except NoPilot as nothing:
            return dg.MaterializeResult(metadata={"pilot": str(nothing)})
    verdicts = report.figures.comparisons
    return dg.MaterializeResult(
        metadata={
            "html": dg.MetadataValue.url(report_url(lake.settings, report.html)),
            "report": dg.MetadataValue.path(str(report.directory / "report.md")),
            "verdicts": markdown_table(verdicts, ["workload", "metric", "cxl_over_baseline", "verdict"]),
            "ratios": image("CXL against baseline", report.charts["pilot-ratios.png"]),
        }
    )
