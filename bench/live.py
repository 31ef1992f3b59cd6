"""Benchmark of the live path: wall-clock time from telemetry being published to its alert reaching a webhook.

    XDG_DATA_HOME=/tmp/xdg .venv/bin/python -m bench.live          # 1,000 controllers, 1.5 simulated hours at 60x

One run, on a broker of its own (free port) and a temporary lake: `leo-fleet simulate --to-kafka --speed 60`, the
loader (`leo-fleet ingest --follow`), `leo-fleet live --webhook` and an Alertmanager-compatible receiver
(pipelines/live/receiver.py), all real processes; half-way the loader and the live process are SIGKILLed and
restarted. A Kafka consumer of its own records when each telemetry message was published (its record timestamp,
set by the producer on send) and up to which data time it carries rows.

Per incident the live path alerted on: publish time of the row carrying its first evidence (a fast-burn page: of
the last latency window of the step that opened it) -> first arrival of its firing alert at the receiver; p50, p95
and max per kind. Beside it, the ceiling of the same run: publish -> the lake commit that made that row visible
(what any reader of the lake must wait), and the hourly path's wait computed from its schedule (the hour's marts
run at :10 past the next hour, AFTER_LOAD) in real time. Against the injected truth (raw.truth_faults): link drops
and controller resets with and without an alert (same controller, alert start within TOLERANCE of the onset),
and truth events with more than one alert, judged for every event whose controller reported at least SETTLE
past the first row that can reveal it (the fleet stops reporting when the simulation ends; the later ones are
counted apart; resets inside a declared maintenance window are planned, not faults, and counted apart too), with
the nearest truth row of any kind for each alert matching no fault; fast-burn pages against the SLO evaluation of
the whole run (the marts' code); and re-posts (an alert state arriving twice).
Figures vary with machine load: `uptime` is printed.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from kafka import KafkaConsumer

from ingest import contract, lake
from ingest.kafka import broker, codec
from ingest.kafka.topics import key_partition, reset_topics
from ingest.settings import ENV_PREFIX, KafkaSettings, Settings, restrict_new_files
from ingest.sim.fault_schedule import MAINTENANCE, RESET_CAUSES
from models.incidents import DROP, RESET
from models.series import NS_PER_S
from pipelines.defs.slo.slo_assets import SLI_LATENCY_COLUMNS
from pipelines.lib.partitions import Window
from pipelines.lib.slos import STEP_S, load
from pipelines.lib.telemetry import raw_table, read_inventory, read_stream, read_truth
from pipelines.live.burn import SLO_PAGE, fast_burn_pages, live_slos
from pipelines.live.detect import CONTEXT, SETTLE, SLO_CONTEXT
from pipelines.live.receiver import Receiver
from tests.ingest.kafka.helpers import CLI

TOLERANCE = timedelta(minutes=5)
TARGET_S = 60.0  # the acceptance: p95 publish -> webhook
HOURLY_DELAY = timedelta(minutes=10)  # pipelines.lib.assets.AFTER_LOAD: "10 * * * *"
PLANNED_CAUSE = RESET_CAUSES[MAINTENANCE]  # truth details.cause of a reset in a declared maintenance window
EVIDENCE_TOPICS = {
    RESET: (contract.TOPIC_ERRORS, contract.TOPIC_LINK),
    DROP: (contract.TOPIC_LINK,),
    SLO_PAGE: (contract.TOPIC_LATENCY,),
}


class PublishLog:
    """Per (topic, partition): the running maximum of the data time carried and the publish time, in offset order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.marks: dict[tuple[str, int], tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        topics = [*EVIDENCE_TOPICS[RESET], contract.TOPIC_LATENCY]
        consumer = KafkaConsumer(
            *topics, **self.settings.kafka.client_config(), auto_offset_reset="earliest", consumer_timeout_ms=500
        )
        try:
            while not self.stop.is_set():
                for record in consumer:
                    rows = codec.decode(record.topic, record.value, record.headers or [])
                    high = pc.max(rows[contract.TIME_COLUMNS[record.topic]].cast("int64")).as_py()
                    highs, walls = self.marks[(record.topic, record.partition)]
                    highs.append(max(high, highs[-1]) if highs else high)
                    walls.append(record.timestamp / 1000)
        finally:
            consumer.close()

    def published(self, topic: str, partition: int, data_ns: int) -> float | None:
        """Wall time the first message carrying data up to `data_ns` on that partition was published."""
        highs, walls = self.marks.get((topic, partition), ([], []))
        i = bisect.bisect_left(highs, data_ns)
        return walls[i] if i < len(highs) else None


@dataclass(frozen=True)
class Incident:
    incident_id: str
    kind: str
    subject: str
    start_ns: int
    detected_ns: int
    arrived: float  # first arrival of the firing alert (wall)
    published: float  # publish time of its first evidence (wall)
    committed: float  # lake commit making that evidence visible (wall)


def main() -> int:
    restrict_new_files()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controllers", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=1.5)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of the run at which to SIGKILL loader+live")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leo-bench-live-") as scratch:
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}", consumer_group="bench-live")
        ).with_data_dir(Path(scratch) / "data")
        broker.start(settings)
        try:
            return _run(settings, args)
        finally:
            broker.stop(settings)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    reset_topics(settings)
    env = {
        **os.environ,
        f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        f"{ENV_PREFIX}CONSUMER_GROUP": "bench-live",
    }
    logs = settings.data_dir.parent
    receiver = Receiver().start()
    publish_log = PublishLog(settings)
    publish_log.thread.start()
    loader_args = ["ingest", "--follow", "--json", "--flush-seconds", "1"]
    live_args = ["live", "--webhook", receiver.url, "--poll", "0.5"]
    loader, live = _start(loader_args, env, logs / "loader.log"), _start(live_args, env, logs / "live.log")
    load_before = os.getloadavg()
    started = time.time()
    sim = _start(
        [
            "simulate",
            "--to-kafka",
            "--speed",
            str(args.speed),
            "--controllers",
            str(args.controllers),
            "--hours",
            str(args.hours),
            "--seed",
            str(args.seed),
        ],
        env,
        logs / "simulate.log",
    )
    run_s = args.hours * 3600 / args.speed
    kill_at = started + args.kill_at * run_s
    killed = False
    while sim.poll() is None:
        if not killed and time.time() >= kill_at:
            for process in (loader, live):
                process.send_signal(signal.SIGKILL)
                process.wait()
            loader, live = _start(loader_args, env, logs / "loader.log"), _start(live_args, env, logs / "live.log")
            killed = True
        time.sleep(0.5)
    published_s = time.time() - started
    _drain(settings, receiver)
    load_after = os.getloadavg()
    for process in (live, loader):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    publish_log.stop.set()
    publish_log.thread.join(timeout=30)
    receiver.stop()
    if sim.returncode:
        print((logs / "simulate.log").read_text()[-2000:], file=sys.stderr)
        return 1
    _report(settings, args, receiver, publish_log, published_s, load_before, load_after)
    return 0


