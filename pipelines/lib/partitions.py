"""Time partitions shared by every asset, and the time window a run covers.

Marts are hourly; detection quality and the SLO report are daily. Partitions start on `Settings.partitions_start`
(LEO_FLEET_PARTITIONS_START, default 2026-01-05, the simulator's default start) and end at the last complete hour,
so a backfill can reach any telemetry the lake holds from that day on. To analyse older telemetry, set the variable
to an earlier day before starting Dagster: the start is part of the code location, not of the instance.

Every hourly asset has a single-run backfill policy: a backfill over a day runs each asset once over 24 hours (one
lake read, one model call, one transaction) instead of 24 times, which is what keeps a fleet-day under minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingest.settings import Settings

HOUR_FORMAT = "%Y-%m-%d-%H:%M"
DAY_FORMAT = "%Y-%m-%d"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def partitions_start() -> str:
    """The first partition day as Dagster's start dates take it (YYYY-MM-DD), from the settings."""
    return Settings.from_env().partitions_start.isoformat()


HOURLY = dg.HourlyPartitionsDefinition(start_date=f"{partitions_start()}-00:00", timezone="UTC", fmt=HOUR_FORMAT)
DAILY = dg.DailyPartitionsDefinition(start_date=partitions_start(), timezone="UTC", fmt=DAY_FORMAT)
SINGLE_RUN = dg.BackfillPolicy.single_run()
# Raw rows are read this much at a time: each lake query has a fixed cost (~0.3 s), each hour of a
# 1,000-controller fleet's latency histograms ~150 MB in memory.
READ_CHUNK = timedelta(hours=4)


@dataclass(frozen=True)
class Window:
    """A half-open UTC time range [start, end): the partitions one run materializes."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Window:
        window = context.partition_time_window
        return cls(window.start.astimezone(UTC), window.end.astimezone(UTC))

    def widened(self, before: timedelta, after: timedelta = timedelta(0)) -> Window:
        """Context that analytics need but never write: `before` for baselines and previous counter values,
        `after` for what follows an event that began inside the window (a link coming back up)."""
        return Window(self.start - before, self.end + after)

    def chunks(self, span: timedelta = READ_CHUNK) -> Iterator[Window]:
        """Consecutive sub-windows of at most `span`: reading a long backfill piecewise keeps memory flat."""
        start = self.start
        while start < self.end:
            yield Window(start, min(start + span, self.end))
            start += span

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"


def to_ns(moment: datetime) -> int:
    """A timezone-aware time as int64 nanoseconds since the epoch (exact): the unit models/ computes in."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
