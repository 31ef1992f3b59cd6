"""Alerts in Alertmanager's API shape (`POST /api/v2/alerts`): labels, annotations, startsAt, endsAt, generatorURL.

An alert is identified by its labels (Alertmanager's own rule), so its fingerprint is a digest of the sorted label
set; a resolved alert is the same labels with endsAt set. The live path records each (fingerprint, status) once,
in `sre.alerts` and `sre.alert_outbox` in one transaction (`record`); the delivery posts outbox rows in order.
Posting the same labels, startsAt and endsAt again is a no-op for Alertmanager, which is what makes a re-post
after a crash harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from pipelines.live.tables import ALERTS, ALERTS_SCHEMA, OUTBOX, OUTBOX_SCHEMA, append

FIRING = "firing"
RESOLVED = "resolved"
GENERATOR = "leo-fleet://live"


def fingerprint(labels: dict[str, str]) -> str:
    """A stable digest of the label set (names and values, sorted): the same alert always has the same one."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Alert:
    """One state of one alert; `ends_at` set means resolved."""

    labels: dict[str, str]
    starts_at: datetime
    incident_id: str
    annotations: dict[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    generator_url: str = GENERATOR

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def status(self) -> str:
        return FIRING if self.ends_at is None else RESOLVED

    def resolved(self, ends_at: datetime) -> Alert:
        return Alert(self.labels, self.starts_at, self.incident_id, self.annotations, ends_at, self.generator_url)


def postable(row: dict) -> dict:
    """Alertmanager's postable alert for an outbox row; a firing alert carries no endsAt."""
    body = {
        "labels": json.loads(row["labels"]),
        "annotations": json.loads(row["annotations"]),
        "startsAt": _rfc3339(row["starts_at"]),
        "generatorURL": row["generator_url"],
    }
    if row["ends_at"] is not None:
        body["endsAt"] = _rfc3339(row["ends_at"])
    return body


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def recorded(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Status of every alert recorded so far, by fingerprint."""
    return dict(con.execute(f"SELECT fingerprint, status FROM {ALERTS}").fetchall())


def record(con: duckdb.DuckDBPyConnection, alerts: Iterable[Alert], now: datetime) -> int:
    """Inside the caller's transaction: the alerts whose (fingerprint, status) is new replace their row of
    `sre.alerts` and are appended to the outbox with the next sequence numbers; returns how many."""
    known = recorded(con)
    changes = {a.fingerprint: a for a in alerts if known.get(a.fingerprint) != a.status}
    if not changes:
        return 0
    (last,) = con.execute(f"SELECT coalesce(max(seq), 0) FROM {OUTBOX}").fetchone()
    rows = [
        {
            "fingerprint": key,
            "status": alert.status,
            "alertname": alert.labels["alertname"],
            "labels": json.dumps(alert.labels, sort_keys=True),
            "annotations": json.dumps(alert.annotations, sort_keys=True),
            "starts_at": alert.starts_at,
            "ends_at": alert.ends_at,
            "generator_url": alert.generator_url,
            "incident_id": alert.incident_id,
            "recorded_at": now,
        }
        for key, alert in changes.items()
    ]
    keys = pa.table({"fingerprint": list(changes)})
    con.register("changed_alerts", keys)
    try:
        con.execute(f"DELETE FROM {ALERTS} WHERE fingerprint IN (SELECT fingerprint FROM changed_alerts)")
    finally:
        con.unregister("changed_alerts")
    append(con, ALERTS, pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA))
    seqs = [{"seq": last + i + 1, **row} for i, row in enumerate(rows)]
    append(con, OUTBOX, pa.Table.from_pylist(seqs, schema=OUTBOX_SCHEMA))
    return len(rows)


def posts(rows: list[dict], group_by: str = "alertname") -> list[list[dict]]:
    """Outbox rows (in sequence order) grouped into request bodies, as Alertmanager groups notifications: one post
    per value of `group_by`; a second change of the same alert goes into a later post, so that a firing and its
    resolution are both delivered, in order. Identical repeats are dropped."""
    out: list[list[dict]] = []
    open_posts: dict[str, tuple[list[dict], set[str]]] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if (row["fingerprint"], row["status"]) in seen:
            continue
        seen.add((row["fingerprint"], row["status"]))
        group = json.loads(row["labels"]).get(group_by, "")
        current = open_posts.get(group)
        if current is None or row["fingerprint"] in current[1]:
            current = ([], set())
            open_posts[group] = current
            out.append(current[0])
        current[0].append(postable(row))
        current[1].add(row["fingerprint"])
    return out