def _drain(settings: Settings, receiver: Receiver, quiet_s: float = 30.0, limit_s: float = 600.0) -> None:
    """Wait until no alert has arrived for `quiet_s` and the webhook cursor is at the outbox's end."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        got = receiver.snapshot()
        last = got[-1].arrived if got else 0.0
        if time.time() - last > quiet_s and _delivered_all(settings, receiver.url):
            return
        time.sleep(2)


def _delivered_all(settings: Settings, sink: str) -> bool:
    con = lake.connect(settings, read_only=True)
    try:
        (outbox,) = con.execute("SELECT coalesce(max(seq), 0) FROM sre.alert_outbox").fetchone()
        (cursor,) = con.execute(
            "SELECT coalesce(max(delivered_seq), 0) FROM sre.alert_delivery WHERE sink = ?", [sink]
        ).fetchone()
        return outbox == cursor
    finally:
        con.close()


def _incidents(con, receiver: Receiver, log: PublishLog, partitions: int) -> list[Incident]:
    """Every incident whose firing alert reached the receiver, with its publish and commit times."""
    arrived: dict[str, float] = {}
    for item in receiver.snapshot():
        if item.status == "firing":
            arrived.setdefault(item.alert["labels"]["incident_id"], item.arrived)
    rows = con.execute(
        "SELECT incident_id, kind, subject, epoch_ns(start_ts), epoch_ns(detected_ts) FROM sre.live_incidents"
    ).fetchall()
    commits = _commit_times(con, [r for r in rows if r[1] != SLO_PAGE])
    found = []
    for incident_id, kind, subject, start_ns, detected_ns in rows:
        if incident_id not in arrived:
            continue
        if kind == SLO_PAGE:
            evidence_ns = detected_ns - STEP_S * NS_PER_S // 5  # the step's last one-minute latency window
            group = subject.partition("/")[2]
            candidates = [group] if group.startswith("0x") else None  # a per-controller SLO; else every partition
        else:
            evidence_ns, candidates = detected_ns, [subject]
        parts = {key_partition(c.encode(), partitions) for c in candidates} if candidates else set(range(partitions))
        times = [
            max(t for t in (log.published(topic, p, evidence_ns) for p in parts) if t is not None)
            for topic in EVIDENCE_TOPICS[kind]
            if all(log.published(topic, p, evidence_ns) is not None for p in parts)
        ]
        if times:
            committed = commits.get((subject, detected_ns), float("nan"))
            found.append(
                Incident(incident_id, kind, subject, start_ns, detected_ns, arrived[incident_id], min(times), committed)
            )
    return found


def _commit_times(con, rows: list[tuple]) -> dict[tuple[str, int], float]:
    """(controller, data time) -> wall time of the lake commit that first held a row of it (errors or link)."""
    if not rows:
        return {}
    (last,) = con.execute("FROM lake.current_snapshot()").fetchone()
    keys = {(subject, detected_ns) for _, _, subject, _, detected_ns in rows}
    wanted = ", ".join(f"('{s}', {t // 1000})" for s, t in keys)
    found: dict[tuple[str, int], float] = {}
    for table in ("errors", "link"):
        sql = f"""
            WITH wanted(controller_id, us) AS (VALUES {wanted})
            SELECT c.controller_id, epoch_us(c.ts), min(epoch(s.snapshot_time))
            FROM ducklake_table_changes('lake', 'raw', '{table}', 0, {last}) c
            JOIN wanted w ON c.controller_id = w.controller_id AND epoch_us(c.ts) = w.us
            JOIN lake.snapshots() s USING (snapshot_id)
            WHERE c.change_type = 'insert' GROUP BY ALL"""
        for controller, us, when in con.execute(sql).fetchall():
            key = (controller, us * 1000)
            found[key] = min(found.get(key, when), when)
    return found


def _settled(con, truth) -> pa.Array:
    """Per truth row: whether its controller reported at least SETTLE past the first row that can carry the
    fault's first evidence (what the live path waits for before it records an incident): the controller's first
    link or error row at or after the onset (a silent reset's: after the device came back, its end_ts). The fleet
    stops reporting when the simulation ends: a fault in its last minutes never gets there."""
    silent = [json.loads(d).get("silent", False) for d in truth["details"].to_pylist()]
    evidence_from = pc.if_else(pa.array(silent), truth["end_ts"], truth["onset_ts"])
    events = pa.table(
        {"i": pa.array(range(truth.num_rows)), "controller_id": truth["controller_id"], "t": evidence_from}
    )
    con.register("bench_events", events)
    try:
        rows = " UNION ALL ".join(f"SELECT controller_id, ts FROM {raw_table(t)}" for t in EVIDENCE_TOPICS[RESET])
        found = con.execute(
            f"""WITH r AS ({rows}), last AS (SELECT controller_id, max(ts) AS last_ts FROM r GROUP BY ALL)
            SELECT e.i, coalesce(l.last_ts >= f.ts + INTERVAL {int(SETTLE.total_seconds())} SECOND, false)
            FROM bench_events e
            LEFT JOIN (SELECT e.i, r.ts FROM bench_events e ASOF JOIN r ON e.controller_id = r.controller_id
                       AND r.ts >= e.t) f USING (i)
            LEFT JOIN last l ON l.controller_id = e.controller_id ORDER BY e.i"""
        ).fetchall()
    finally:
        con.unregister("bench_events")
    return pa.array([ok for _, ok in found], pa.bool_())


@dataclass(frozen=True)
class TruthMatch:
    """One kind's alerts against the injected truth."""

    judged: int  # truth events whose controller reported SETTLE past the first row that can reveal them
    alerted: int
    missed: list[str]  # onsets (data time) of judged events without an alert
    multiple: int  # judged events with more than one alert
    unmatched: list[tuple[str, int]]  # (controller, start ns) of alerts matching no truth event
    late: int  # events left out: their controller stopped reporting before SETTLE past their evidence
    planned: int  # resets inside a declared maintenance window: no fault, alerted ones are in `unmatched`


def _truth_match(truth, settled: pa.Array, incidents: list[Incident]) -> dict[str, TruthMatch]:
    """Per kind, the injected events against the alerts (same controller, alert start within TOLERANCE of the
    onset). Left out of the judging: events not `settled` (see _settled; in a fleet that keeps reporting they
    would be confirmed SETTLE later); and resets inside a declared maintenance window (truth cause `maintenance`),
    which are planned, not faults: an alert on one is an alert matching no fault."""
    kinds = {"link_drop": DROP, "controller_reset": RESET}
    by_subject: dict[tuple[str, str], list[int]] = defaultdict(list)
    for incident in incidents:
        by_subject[(incident.kind, incident.subject)].append(incident.start_ns)
    tolerance = int(TOLERANCE.total_seconds() * NS_PER_S)
    out = {}
    for truth_kind, kind in kinds.items():
        mask = pc.equal(truth["kind"].cast("string"), truth_kind)
        events = truth.filter(mask)
        planned = [json.loads(d).get("cause") == PLANNED_CAUSE for d in events["details"].to_pylist()]
        injected = [
            (controller, onset, done)
            for controller, onset, done, is_planned in zip(
                events["controller_id"].to_pylist(),
                events["onset_ts"].cast("int64").to_pylist(),
                settled.filter(mask).to_pylist(),
                planned,
                strict=True,
            )
            if not is_planned
        ]
        judged = [(controller, onset) for controller, onset, done in injected if done]
        hits = [
            sum(abs(start - onset) <= tolerance for start in by_subject[(kind, controller)])
            for controller, onset in judged
        ]
        matched = {
            (controller, start)
            for controller, onset, _ in injected
            for start in by_subject[(kind, controller)]
            if abs(start - onset) <= tolerance
        }
        unmatched = sorted(
            (controller, start)
            for (k, controller), starts in by_subject.items()
            if k == kind
            for start in starts
            if (controller, start) not in matched
        )
        out[kind] = TruthMatch(
            judged=len(hits),
            alerted=sum(h > 0 for h in hits),
            missed=[_clock(onset) for (_, onset), h in zip(judged, hits, strict=True) if h == 0],
            multiple=sum(h > 1 for h in hits),
            unmatched=unmatched,
            late=len(injected) - len(judged),
            planned=sum(planned),
        )
    return out


def _nearest_truth(truth, controller: str, at_ns: int) -> str:
    """The truth row of any kind (faults, confounders, delivery faults) on `controller` nearest to `at_ns`: the
    one whose [onset, end] lies closest (0 when inside), in words."""
    rows = truth.filter(pc.equal(truth["controller_id"], controller))
    if not rows.num_rows:
        return "no truth row on this controller"
    onsets = rows["onset_ts"].cast("int64").to_pylist()
    ends = [e if e is not None else at_ns for e in rows["end_ts"].cast("int64").to_pylist()]
    distance = [max(onset - at_ns, at_ns - end, 0) for onset, end in zip(onsets, ends, strict=True)]
    # Inside several rows' spans (a maintenance window and the reset in it): the one that began closest.
    i = min(range(rows.num_rows), key=lambda j: (distance[j], abs(onsets[j] - at_ns)))
    end = rows["end_ts"][i].as_py()
    return (
        f"{rows['kind'][i].as_py()} {_clock(onsets[i])}-{f'{end:%H:%M:%S}' if end else 'end'} "
        f"{rows['details'][i].as_py()} ({distance[i] / NS_PER_S:.0f} s away)"
    )


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%H:%M:%S")


def _percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    p50, p95 = np.percentile(values, [50, 95])
    return f"n={len(values)} p50 {p50:.1f} s, p95 {p95:.1f} s, max {max(values):.1f} s"


def _report(settings, args, receiver, log, published_s, load_before, load_after) -> None:
    con = lake.connect(settings, read_only=True)
    try:
        partitions = settings.kafka.partitions
        incidents = _incidents(con, receiver, log, partitions)
        truth = read_truth(con)
        settled = _settled(con, truth)
        inventory = read_inventory(con)
        outbox = con.execute("SELECT count(*), count(DISTINCT (fingerprint, status)) FROM sre.alert_outbox").fetchone()
        first, last = con.execute("SELECT min(window_start), max(window_start) FROM raw.latency").fetchone()
        print(f"data time {first:%H:%M} to {last:%H:%M}")
        columns = ["controller_id", *SLI_LATENCY_COLUMNS]
        span = Window(first, last + timedelta(minutes=1))
        latency = read_stream(con, contract.TOPIC_LATENCY, span, columns, "memory_tier = 'cxl'")
        high = int(span.end.timestamp()) * NS_PER_S
    finally:
        con.close()
    arrivals = receiver.snapshot()
    keys = [item.key for item in arrivals]
    print(
        f"bench.live: {args.controllers} controllers, {args.hours} h simulated at {args.speed:g}x "
        f"({published_s:.0f} s of publishing); loader and live SIGKILLed and restarted at {args.kill_at:.0%}"
    )
    print(
        f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}"
    )
    print("publish -> webhook (firing alert), per kind; ceiling: publish -> lake commit of the same evidence row")
    for kind in (DROP, RESET, SLO_PAGE):
        mine = [i for i in incidents if i.kind == kind]
        live = [i.arrived - i.published for i in mine]
        commit = [i.committed - i.published for i in mine if not np.isnan(i.committed)]
        hourly = [
            (
                (
                    datetime.fromtimestamp(i.detected_ns / 1e9, UTC).replace(minute=0, second=0, microsecond=0)
                    + timedelta(hours=1)
                    + HOURLY_DELAY
                ).timestamp()
                - i.detected_ns / 1e9
            )
            for i in mine
        ]
        print(f"  {kind:9s} live    {_percentiles(live)}")
        if commit:
            ratio = np.percentile(live, 95) / max(np.percentile(commit, 95), 1e-9)
            print(f"  {kind:9s} commit  {_percentiles(commit)}  (live p95 / commit p95 = {ratio:.1f}x)")
        print(f"  {kind:9s} hourly  {_percentiles(hourly)}  (computed from the schedule, real time)")
        if live:
            print(
                f"  {kind:9s} p95 {np.percentile(live, 95):.1f} s against the {TARGET_S:.0f} s target: "
                f"{np.percentile(live, 95) / TARGET_S:.2f}x"
            )
    for kind, match in _truth_match(truth, settled, incidents).items():
        print(
            f"  truth {kind}: {match.judged} injected and judged, {match.alerted} alerted, {len(match.missed)} missed "
            f"(onsets {', '.join(match.missed) or 'none'}), {match.multiple} with >1 alert; "
            f"{len(match.unmatched)} alerts matching no injected fault; {match.late} more injected whose controller "
            f"stopped reporting (the data ends) less than {SETTLE} after the first row that could reveal them, not "
            f"judged; {match.planned} planned (in a declared maintenance window), not faults"
        )
        for controller, start in match.unmatched:
            nearest = _nearest_truth(truth, controller, start)
            print(f"    {kind} alert {controller} at {_clock(start)}: nearest truth {nearest}")
    slos = live_slos(load(), SLO_CONTEXT - CONTEXT)
    reference = fast_burn_pages(latency, inventory, slos, high)
    got = {i.incident_id for i in incidents if i.kind == SLO_PAGE}
    expected = set(reference["incident_id"].to_pylist())
    print(
        f"  fast-burn pages: {len(expected)} in the whole run's evaluation, {len(expected & got)} alerted, "
        f"{len(expected - got)} missed, {len(got - expected)} alerted but not in it"
    )
    print(
        f"alert states recorded {outbox[0]} (distinct {outbox[1]}); arrivals {len(keys)}, distinct {len(set(keys))}, "
        f"re-posts {len(keys) - len(set(keys))}; receiver refused {receiver.refused}"
    )


if __name__ == "__main__":
    sys.exit(main())
