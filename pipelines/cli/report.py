"""`leo-fleet report --date D [--period day|week|month]`: regenerate any past SLO report from the lake;
`leo-fleet report --pilot`: the CXL pilot report over every pilot job in the lake (docs/pilot.md).

The same code as the scheduled Dagster assets (pipelines/reports), read-only against the lake, so a regenerated
report matches the one the schedule wrote for that period (given the same marts).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from ingest.settings import EARLIEST_DAY, Settings
from pipelines.cli.errors import CliError

if TYPE_CHECKING:
    import duckdb

    from pipelines.reports import Report
    from pipelines.reports.pilot import PilotReport


def _day(text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2026-01-05, got {text!r}") from None
    if day < EARLIEST_DAY:
        raise argparse.ArgumentTypeError(f"must be on or after {EARLIEST_DAY} (the earliest telemetry), got {text!r}")
    return day


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the SLO report (HTML, Markdown, CSV) for a past day, week or month",
        description=(
            "Regenerate the SLO report of the day, ISO week or month that contains --date from the lake's marts, "
            "into <data dir>/reports/slo/<label>/ (label 2026-01-05, 2026-W02 or 2026-01)."
        ),
    )
    parser.add_argument(
        "--date", type=_day, metavar="YYYY-MM-DD", help="a day in the period (required without --pilot)"
    )
    parser.add_argument("--period", default="day", help="day, week (ISO, Monday to Monday) or month (default: day)")
    parser.add_argument(
        "--pilot", action="store_true", help="write the CXL pilot report instead, into <data dir>/reports/pilot/"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.reports import PERIODS, MissingViews, missing_data, period_label, period_window, write_report

    if args.pilot:
        return _written(_pilot)
    if args.date is None:
        raise CliError("--date is required (or --pilot for the CXL pilot report)")
    if args.period not in PERIODS:
        raise CliError(f"--period must be one of {', '.join(PERIODS)}, got {args.period!r}")
    try:
        window = period_window(args.period, args.date)
    except OverflowError:
        raise CliError(f"--date {args.date}: the {args.period} that contains it ends after 9999-12-31") from None

    def slo_report(con: duckdb.DuckDBPyConnection, settings: Settings) -> Report:
        try:
            reason = missing_data(con, window)
            if reason:
                raise CliError(f"no data for {period_label(args.period, window)} ({window}): {reason}")
            return write_report(con, settings.reports_dir, args.period, window)
        except MissingViews as exc:
            raise CliError(f"{exc}") from None

    return _written(slo_report)


def _pilot(con: duckdb.DuckDBPyConnection, settings: Settings) -> PilotReport:
    from models.slo.spec import SpecError
    from pipelines.lib.pilot import load_pilot_spec
    from pipelines.lib.slos import load_recovery_objectives
    from pipelines.reports.pilot import NoPilot, pilot_report

    try:
        return pilot_report(con, settings.reports_dir, load_pilot_spec(), load_recovery_objectives())
    except SpecError as exc:
        raise CliError(str(exc)) from None
    except NoPilot as exc:
        raise CliError(f"no pilot to report: {exc}") from None


def _written(write: Callable[[duckdb.DuckDBPyConnection, Settings], Report | PilotReport]) -> int:
    """Run `write(con, settings)` on the lake, read-only, and print the report's HTML and Markdown paths."""
    import duckdb

    from ingest import lake

    settings = Settings.from_env()
    try:
        con = lake.connect(settings, read_only=True)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    try:
        report = write(con, settings)
    except duckdb.Error as exc:
        raise CliError(" ".join(str(exc).split())) from None
    finally:
        con.close()
    print(report.html)
    print(report.directory / "report.md")
    return 0
