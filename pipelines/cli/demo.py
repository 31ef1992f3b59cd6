"""`leo-fleet demo`: the whole pipeline on a simulated fleet, end to end, with progress, in a few minutes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from ingest.settings import Settings
from pipelines.cli.errors import CliError, non_negative_int, positive_float, positive_int


def _utc_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an ISO time like 2026-01-05T00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run everything end to end on a simulated fleet (broker, Kafka, loader, Dagster assets, SLO report)",
        description=(
            "Start the local Kafka broker (or reuse a running one), stream a simulated fleet through Kafka, load "
            "it exactly once into the lake, materialize every Dagster asset over the span, write the SLO report, "
            "and print where to look. The demo replaces its own previous output in the data directory."
        ),
    )
    parser.add_argument("--controllers", type=positive_int, default=500, help="fleet size (default 500)")
    parser.add_argument("--hours", type=positive_float, default=24.0, help="simulated span in hours (default 24)")
    parser.add_argument("--seed", type=non_negative_int, default=7, help="simulation seed (default 7)")
    parser.add_argument(
        "--start",
        type=_utc_time,
        help="first simulated instant, ISO (default: HOURS before the last midnight UTC, a recent span)",
    )
    parser.add_argument("--data-dir", type=Path, help="where the lake, reports and Dagster instance go")
    parser.add_argument("--fresh", action="store_true", help="replace a lake in the data dir the demo did not create")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ingest.broker import BrokerError
    from pipelines.demo import DemoError, DemoOptions, run_demo

    settings = Settings.from_env()
    if args.data_dir:
        settings = settings.with_data_dir(args.data_dir.expanduser().resolve())
    options = DemoOptions(args.controllers, args.hours, args.seed, args.start, args.fresh)
    try:
        run_demo(settings, options, Console(stderr=False))
    except (DemoError, BrokerError) as exc:
        raise CliError(str(exc)) from None
    return 0
