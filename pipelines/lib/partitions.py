"""Time partitions shared by every asset, and the time window a run covers.

Marts are hourly; detection quality and the SLO report are daily. The partitions span what the lake can hold:
they start on `Settings.partitions_start` (LEO_FLEET_PARTITIONS_START), by default the first day of telemetry in the
lake (2026-01-05, the simulator's default start, while the lake is empty), and end at `Settings.partitions_end`
(LEO_FLEET_PARTITIONS_END), by default the last complete hour. So the Catalog lists no partition that could never
have data: `leo-fleet demo` pins both ends to its span, and `leo-fleet ui` serves a demo's lake with that span.
Dagster fixes a code location's partitions when it loads: the start and end are read once per process, and a
running `dagster dev` picks up new settings (or a lake's first data) only when it reloads the location.

Every hourly asset backfills up to HOURS_PER_RUN partitions in one run: a backfill over a day runs each asset twice
over 12 hours (one lake read, one model call, one transaction each) instead of 24 times, which is what keeps a
fleet-day under minutes, and a backfill over a week runs 14 of them instead of one, which is what keeps its memory
bounded: a run holds its whole span's output until it publishes it, and one run over a 10,000-controller week took
the hourly stage past 16 GiB. Daily assets backfill in a single run: their outputs are a row per controller and day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import duckdb

from ingest.contract import TABLE_NAMES, TIME_COLUMNS
from ingest.lake import connect
from ingest.lake.raw_tables import RAW
from ingest.settings import DEFAULT_PARTITIONS_START, Settings

HOUR_FORMAT = "%Y-%m-%d-%H:%M"
DAY_FORMAT = "%Y-%m-%d"
MONTH_FORMAT = "%Y-%m"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def first_data_day(settings: Settings) -> date | None:
    """The day of the earliest telemetry in the lake; None for a lake without any (or no lake yet)."""
    try:
        con = connect(settings, read_only=True)
    except FileNotFoundError:
        return None
    try:
        columns = " UNION ALL ".join(
            f"SELECT min({column}) AS t FROM {RAW}.{TABLE_NAMES[topic]}" for topic, column in TIME_COLUMNS.items()
        )
        (first,) = con.execute(f"SELECT min(t) FROM ({columns})").fetchone()
    except duckdb.CatalogException:  # a lake whose raw tables the loader has not created yet
        return None
    finally:
        con.close()
    return None if first is None else first.astimezone(UTC).date()


def _start(settings: Settings) -> str:
    """The first partition day as Dagster's start dates take it (YYYY-MM-DD): the setting, else the lake's first."""
    return (settings.partitions_start or first_data_day(settings) or DEFAULT_PARTITIONS_START).isoformat()


def _ends(settings: Settings) -> tuple[str | None, str | None, str | None, str | None]:
    """The ends of the hourly, daily, ISO-weekly and monthly partitions as Dagster's end dates take them; None: up
    to the last complete hour, day, week or month. A set end inside a day, week or month is rounded up to the
    period's end, so that period keeps its partition: it holds data, if not a whole period's. (With a mid-week end
    Dagster still lists the week, but the UI showed its materialization as missing: tried.)"""
    end = settings.partitions_end
    if end is None:
        return None, None, None, None
    day_end = end.date() if end.time() == time(0) else end.date() + timedelta(days=1)
    week_end = day_end + timedelta(days=-day_end.weekday() % 7)  # the Monday on or after
    last_month = (day_end - timedelta(days=1)).replace(day=1)
    month_end = (last_month + timedelta(days=31)).replace(day=1)
    return (
        end.strftime(HOUR_FORMAT),
        day_end.strftime(DAY_FORMAT),
        week_end.strftime(DAY_FORMAT),
        month_end.strftime(MONTH_FORMAT),
    )


# Read once, when the code location (or any process importing this module) loads: Dagster needs them fixed.
_SETTINGS = Settings.from_env()
START = _start(_SETTINGS)
END, DAY_END, WEEK_END, MONTH_END = _ends(_SETTINGS)


def partitions_start() -> str:
    """The first day of this process's partitions (YYYY-MM-DD)."""
    return START


HOURLY = dg.HourlyPartitionsDefinition(start_date=f"{START}-00:00", end_date=END, timezone="UTC", fmt=HOUR_FORMAT)
DAILY = dg.DailyPartitionsDefinition(start_date=START, end_date=DAY_END, timezone="UTC", fmt=DAY_FORMAT)
SINGLE_RUN = dg.BackfillPolicy.single_run()
# The first three 12-hour runs of a 10,000-controller week's hourly stage peaked at 2.35-2.45 GiB RSS; over 48 hours
# the latency rollups alone took 5.0 GiB (docs/scale-out.md).
HOURS_PER_RUN = 12
HOURLY_BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=HOURS_PER_RUN)


def backfill_policy(partitions_def: dg.PartitionsDefinition | None) -> dg.BackfillPolicy | None:
    """How a backfill of an asset with these partitions is split into runs (None: unpartitioned, no backfills)."""
    if partitions_def is None:
        return None
    return HOURLY_BACKFILL if partitions_def == HOURLY else SINGLE_RUN


# Raw rows are read this much at a time: each lake query has a fixed cost (~0.3 s), each hour of a
# 1,000-controller fleet's latency histograms ~150 MB in memory.
READ_CHUNK = timedelta(hours=4)
# A larger fleet reads raw latency in proportionally shorter chunks, so a chunk holds about as many rows whatever
# the fleet: 4-hour chunks of a 10,000-controller fleet took latency_rollups to 6.2 GiB peak RSS, and 1-hour ones,
# two of them in memory with the read-ahead, took the hourly stage to 4.03 GiB. A chunk is a whole number of
# MIN_READ_CHUNK, so an SLI step (pipelines.lib.slos.STEP_S, 5 minutes) never spans two reads; an hour may, and
# the hourly rollups merge its pieces.
READ_CHUNK_CONTROLLERS = 1000
MIN_READ_CHUNK = timedelta(minutes=5)


def read_chunk(controllers: int) -> timedelta:
    """The span of one read of raw latency for a fleet of `controllers`: a whole number of MIN_READ_CHUNK, at least
    one."""
    span = READ_CHUNK * min(1.0, READ_CHUNK_CONTROLLERS / max(controllers, 1))
    return MIN_READ_CHUNK * max(1, int(span / MIN_READ_CHUNK))


@dataclass(frozen=True)
class Window:
    """A half-open UTC time range [start, end): the partitions one run materializes."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> Window:
        window = context.partition_time_window
        return cls(window.start.astimezone(UTC), window.end.astimezone(UTC))

    @classmethod
    def of_partition(cls, partitions_def: dg.PartitionsDefinition, key: str) -> Window:
        """The time window of one partition of a time-partitioned definition."""
        window = partitions_def.time_window_for_partition_key(key)
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
