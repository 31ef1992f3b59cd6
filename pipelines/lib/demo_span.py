"""The span of time a demo's lake holds, and the partition settings that show exactly that span in Dagster.

Dagster fixes a code location's partitions when it loads (pipelines/lib/partitions.py reads them from the settings),
so the demo pins them to its span in its own process before anything imports the partitions, records the span in
its marker file, and `leo-fleet ui` pins them again from that record for the UI it starts: the Catalog then lists
the demo's hours, all materialized, and no hour outside them. Nothing here imports the partitions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.settings import PARTITIONS_END_ENV, PARTITIONS_START_ENV

# Written into the data directory by the demo: its presence means the lake there holds demo data only.
MARKER = ".leo-fleet-demo"
NOTE = "this data directory holds `leo-fleet demo` output; the demo replaces it"
HOUR = timedelta(hours=1)


def default_start(hours: float, now: datetime | None = None) -> datetime:
    """A recent span that ends at the last midnight UTC, so every daily partition in it is complete."""
    midnight = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(hours=hours)


def partition_settings(start: datetime, end: datetime) -> dict[str, str]:
    """The environment that makes the partitions cover [start, end): from its first day to the end of its last hour."""
    last_hour = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end_hour = last_hour if last_hour == end else last_hour + HOUR
    return {PARTITIONS_START_ENV: start.astimezone(UTC).date().isoformat(), PARTITIONS_END_ENV: end_hour.isoformat()}


def write_marker(data_dir: Path, span: tuple[datetime, datetime] | None = None) -> None:
    """Mark the data directory as the demo's, with the span its lake holds once known."""
    record: dict[str, str] = {"note": NOTE}
    if span is not None:
        record |= {"start": span[0].isoformat(), "end": span[1].isoformat()}
    (data_dir / MARKER).write_text(json.dumps(record, indent=1) + "\n")


def recorded_span(data_dir: Path) -> tuple[datetime, datetime] | None:
    """The span the demo recorded in `data_dir`; None when it is no demo's or the record has none."""
    try:
        record = json.loads((data_dir / MARKER).read_text())
        return datetime.fromisoformat(record["start"]), datetime.fromisoformat(record["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
