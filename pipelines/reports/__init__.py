"""The SLO report for a day, an ISO week or a month: one implementation used by the Dagster assets
(pipelines/defs/reports) and by `leo-fleet report`, so a regenerated past report is the scheduled one."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.lib.partitions import Window
from pipelines.reports.figures import MissingViews, collect, missing_data
from pipelines.reports.periods import PERIODS, period_label, period_window
from pipelines.reports.render import Report, write

__all__ = ["PERIODS", "MissingViews", "Report", "missing_data", "period_label", "period_window", "write_report"]


def report_directory(reports_dir: Path, period: str, window: Window) -> Path:
    return reports_dir / "slo" / period_label(period, window)


def write_report(con: duckdb.DuckDBPyConnection, reports_dir: Path, period: str, window: Window) -> Report:
    """Read every figure for `window` from the lake and write the report under reports/slo/<label>/."""
    title = f"SLO report {period_label(period, window)}"
    return write(report_directory(reports_dir, period, window), title, collect(con, window))
