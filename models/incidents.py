"""Resets and link drops as one list of incidents with stable ids: what the live path alerts on and what the hourly
marts hold, in one shape, so that the two can be compared row by row (same id = same incident).

An incident's id is a digest of its kind, its subject (the controller) and the arrival of its first evidence
(detected_ts, to the microsecond: the lake's precision). Found by the same detectors in the same rows, live and
hourly give it the same id; and it is known from the first evidence on, while the start may still move earlier as
later evidence arrives (a link_up reporting when the outage began, an uptime pinning a silent reset).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TS
from models.series import timestamps_ns

DROP = "drop"
RESET = "reset"
INCIDENT_SCHEMA = pa.schema(
    [
        pa.field("incident_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # reset | drop
        pa.field("subject", pa.string(), nullable=False),  # the controller
        pa.field("start_ts", TS, nullable=False),
        pa.field("detected_ts", TS, nullable=False),
        pa.field("end_ts", TS),  # link up for a drop; null for a reset (an instant) and for a drop still open
        pa.field("evidence", pa.string()),
    ]
)


def incident_id(kind: str, subject: str, detected_ns: int) -> str:
    """The id of one incident: kind, subject and first evidence (whole microseconds)."""
    text = f"{kind}|{subject}|{detected_ns // 1000}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def incidents(resets: pa.Table, link_events: pa.Table) -> pa.Table:
    """Resets (models.resets.RESETS_SCHEMA) and the drops among link incidents (models.link_events.INCIDENTS_SCHEMA)
    in INCIDENT_SCHEMA, sorted by start. A planned reset (inside a declared maintenance window) is no incident."""
    drops = link_events.filter(pc.equal(link_events["kind"], DROP))
    resets = resets.filter(pc.invert(resets["planned"]))
    parts = [
        _part(RESET, resets["controller_id"], resets["reset_ts"], resets["detected_ts"], None, resets["evidence"]),
        _part(
            DROP, drops["controller_id"], drops["start_ts"], drops["detected_ts"], drops["end_ts"], drops["evidence"]
        ),
    ]
    return pa.concat_tables(parts).sort_by([("start_ts", "ascending"), ("incident_id", "ascending")])


def _part(kind, subjects, starts, detected, ends, evidence) -> pa.Table:
    n = len(subjects)
    detected_ns = timestamps_ns(detected.cast(TS))
    ids = [incident_id(kind, s, int(t)) for s, t in zip(subjects.to_pylist(), detected_ns.tolist(), strict=True)]
    return pa.table(
        {
            "incident_id": pa.array(ids, pa.string()),
            "kind": pa.array([kind] * n, pa.string()),
            "subject": subjects.cast(pa.string()),
            "start_ts": starts.cast(TS),
            "detected_ts": detected.cast(TS),
            "end_ts": pa.nulls(n, TS) if ends is None else ends.cast(TS),
            "evidence": evidence.cast(pa.string()),
        },
        schema=INCIDENT_SCHEMA,
    )


@dataclass(frozen=True)
class Reconciliation:
    """Live incidents of a window against the hourly marts': matched by id, then compared on start and end."""

    matched: int
    only_live: list[str]
    only_hourly: list[str]
    different_times: list[str]  # same id, different start or end (e.g. still open live, closed in the marts)

    @property
    def differences(self) -> int:
        return len(self.only_live) + len(self.only_hourly) + len(self.different_times)


def reconcile(live: pa.Table, hourly: pa.Table, open_ended: frozenset[str] = frozenset()) -> Reconciliation:
    """Compare two INCIDENT_SCHEMA tables (at least incident_id, start_ts, end_ts) of the same window; for the ids
    in `open_ended` (an hourly row that cannot know its end yet, e.g. an SLO page still burning at the end of the
    hour it was evaluated in) only the start is compared."""
    live_rows, hourly_rows = _by_id(live), _by_id(hourly)
    for key in open_ended & live_rows.keys():
        live_rows[key]["end_ts"] = hourly_rows.get(key, {}).get("end_ts")
    both = live_rows.keys() & hourly_rows.keys()
    different = sorted(i for i in both if live_rows[i] != hourly_rows[i])
    return Reconciliation(
        matched=len(both) - len(different),
        only_live=sorted(live_rows.keys() - hourly_rows.keys()),
        only_hourly=sorted(hourly_rows.keys() - live_rows.keys()),
        different_times=different,
    )


def _by_id(table: pa.Table) -> dict[str, dict]:
    """id -> (id, start, end), times at the lake's precision (microseconds) so both sides compare exactly."""
    us = pa.timestamp("us", tz="UTC")
    times = pa.table(
        {
            "incident_id": table["incident_id"],
            "start_ts": table["start_ts"].cast(us),
            "end_ts": table["end_ts"].cast(us),
        }
    )
    return {row["incident_id"]: row for row in times.to_pylist()}
