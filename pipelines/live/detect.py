"""The live detector: resets, link drops and fast-burn SLO pages as the loader commits, with the hourly marts' code.

Each round reads only the raw rows committed since its position (a DuckLake snapshot id: `table_insertions`
between it and the current snapshot), adds them to the rows it carries (per stream, the last `_CONTEXT` of data
time before the newest row: as much as the `detections` asset reads around its hour, and the fast page tier's long
window before each step for latency), runs `Detections.from_tables` (that asset's call) and
`burn.fast_burn_pages` over them and records what changed: new incidents fire; drops whose link came back, resets
past `RESET_HOLD` and pages whose episode ended resolve. Incidents, alerts (with their outbox rows) and the new
position go to the lake in ONE transaction. The carried rows are not copied: they are exactly the raw rows with
ts >= the stored `buffer_from` (per stream, see `_topic_from`) as of the stored snapshot, so a restart reads them
back with time travel and resumes where the last commit left off, neither repeating nor skipping an alert.

An incident is recorded once its controller's rows reach `SETTLE` past its first evidence, so that evidence that
follows at once (the next health snapshot) can still explain it away (`COUNTER_SETTLE` for a reset seen only in
falling counters, which the detector confirms only after several rows); its start and end are updated while it is
open (its id, from the first evidence, stays).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TELEMETRY_SCHEMAS, TIME_COLUMNS, TOPIC_ERRORS, TOPIC_LATENCY, TOPIC_LINK, TS, conform
from ingest.lake import LAKE_ALIAS
from ingest.lake.fault_injection import CrashPoints
from ingest.lake.raw_tables import RAW, TS_US, retry_transaction
from models.features import ERRORS_COLUMNS, LINK_COLUMNS, Detections
from models.incidents import DROP, RESET, incidents
from models.resets import ResetConfig
from models.series import NS_PER_S, Controllers, timestamps_ns
from models.slo.spec import AlertTier, Slo
from pipelines.defs.slo.slo_assets import SLI_LATENCY_COLUMNS
from pipelines.lib.partitions import Window
from pipelines.lib.slos import load
from pipelines.lib.telemetry import raw_table, read_inventory, read_maintenance
from pipelines.live.alerts import Alert, record
from pipelines.live.burn import SLO_PAGE, fast_burn_pages, live_slos
from pipelines.live.tables import LIVE_INCIDENTS, LIVE_INCIDENTS_SCHEMA, POSITION, POSITION_SCHEMA, append

# Data time carried before the newest row: the detections asset reads an hour either side of its window.
CONTEXT = timedelta(hours=1)
# Incidents whose first evidence lies this close to the carried rows' start may lack the evidence before it; they
# were recorded by an earlier round, when they were well inside.
EDGE = timedelta(minutes=10)
# The simulated fleet's link-snapshot interval, in which the settling times below are counted.
SNAPSHOT = timedelta(minutes=1)
# Data time of a controller's rows past an incident's first evidence before it is recorded: two snapshot intervals.
SETTLE = 2 * SNAPSHOT
# A reset seen only in counters that fell (and holes) is one once they stayed down for the detector's
# counter_confirm_rows link snapshots; until those rows exist, rows a host clock step put out of order look the same
# (models.resets._lasting). One more interval: the newest row seen may be another stream's.
COUNTER_SETTLE = (ResetConfig().counter_confirm_rows + 1) * SNAPSHOT
# Reset evidence that is final when it arrives.
_AT_ONCE = frozenset({"row", "uptime", "epoch"})
# A reset is an instant: its alert resolves once the controller has reported this long after it came back.
RESET_HOLD = timedelta(minutes=5)
SEVERITY = "page"
ALERT_NAMES = {RESET: "LeoControllerReset", DROP: "LeoLinkDrop", SLO_PAGE: "LeoSLOFastBurn"}
SUMMARIES = {
    RESET: "controller {subject} reset",
    DROP: "CXL link of controller {subject} dropped",
    SLO_PAGE: "SLO {subject} burns its error budget at the fast page rate",
}
# Latency rows carried for the fast-burn pages: an SLO's fast tier needs its long window (1 h) before each step.
SLO_CONTEXT = timedelta(hours=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The crash point between a round's writes and its COMMIT (reliability tests).
ROUND_STAGE = "live_round"
_STREAMS = {
    TOPIC_ERRORS: ERRORS_COLUMNS,
    TOPIC_LINK: LINK_COLUMNS,
    TOPIC_LATENCY: ("controller_id", *SLI_LATENCY_COLUMNS),
}
_CONTEXT = {TOPIC_ERRORS: CONTEXT, TOPIC_LINK: CONTEXT, TOPIC_LATENCY: SLO_CONTEXT}
_LONGEST = max(_CONTEXT.values())
# Rows a reader skips: local-DRAM baselines are not served by a controller (models.slo.sli excludes them too).
_WHERE = {TOPIC_LATENCY: "memory_tier = 'cxl'"}


def _ns(delta: timedelta) -> int:
    return int(delta.total_seconds() * NS_PER_S)


def _schema(topic: str) -> pa.Schema:
    full = TELEMETRY_SCHEMAS[topic]
    return pa.schema([full.field(name) for name in _STREAMS[topic]], metadata=full.metadata)


def _columns(topic: str) -> str:
    return ", ".join(f'"{name}"' for name in _STREAMS[topic])


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    (snapshot,) = con.execute(f"FROM {LAKE_ALIAS}.current_snapshot()").fetchone()
    return int(snapshot)


@dataclass
class Carried:
    """The rows carried between rounds per topic, complete up to `snapshot_id` for ts >= `buffer_from_ns`."""

    rows: dict[str, pa.Table]
    snapshot_id: int = 0
    buffer_from_ns: int | None = None

    @classmethod
    def empty(cls) -> Carried:
        return cls({topic: _schema(topic).empty_table() for topic in _STREAMS})

    @classmethod
    def restore(cls, con: duckdb.DuckDBPyConnection) -> Carried:
        """The state of the last committed round: its position, and its rows read back as of its snapshot."""
        row = con.execute(
            f"SELECT snapshot_id, buffer_from FROM {POSITION} ORDER BY snapshot_id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return cls.empty()
        snapshot_id, buffer_from = int(row[0]), row[1]
        rows = {
            topic: conform(
                con.execute(
                    f"SELECT {_columns(topic)} FROM {raw_table(topic)} AT (VERSION => {snapshot_id}) "
                    f"WHERE {TIME_COLUMNS[topic]} >= ? AND {_WHERE.get(topic, 'TRUE')}",
                    [_from_ns(_topic_from(topic, _to_ns(buffer_from)))],
                ).to_arrow_table(),
                _schema(topic),
            )
            for topic in _STREAMS
        }
        return cls(rows, snapshot_id, _to_ns(buffer_from))


def _inserted(con: duckdb.DuckDBPyConnection, topic: str, after: int, upto: int) -> pa.Table:
    """Rows of the topic's raw table committed in snapshots (after, upto]."""
    sql = (
        f"SELECT {_columns(topic)} FROM ducklake_table_insertions('{LAKE_ALIAS}', '{RAW}', "
        f"'{raw_table(topic).split('.')[1]}', {after + 1}, {upto}) WHERE {_WHERE.get(topic, 'TRUE')}"
    )
    return conform(con.execute(sql).to_arrow_table(), _schema(topic))


