"""`leo-fleet demo`: the whole pipeline on a simulated fleet, end to end, with progress, in a few minutes."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.settings import Settings
from pipelines.cli.errors import CliError, number
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
    _live_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError
    from rich.console import Console

    from ingest.kafka import broker

    if args.live:
        return _run_live(args)
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


# --- `leo-fleet demo --live` (the live path, docs/live.md) ---------------------------------------------------------


def _live_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--live",
        action="store_true",
        help="instead: a short live run (Kafka, loader, leo-fleet live, exporter, a webhook receiver) printing "
        "alerts as they fire and resolve",
    )
    parser.add_argument(
        "--live-hours",
        type=HOURS,
        default=1.5,
        help="with --live: simulated hours to stream (default 1.5: the first hour is then reconciled with the marts)",
    )
    parser.add_argument(
        "--speed", type=number(0, 3600), default=60.0, help="with --live: times wall-clock pace (default 60)"
    )


def _run_live(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import sys
    import tempfile

    from kafka.errors import KafkaError
    from rich.console import Console

    from ingest.kafka import broker
    from ingest.settings import ENV_PREFIX
    from pipelines.demo import local_broker
    from pipelines.live.demo import LiveDemoOptions, prepare, run_live_demo

    check_scale(args.controllers, args.live_hours)
    settings = Settings.from_env()
    if args.data_dir:
        settings = settings.with_data_dir(args.data_dir.expanduser().resolve())
    if not broker.is_local(settings):
        require_reachable(settings)
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    # A lake of its own each run: the live path's incidents of an earlier run with the same seed would be known.
    run_settings = settings.with_data_dir(Path(tempfile.mkdtemp(prefix="live-demo-", dir=settings.scratch_dir)))
    console = Console(stderr=False, soft_wrap=True)  # one line per alert, however narrow the terminal
    options = LiveDemoOptions(args.controllers, args.live_hours, args.seed, args.speed)
    try:
        with local_broker(settings, console):
            prepare(run_settings)
            port = broker.free_port()
            env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(run_settings.data_dir)}
            exporter = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from pipelines.cli import main; sys.exit(main())",
                    "exporter",
                    "--port",
                    str(port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            console.print(f"lake {run_settings.data_dir}; Prometheus metrics at http://127.0.0.1:{port}/metrics")
            try:
                received = run_live_demo(run_settings, options, console)
            finally:
                exporter.terminate()
                exporter.wait(timeout=30)
    except broker.BrokerError as exc:
        raise CliError(str(exc)) from None
    except KafkaError as exc:
        raise kafka_error(settings, exc) from None
    console.print(f"{received} alert states delivered; sre.live_incidents and sre.alerts hold them")
    return 0
