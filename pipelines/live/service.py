"""The `leo-fleet live` process: detector rounds in the calling thread, one delivery thread per sink.

Each side has its own lake connection (a cursor of one session), so a receiver that is down delays only its own
deliveries, never detection or the other sink. Everything it needs to resume is in the lake: a SIGKILL at any
moment loses nothing (docs/live.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ingest import lake
from ingest.lake.fault_injection import CrashPoints
from ingest.settings import Settings
from pipelines.live.delivery import Delivery, KafkaSink, Sink, WebhookSink, drain
from pipelines.live.detect import LiveDetector, Round
from pipelines.live.tables import ensure_live_tables


@dataclass(frozen=True)
class LiveOptions:
    detect: bool = True
    webhook: str | None = None
    kafka: bool = False
    poll_s: float = 1.0


def run_live(
    settings: Settings,
    options: LiveOptions,
    stop: threading.Event,
    on_round: Callable[[Round], None] = lambda _: None,
    crash_points: CrashPoints | None = None,
) -> None:
    """Run until `stop` is set."""
    con = lake.connect(settings)
    sinks: list[Sink] = []
    threads: list[threading.Thread] = []
    try:
        with lake.catalog_lock(settings):
            ensure_live_tables(con)
        if options.webhook:
            sinks.append(WebhookSink(options.webhook))
        if options.kafka:
            sinks.append(KafkaSink(settings))
        for sink in sinks:
            delivery = Delivery(sink, stop, crash_points)
            cursor = lake.lake_cursor(con)
            thread = threading.Thread(
                target=drain, args=([delivery], cursor, stop, options.poll_s), name=f"deliver {sink.name}", daemon=True
            )
            thread.start()
            threads.append(thread)
        detector = LiveDetector(lake.lake_cursor(con), crash_points) if options.detect else None
        while not stop.is_set():
            done = detector.round() if detector else None
            if done is not None:
                on_round(done)
            elif not stop.is_set():
                stop.wait(options.poll_s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for sink in sinks:
            with contextlib.suppress(Exception):
                getattr(sink, "close", lambda: None)()
        con.close()