def _tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    names = {
        f"{RAW}.{name}"
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?", [RAW]
        ).fetchall()
    }
    return all(raw_table(topic) in names for topic in _STREAMS)


@dataclass(frozen=True)
class Round:
    """What one round read and recorded."""

    snapshot_id: int
    new_rows: int
    fired: int
    resolved: int
    alerts: int


@dataclass(frozen=True)
class _Change:
    """An open incident's row as detected now; `ends_ns` (the alert's endsAt, data time) when it resolves."""

    incident: dict
    ends_ns: int | None = None


@dataclass
class LiveDetector:
    """Rounds of the live path over one read-write lake connection; its state is restored from the lake."""

    con: duckdb.DuckDBPyConnection
    crash_points: CrashPoints | None = None  # reliability tests only (ingest/lake/fault_injection.py)
    carried: Carried = field(init=False)

    slos: list[tuple[Slo, AlertTier]] = field(init=False)

    def __post_init__(self) -> None:
        self.carried = Carried.restore(self.con)
        self.slos = live_slos(load(), SLO_CONTEXT - CONTEXT)

    def round(self, now: datetime | None = None) -> Round | None:
        """Read what was committed since the position, detect, record; None when nothing new was committed."""
        target = current_snapshot(self.con)
        if target <= self.carried.snapshot_id or not _tables_exist(self.con):
            return None
        new = {topic: _inserted(self.con, topic, self.carried.snapshot_id, target) for topic in _STREAMS}
        if not any(table.num_rows for table in new.values()):
            # Other tables' commits (and this process's own): nothing to detect from, nothing to store.
            self.carried.snapshot_id = target
            return None
        rows = {topic: pa.concat_tables([self.carried.rows[topic], new[topic]]) for topic in _STREAMS}
        seen = _controller_high_water(rows)
        buffer_from = self.carried.buffer_from_ns or 0
        if seen:
            buffer_from = max(buffer_from, max(seen.values()) - _ns(_LONGEST))
        rows = {topic: _since(table, topic, _topic_from(topic, buffer_from)) for topic, table in rows.items()}
        fired, changed = self._changes(rows, seen, buffer_from)
        now = now or datetime.now(UTC)
        recorded, _ = retry_transaction(lambda: self._commit(fired, changed, target, buffer_from, now))
        self.carried = Carried(rows, target, buffer_from)
        resolved = sum(c.ends_ns is not None for c in changed)
        return Round(target, sum(t.num_rows for t in new.values()), len(fired), resolved, recorded)

    def _commit(self, fired: list[dict], changed: list[_Change], target: int, buffer_from: int, now: datetime) -> int:
        """Incidents, alerts and the position in one transaction; returns the alert changes recorded."""
        resolved = [c for c in changed if c.ends_ns is not None]
        alerts = [_alert(row) for row in fired]
        alerts += [_alert(c.incident).resolved(_from_ns(c.ends_ns)) for c in resolved]
        incidents_rows = [{**row, "fired_at": now, "resolved_at": None} for row in fired]
        incidents_rows += [{**c.incident, "resolved_at": now if c.ends_ns is not None else None} for c in changed]
        position = {"snapshot_id": target, "buffer_from": _from_ns(buffer_from), "committed_at": now}
        self.con.execute("BEGIN TRANSACTION")
        try:
            if changed:
                changed_ids = pa.table({"incident_id": [c.incident["incident_id"] for c in changed]})
                self.con.register("changed_incidents", changed_ids)
                try:
                    self.con.execute(
                        f"DELETE FROM {LIVE_INCIDENTS} WHERE incident_id IN (SELECT incident_id FROM changed_incidents)"
                    )
                finally:
                    self.con.unregister("changed_incidents")
            append(self.con, LIVE_INCIDENTS, pa.Table.from_pylist(incidents_rows, schema=LIVE_INCIDENTS_SCHEMA))
            recorded = record(self.con, alerts, now)
            append(self.con, POSITION, pa.Table.from_pylist([position], schema=POSITION_SCHEMA))
            if self.crash_points:
                self.crash_points.reach(ROUND_STAGE)
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
                self.con.execute("ROLLBACK")
            raise
        return recorded

    def _changes(
        self, rows: dict[str, pa.Table], seen: dict[str, int], buffer_from: int
    ) -> tuple[list[dict], list[_Change]]:
        """(incidents to fire, open incidents that changed or resolve)."""
        errors, link = rows[TOPIC_ERRORS], rows[TOPIC_LINK]
        if not errors.num_rows and not link.num_rows:
            return [], []
        inventory = read_inventory(self.con)
        controllers = Controllers.of(
            inventory.column("controller_id"),
            errors.column("controller_id"),
            link.column("controller_id"),
        )
        # Planned resets (inside a declared maintenance window) are no incidents, as in the hourly marts.
        maintenance = read_maintenance(self.con, Window(_from_ns(buffer_from), _from_ns(max(seen.values()))))
        found = Detections.from_tables(errors, link, controllers, maintenance)
        # SLO pages are evaluated up to the whole steps every controller has had SETTLE to report.
        until = max(seen.values()) - _ns(SETTLE)
        pages = fast_burn_pages(rows[TOPIC_LATENCY], inventory, self.slos, until)
        current = _microseconds(pa.concat_tables([incidents(found.resets, found.incidents), pages])).to_pylist()
        burning = {row["subject"] for row in current if row["kind"] == SLO_PAGE and row["end_ts"] is None}
        # The incidents recorded where this round looks (and every open one): one read.
        recorded = self.con.execute(
            f"SELECT * EXCLUDE (resolved_at), resolved_at IS NULL AS open FROM {LIVE_INCIDENTS} "
            "WHERE resolved_at IS NULL OR detected_ts >= ?",
            [_from_ns(buffer_from)],
        ).to_arrow_table()
        known = set(recorded["incident_id"].to_pylist())
        stored = {row["incident_id"]: row for row in recorded.filter(recorded["open"]).drop(["open"]).to_pylist()}
        # Where the carried rows let the detectors see an incident whole: EDGE after the link and error rows begin,
        # the fast tier's long window after the latency rows begin.
        edges = {kind: _topic_from(TOPIC_LINK, buffer_from) + _ns(EDGE) for kind in (RESET, DROP)}
        edges[SLO_PAGE] = _topic_from(TOPIC_LATENCY, buffer_from) + _ns(_LONGEST - CONTEXT)
        fired: list[dict] = []
        changed: list[_Change] = []
        for row in current:
            detected = _to_ns(row["detected_ts"])
            high = until if row["kind"] == SLO_PAGE else seen.get(row["subject"], 0)
            if detected < edges[row["kind"]] or (row["kind"] != SLO_PAGE and high < detected + _ns(_settle(row))):
                continue
            previous = stored.pop(row["incident_id"], None)
            if row["incident_id"] not in known:
                fired.append(row)
            elif previous is not None:
                now_seen = {**previous, **{k: row[k] for k in ("start_ts", "end_ts", "evidence")}}
                ends = _ends(row, high)
                if ends is not None or _moved(previous, now_seen):
                    changed.append(_Change(now_seen, ends))
        # Open incidents the detectors no longer find where they should see them (their evidence was revised, so
        # their start and id moved): withdrawn, resolved at the controller's newest row.
        # A page whose start slid out of the carried rows ends when its group no longer burns.
        for previous in stored.values():
            if previous["kind"] == SLO_PAGE:
                if previous["subject"] not in burning:
                    changed.append(_Change({**previous, "end_ts": _from_ns(until)}, until))
            elif _to_ns(previous["detected_ts"]) >= edges[previous["kind"]]:
                withdrawn = {**previous, "evidence": f"{previous['evidence']},withdrawn"}
                changed.append(_Change(withdrawn, seen.get(previous["subject"], 0)))
        return fired, changed


