"""`leo-fleet demo`: the whole pipeline on a simulated fleet, end to end, with progress, in a few minutes."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.settings import Settings
from pipelines.cli.errors import CliError
from pipelines.cli.kafka_errors import kafka_error, require_reachable
from pipelines.cli.simulate import CONTROLLERS, HOURS, SEED, check_scale
from pipelines.lib.demo_span import default_start, partition_settings


def _utc_time(text: str) -> datetime:
    """An ISO time (UTC unless it says otherwise) in the past: a span can only be simulated once it is over."""
    try:
        moment = datetime.fromisoformat(text)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"must be an ISO time like 2026-01-05T00:00Z, got {text!r}") from None
    if moment > datetime.now(UTC):
        raise argparse.ArgumentTypeError(f"must be in the past, got {text!r}")
    return moment


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run everything end to end on a simulated fleet (broker, Kafka, loader, Dagster assets, SLO report)",
        description=(
            "Start the local Kafka broker (or reuse a running one), stream a simulated fleet through Kafka, load "
            "it exactly once into the lake, materialize every Dagster asset over the span, write the SLO report, "
            "and print where to look. The demo replaces its own previous output in the data directory and, when "
            "LEO_FLEET_LAKE_CATALOG is set, the lake in that catalog."
        ),
    )
    parser.add_argument("--controllers", type=CONTROLLERS, default=500, help="fleet size (default 500)")
    parser.add_argument("--hours", type=HOURS, default=24.0, help="simulated span in hours (default 24)")
    parser.add_argument("--seed", type=SEED, default=7, help="simulation seed (default 7)")
    parser.add_argument(
        "--start",
        type=_utc_time,
        help="first simulated instant, ISO (default: HOURS before the last midnight UTC, a recent span)",
    )
    parser.add_argument("--data-dir", type=Path, help="where the lake, reports and Dagster instance go")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="replace a lake the demo did not create (in the data dir or the configured catalog)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError
    from rich.console import Console

    from ingest.kafka import broker

    check_scale(args.controllers, args.hours)
    start = args.start or default_start(args.hours)
    # The demo's Dagster partitions are its span: set before anything below imports them (pipelines/lib/partitions).
    os.environ.update(partition_settings(start, start + timedelta(hours=args.hours)))
    settings = Settings.from_env()
    if args.data_dir:
        settings = settings.with_data_dir(args.data_dir.expanduser().resolve())
    if not broker.is_local(settings):  # a local one is started by the demo itself
        require_reachable(settings)
    from pipelines.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(args.controllers, args.hours, args.seed, start, args.fresh)
    try:
        run_demo(settings, options, Console(stderr=False))
    except (DemoError, broker.BrokerError) as exc:
        raise CliError(str(exc)) from None
    except KafkaError as exc:
        raise kafka_error(settings, exc) from None
    return 0
