"""`leo-fleet ingest`: the exactly-once Kafka → DuckLake loader, with live progress or JSON status lines."""

from __future__ import annotations

import argparse
import json
import signal
from dataclasses import replace

from ingest.settings import Settings
from pipelines.cli.errors import CliError, number, whole_number
from pipelines.cli.kafka_errors import kafka_error, require_reachable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="load the telemetry topics into the lake, exactly once",
        description=(
            "Consume leo.errors, leo.link, leo.latency and leo.inventory as one consumer-group member and append "
            "them to the lake's raw tables; offsets are stored in the same transaction, so a crash or restart "
            "never loses or duplicates a row. Undecodable messages go to raw.quarantine with a reason. "
            "SIGTERM or Ctrl-C stops cleanly after a final flush."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--follow", action="store_true", help="keep running and load new messages as they arrive")
    mode.add_argument("--until-idle", action="store_true", help="drain every partition, then exit (the default)")
    parser.add_argument("--json", action="store_true", help="print status as JSON lines instead of a live table")
    parser.add_argument("--group", help="consumer group (default: LEO_FLEET_CONSUMER_GROUP or leo-loader)")
    parser.add_argument(
        "--idle-seconds", type=number(0, 3600), default=2.0, help="quiet time before --until-idle checks for the end"
    )
    parser.add_argument(
        "--flush-rows",
        type=whole_number(1, 100_000_000),
        default=500_000,
        help="decoded rows that trigger a lake transaction",
    )
    parser.add_argument(
        "--flush-seconds", type=number(0, 3600), default=5.0, help="longest time decoded rows wait for the lake"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from ingest.lake.fault_injection import CrashPoints
    from ingest.lake.loader import Loader, LoaderOptions
    from ingest.lake.writer import LakeWriteError

    settings = Settings.from_env()
    if args.group:
        settings = replace(settings, kafka=replace(settings.kafka, consumer_group=args.group))
    require_reachable(settings)
    options = LoaderOptions(
        follow=args.follow,
        idle_s=args.idle_seconds,
        flush_rows=args.flush_rows,
        flush_interval_s=args.flush_seconds,
        crash_points=CrashPoints.from_env(),
    )
    display = _JsonLines() if args.json else _LiveTable()
    loader = Loader(settings, options, on_status=display.update)
    previous = {signum: signal.signal(signum, lambda *_: loader.stop()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        with display:
            final = loader.run()
            display.update(final)
    except KafkaError as exc:
        raise kafka_error(settings, exc) from None
    except LakeWriteError as exc:
        raise CliError(f"{exc}; nothing after the last committed batch was lost, restart to resume") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


class _JsonLines:
    def __enter__(self) -> _JsonLines:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, status: dict) -> None:
        print(json.dumps(status), flush=True)


class _LiveTable:
    """A rich live view: totals, rates and lag per partition, refreshed at each status tick."""

    def __enter__(self) -> _LiveTable:
        from rich.live import Live

        self._live = Live(self._render(None), auto_refresh=False, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)
        if not self._live.console.is_terminal:
            self._live.console.line()  # rich leaves the last line open when it is not drawing on a terminal

    def update(self, status: dict) -> None:
        self._live.update(self._render(status), refresh=True)

    @staticmethod
    def _render(status: dict | None):
        from rich.table import Table

        table = Table(title="leo-fleet ingest", show_header=True)
        table.add_column("state")
        table.add_column("rows", justify="right")
        table.add_column("rows/s", justify="right")
        table.add_column("MB/s", justify="right")
        table.add_column("quarantined", justify="right")
        table.add_column("skipped (replayed / duplicate)", justify="right")
        table.add_column("lag (messages)")
        if status is None:
            table.add_row("joining group", "0", "-", "-", "0", "0 / 0", "-")
            return table
        lag = ", ".join(f"{key}={value}" for key, value in status["lag_by_partition"].items() if value) or "none"
        table.add_row(
            status["state"],
            f"{status['rows_total']:,}",
            f"{status['rows_per_s']:,.0f}",
            f"{status['bytes_per_s'] / 1e6:.2f}",
            f"{status['quarantined_total']:,}",
            f"{status['replayed_messages_skipped']:,} / {status['duplicate_messages_skipped']:,}",
            lag,
        )
        return table