def _settle(incident: dict) -> timedelta:
    """How far a controller's rows must reach past an incident's first evidence before it is recorded."""
    if incident["kind"] == RESET and not _AT_ONCE & set((incident["evidence"] or "").split(",")):
        return COUNTER_SETTLE
    return SETTLE


def _microseconds(table: pa.Table) -> pa.Table:
    """Times truncated to the lake's microseconds (as the ids are), so rows compare with what was stored."""
    for name in ("start_ts", "detected_ts", "end_ts"):
        column = pc.cast(table[name], TS_US, safe=False)
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def _moved(before: dict, after: dict) -> bool:
    """Whether an open incident's start, end or evidence changed (compared at the lake's microseconds)."""
    return (
        any(
            (_to_ns(before[k]) if before[k] is not None else None)
            != (_to_ns(after[k]) if after[k] is not None else None)
            for k in ("start_ts", "end_ts")
        )
        or before["evidence"] != after["evidence"]
    )


def _ends(incident: dict, high: int) -> int | None:
    """The data time an open incident's alert resolves at, or None while it lasts: a drop when its link is up
    again, a reset `RESET_HOLD` after the controller came back (its first evidence)."""
    if incident["kind"] in (DROP, SLO_PAGE):
        return None if incident["end_ts"] is None else _to_ns(incident["end_ts"])
    back = _to_ns(incident["detected_ts"])
    return back + _ns(RESET_HOLD) if high >= back + _ns(RESET_HOLD) else None


