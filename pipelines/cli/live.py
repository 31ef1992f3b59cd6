"""`leo-fleet live [--webhook URL] [--kafka] [--no-detect]`: resets, link drops and their alerts within a minute.

Detects incidents in the rows the loader commits, as they are committed (pipelines/live/detect.py), and delivers
the alerts to an Alertmanager-compatible webhook and/or the `leo.alerts` topic with retries; a restart resumes
from the lake. `--no-detect` only delivers what is already in the outbox.
"""

from __future__ import annotations

import argparse
import urllib.parse

from pipelines.cli.errors import CliError, number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "live",
        help="detect resets and link drops as the loader commits, and deliver the alerts",
        description=(
            "Run the live path: read the raw rows committed since the last round, detect controller resets and "
            "link drops with the hourly marts' detectors, record incidents in sre.live_incidents and alerts in "
            "sre.alerts, and post the alerts to an Alertmanager-compatible webhook (POST /api/v2/alerts) and/or "
            "the leo.alerts Kafka topic, retrying until they are accepted. Runs until interrupted; resumes from the "
            "lake after a restart."
        ),
    )
    parser.add_argument(
        "--webhook", help="URL to POST alerts to in Alertmanager's format, e.g. http://am:9093/api/v2/alerts"
    )
    parser.add_argument("--kafka", action="store_true", help="also publish alerts to the leo.alerts topic")
    parser.add_argument("--no-detect", action="store_true", help="only deliver alerts already recorded")
    parser.add_argument(
        "--poll", type=number(0, 3600), default=1.0, help="seconds between rounds when nothing is new (default: 1)"
    )
    parser.set_defaults(run=run)


def _webhook(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"--webhook must be an http:// or https:// URL, got {url!r}")
    return url


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ingest.lake.fault_injection import CrashPoints
    from ingest.settings import Settings
    from pipelines.live.detect import Round
    from pipelines.live.service import LiveOptions, run_live

    options = LiveOptions(detect=not args.no_detect, webhook=_webhook(args.webhook), kafka=args.kafka, poll_s=args.poll)
    if not (options.detect or options.webhook or options.kafka):
        raise CliError("--no-detect needs --webhook or --kafka: there would be nothing to do")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def report(done: Round) -> None:
        if done.alerts:
            print(
                f"leo-fleet live: snapshot {done.snapshot_id}: {done.new_rows} new rows, {done.fired} fired, "
                f"{done.resolved} resolved",
                flush=True,
            )

    print("leo-fleet live: running (Ctrl-C to stop)", flush=True)
    run_live(Settings.from_env(), options, stop, report, CrashPoints.from_env())
    return 0
