"""`leo-fleet demo --live`: a short live run, printing alerts as they fire and resolve at a webhook receiver.

The fleet streams through Kafka at `speed` times wall-clock pace; the loader, the live path and the delivery run in
this process beside an Alertmanager-compatible receiver (pipelines/live/receiver.py) that prints what it is sent.
After the last telemetry it waits until every alert recorded has been delivered (or `DRAIN_LIMIT_S` passed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from ingest import lake
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import reset_topics
from ingest.lake.loader import Loader, LoaderOptions
from ingest.lake.raw_tables import ensure_tables
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from pipelines.live.delivery import cursor
from pipelines.live.receiver import Received, Receiver
from pipelines.live.service import LiveOptions, run_live
from pipelines.live.tables import OUTBOX, ensure_live_tables
from pipelines.sql import install_views

DRAIN_LIMIT_S = 60.0
# The marts the reconciliation compares with: one asset writes resets and link_events, another slo_breaches.
RECONCILED_MARTS = ("link_events", "slo_sli", "slo_breaches")


@dataclass(frozen=True)
class LiveDemoOptions:
    controllers: int
    hours: float
    seed: int
    speed: float


def prepare(settings: Settings) -> None:
    """Empty telemetry topics and a lake with its raw and live tables and the `sre` views the exporter needs."""
    reset_topics(settings)
    con = lake.connect(settings)
    try:
        with lake.catalog_lock(settings):
            ensure_tables(con)
            ensure_live_tables(con)
        install_views(con)
    finally:
        con.close()


def _show(console: Console) -> Callable[[Received], None]:
    def show(item: Received) -> None:
        labels = item.alert["labels"]
        about = labels.get("controller_id") or f"{labels.get('slo')} {labels.get('group')}"
        style = "red" if item.status == "firing" else "green"
        ends = f" → {item.alert['endsAt']}" if "endsAt" in item.alert else ""
        console.print(
            f"[{style}]{item.status.upper():8s}[/] {labels['alertname']:18s} {about}  "
            f"{item.alert['startsAt']}{ends}  {item.alert['annotations'].get('evidence', '')}"
        )

    return show


def run_live_demo(settings: Settings, options: LiveDemoOptions, console: Console) -> int:
    """Stream, load, detect and deliver; returns the alert states the receiver got."""
    receiver = Receiver(on_alert=_show(console)).start()
    stop = threading.Event()
    loader = Loader(settings, LoaderOptions(follow=True, flush_interval_s=1.0))
    threads = [
        threading.Thread(target=loader.run, name="loader", daemon=True),
        threading.Thread(
            target=run_live, args=(settings, LiveOptions(webhook=receiver.url, poll_s=0.5), stop), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        simulation = Simulation(SimConfig(controllers=options.controllers, hours=options.hours, seed=options.seed))
        console.print(
            f"streaming {options.controllers} controllers x {options.hours:g} h at {options.speed:g}x "
            f"(~{options.hours * 3600 / options.speed:.0f} s); alerts posted to {receiver.url}:"
        )
        publish_simulation(settings, simulation, speed=options.speed)
        _drain(settings, receiver, loader)
        stop.set()
        reconcile_hours(settings, console)
    finally:
        stop.set()
        loader.stop()
        for thread in threads:
            thread.join(timeout=60)
        receiver.stop()
    return len(receiver.snapshot())


def reconcile_hours(settings: Settings, console: Console) -> list[dict[str, object]]:
    """Materialise the hourly marts of every hour streamed with the `live_matches_hourly` check, and print what it
    found for the hours the live path covered; returns the check's metadata per hour."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.live.reconciliation import live_matches_hourly
    from pipelines.lib.marts import mart_key
    from pipelines.lib.partitions import HOURLY
    from pipelines.lib.resources import LakeResource

    definitions = defs()
    assets = list(dict.fromkeys(definitions.get_assets_def(mart_key(name)) for name in RECONCILED_MARTS))
    resource = LakeResource(data_dir=str(settings.data_dir))
    with resource.connection(read_only=True) as con:
        (first, last) = con.execute("SELECT min(ts), max(ts) FROM raw.link").fetchone()
    hours = HOURLY.get_partition_keys_in_time_window(dg.TimeWindow(first, last))
    found = []
    for hour in hours:
        result = dg.materialize(
            [*assets, live_matches_hourly],
            partition_key=hour,
            resources={"lake": resource},
            instance=dg.DagsterInstance.ephemeral(),
        )
        (check,) = [
            e for e in result.get_asset_check_evaluations() if e.check_name == live_matches_hourly.check_key.name
        ]
        metadata = {name: value.value for name, value in check.metadata.items()}
        found.append(metadata)
        if metadata["covered"]:
            console.print(
                f"hour {hour}: live vs hourly marts: {metadata['matched']} incidents the same (id, start, end), "
                f"{metadata['differences']} differences"
            )
        else:
            console.print(f"hour {hour}: not reconciled (the live path had not settled past its end)")
    return found


def _drain(settings: Settings, receiver: Receiver, loader: Loader, quiet_s: float = 10.0) -> None:
    """Wait until the loader has caught up, then until no alert has been recorded or received for `quiet_s` and
    the webhook's cursor is at the outbox's end (at most DRAIN_LIMIT_S)."""
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < deadline and loader.status()["lag_total"]:
        time.sleep(1)
    last_change, seen = time.monotonic(), None
    while time.monotonic() < deadline:
        con = lake.connect(settings, read_only=True)
        try:
            (recorded,) = con.execute(f"SELECT coalesce(max(seq), 0) FROM {OUTBOX}").fetchone()
            state = (recorded, cursor(con, receiver.url), len(receiver.snapshot()))
        finally:
            con.close()
        if state != seen:
            last_change, seen = time.monotonic(), state
        elif state[0] == state[1] and time.monotonic() - last_change >= quiet_s:
            return
        time.sleep(1)