def _alert(incident: dict) -> Alert:
    """The firing alert of an incident: one alert per incident (its id is a label)."""
    kind, subject = incident["kind"], incident["subject"]
    if kind == SLO_PAGE:
        slo, _, group = subject.partition("/")
        about = {"slo": slo, "group": group}
    else:
        about = {"controller_id": subject}
    labels = {
        "alertname": ALERT_NAMES[kind],
        "severity": SEVERITY,
        **about,
        "incident_id": incident["incident_id"],
        "service": "leo-fleet",
    }
    annotations = {
        "summary": SUMMARIES[kind].format(subject=subject),
        "evidence": incident["evidence"] or "",
        "detected_at": _from_ns(_to_ns(incident["detected_ts"])).isoformat(),
    }
    return Alert(labels, _from_ns(_to_ns(incident["start_ts"])), incident["incident_id"], annotations)


def _to_ns(value: datetime) -> int:
    return int(timestamps_ns(pa.array([value], pa.timestamp("us", tz="UTC")).cast(TS))[0])


def _from_ns(ns: int) -> datetime:
    """The instant at the lake's microseconds, exactly (a float of seconds would round some of them)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _topic_from(topic: str, buffer_from: int) -> int:
    """Where a topic's carried rows begin: each carries its own context, `buffer_from` the longest."""
    return buffer_from + _ns(_LONGEST - _CONTEXT[topic])


def _since(table: pa.Table, topic: str, from_ns: int) -> pa.Table:
    ts = timestamps_ns(table.column(TIME_COLUMNS[topic]))
    return table.filter(pa.array(ts >= from_ns))


def _controller_high_water(rows: dict[str, pa.Table]) -> dict[str, int]:
    """Newest row time (ns) per controller over both streams: how far each controller's data has arrived."""
    seen: dict[str, int] = {}
    for topic, table in rows.items():
        if not table.num_rows:
            continue
        ts = pa.array(timestamps_ns(table.column(TIME_COLUMNS[topic])))
        grouped = (
            pa.table({"c": table.column("controller_id").cast(pa.string()), "t": ts})
            .group_by("c")
            .aggregate([("t", "max")])
        )
        for controller, high in zip(grouped["c"].to_pylist(), grouped["t_max"].to_pylist(), strict=True):
            seen[controller] = max(seen.get(controller, 0), high)
    return seen
