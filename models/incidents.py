"""Resets and link drops as one list of incidents with stable ids: what the live path alerts on and what the hourly
marts hold, in one shape, so that the two can be compared row by row (same id = same incident).

An incident's id is a digest of its kind, its subject (the controller) and its start time to the microsecond (the
lake's precision): found by the same detectors in the same rows, live and hourly give it the same id.
"""

from __future__ import annotations

import hashlib

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


def incident_id(kind: str, subject: str, start_ns: int) -> str:
    """The id of one incident: kind, subject and start (whole microseconds)."""
    text = f"{kind}|{subject}|{start_ns // 1000}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def incidents(resets: pa.Table, link_events: pa.Table) -> pa.Table:
    """Resets (models.resets.RESETS_SCHEMA) and the drops among link incidents (models.link_events.INCIDENTS_SCHEMA)
    in INCIDENT_SCHEMA, sorted by start."""
    drops = link_events.filter(pc.equal(link_events["kind"], DROP))
    parts = [
        _part(RESET, resets["controller_id"], resets["reset_ts"], resets["detected_ts"], None, resets["evidence"]),
        _part(
            DROP, drops["controller_id"], drops["start_ts"], drops["detected_ts"], drops["end_ts"], drops["evidence"]
        ),
    ]
    return pa.concat_tables(parts).sort_by([("start_ts", "ascending"), ("incident_id", "ascending")])


def _part(kind, subjects, starts, detected, ends, evidence) -> pa.Table:
    n = len(subjects)
    start_ns = timestamps_ns(starts.cast(TS))
    ids = [incident_id(kind, s, int(t)) for s, t in zip(subjects.to_pylist(), start_ns.tolist(), strict=True)]
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
