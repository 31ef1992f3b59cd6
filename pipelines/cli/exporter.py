"""`leo-fleet exporter [--host H] [--port P]`: the lake's fleet health, SLO burn and loader state for Prometheus.

Serves `/metrics` in the Prometheus text format. Each scrape attaches the lake read-only, reads the `sre` views
and the loader's status rows (pipelines/lib/metrics.py) and detaches, so the figures are the lake's at that moment
and a restarted loader or a re-created lake needs no restart here. A scrape that cannot read the lake answers
`leo_fleet_lake_up 0` and says why on stderr, as exporters do, instead of failing the scrape.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from pipelines.cli.errors import CliError, listen_arguments

HOST = "127.0.0.1"
PORT = 9464  # the port OpenTelemetry's and many exporters' Prometheus endpoints use by default


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="serve fleet health, SLO burn rates and budgets, and loader lag as Prometheus metrics",
        description=(
            "Serve /metrics for Prometheus, read from the lake's sre views at every scrape: controller health, "
            "SLO burn rates, alert states and error budget left, open link incidents, raw table rows and "
            "watermarks, each loader's lag, throughput, quarantine and commit retries. Loopback unless --host says "
            "otherwise."
        ),
    )
    listen_arguments(parser, HOST, PORT)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> NoReturn:
    import sys
    import threading
    from collections.abc import Iterator

    import duckdb
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import GaugeMetricFamily, Metric

    from ingest import lake
    from ingest.settings import Settings
    from pipelines.cli.errors import one_line
    from pipelines.lib.metrics import PREFIX, lake_metrics

    settings = Settings.from_env()
    con = lake.connect(settings, read_only=True)  # a lake that does not exist: one line and exit 2, now
    try:
        if not con.execute("SELECT 1 FROM duckdb_views() WHERE schema_name = 'sre' LIMIT 1").fetchall():
            raise CliError("the lake has no sre views yet: run `leo-fleet demo` or materialize sre/views first")
    finally:
        con.close()

    class LakeCollector:
        def collect(self) -> Iterator[Metric]:
            up = GaugeMetricFamily(f"{PREFIX}_lake_up", "1 if this scrape could read the lake, else 0.")
            try:
                scrape = lake.connect(settings, read_only=True)
                try:
                    metrics = list(lake_metrics(scrape))
                finally:
                    scrape.close()
            except (OSError, duckdb.Error) as exc:
                print(f"leo-fleet exporter: scrape failed: {one_line(str(exc))}", file=sys.stderr)
                up.add_metric([], 0)
                yield up
                return
            up.add_metric([], 1)
            yield up
            yield from metrics

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LakeCollector())
    start_http_server(args.port, addr=args.host, registry=registry)
    print(f"leo-fleet exporter: serving http://{args.host}:{args.port}/metrics (Ctrl-C to stop)", flush=True)
    while True:  # the server runs in its own thread until the process is interrupted or terminated
        threading.Event().wait()
