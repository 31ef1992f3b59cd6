"""Tail-latency anomalies of the fleet: every controller's and the fleet's p99 and p99.9 series scored by
models.latency_detector, and the episodes they form.

The series come from merged histograms (models.rollup rows with the histogram columns): a controller's quantile is
read from its own merged buckets, the fleet's from every controller's buckets merged per interval, never from
averaged percentiles. An interval is anomalous where the detector flags it (score >= DetectorParams.flag_threshold:
z = z_half = 4.5, placed near NAB's swept threshold, docs/detector_quality.md; nothing tuned on simulator truth);
an episode is a run of anomalous intervals of one series with no unflagged or missing interval between them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import described
from models.grouping import group_ids
from models.histogram import merge_table, with_quantiles
from models.latency_detector import DetectorParams, score_table

# History read before a window so that its first interval is scored with a baseline: a week of hourly points
# (168) gives the detector's daily seasonal model its two cycles and a baseline of 168 points. Its full baseline
# (DetectorParams.baseline_points, 512 points = 21 days of hours) would read three times the rows every hour for
# little. So a window's scores equal those of the series' whole history only while the series is under a week old;
# after that its baseline holds the last week, not the last 21 days.
LOOKBACK = timedelta(days=7)
# The detector as tuned on NAB: its flag threshold (score 0.5, z = z_half = 4.5) marks an anomalous interval.
PARAMS = DetectorParams()
FLEET = "fleet"  # the controller_id and host of the fleet's own series
QUANTILES = {"p99": "p99_ns", "p99.9": "p999_ns"}
SERIES_KEYS = ("controller_id", "host", "memory_tier", "op", "quantile")
_TS = pa.timestamp("ns", tz="UTC")

SCORED_SCHEMA = pa.schema(
    [
        described("controller_id", pa.string(), "the controller, or fleet for the fleet's own series", nullable=False),
        described("host", pa.string(), "the controller's host, or fleet for the fleet's own series", nullable=False),
        described("memory_tier", pa.string(), "the memory measured: cxl or local_dram", nullable=False),
        described("op", pa.string(), "the operation measured", nullable=False),
        described("quantile", pa.string(), "the tail quantile scored: p99 or p99.9", nullable=False),
        described("window_start", _TS, "start of the interval (UTC)", nullable=False),
        described("window_s", pa.uint32(), "length of the interval, seconds", nullable=False),
        described(
            "value_ns", pa.float64(), "the quantile in the interval from the merged histograms, ns; null: no samples"
        ),
        described("expected_ns", pa.float64(), "the detector's prediction, ns; null before it has a baseline"),
        # The normal range: the values this one interval could take without being flagged on its own
        # (expected -+ z_half x the detector's spread), floored at 0.
        described(
            "normal_low_ns",
            pa.float64(),
            "low end of the normal range, ns: expected - z_half x the detector's spread, floored at 0",
        ),
        described(
            "normal_high_ns",
            pa.float64(),
            "high end of the normal range, ns: expected + z_half x the detector's spread",
        ),
        described(
            "score",
            pa.float64(),
            "the detector's anomaly score of the interval: higher is more unusual",
            nullable=False,
        ),
        described("anomalous", pa.bool_(), "true when the detector flagged the interval", nullable=False),
        described("episode_start", _TS, "start of the episode this anomalous interval belongs to (UTC)"),
        described("burn_1h", pa.float64(), "the controller's latency SLO burn rate over the hour up to the interval"),
    ]
)
SERIES_SCHEMA = pa.schema(SCORED_SCHEMA.field(name) for name in (*SERIES_KEYS, "window_start", "window_s", "value_ns"))
# Each controller's SLO burn per interval, attached to its scored rows.
BURN_SCHEMA = pa.schema(SCORED_SCHEMA.field(name) for name in ("controller_id", "window_start", "burn_1h"))
EPISODE_SCHEMA = pa.schema(
    [
        *(SCORED_SCHEMA.field(name) for name in SERIES_KEYS),
        pa.field("start", _TS, nullable=False),
        pa.field("peak_at", _TS, nullable=False),
        pa.field("end", _TS),  # null while the episode is still open at the series' last interval
        pa.field("intervals", pa.int64(), nullable=False),
        pa.field("peak_score", pa.float64(), nullable=False),
        pa.field("peak_value_ns", pa.float64()),
        pa.field("normal_low_ns", pa.float64()),  # at the start
        pa.field("normal_high_ns", pa.float64()),
        pa.field("burn_1h", pa.float64()),  # at the peak
    ]
)


def fleet_quantiles(rollups: pa.Table) -> pa.Table:
    """The fleet's own rows (controller_id and host FLEET) of rollup rows with histogram columns: every controller's
    histogram merged per tier, op and interval, with its p99_ns and p999_ns. Rollup rows of different intervals
    merge apart, so a caller may merge a window a part at a time."""
    fleet = with_quantiles(merge_table(rollups, ["memory_tier", "op", "window_start", "window_s"]))
    fleet = fleet.append_column("controller_id", pa.array([FLEET] * fleet.num_rows, pa.string()))
    return fleet.append_column("host", pa.array([FLEET] * fleet.num_rows, pa.string()))


def quantile_series(rows: pa.Table) -> pa.Table:
    """Long series rows (SERIES_KEYS, window_start, window_s, value_ns): the p99 and p99.9 per controller, tier, op
    and interval of `rows` (controller_id, host, memory_tier, op, window_start, window_s, p99_ns, p999_ns: a
    controller's rollup rows, or the fleet's from `fleet_quantiles`)."""
    parts = [
        pa.table(
            {
                **{key: rows[key] for key in ("controller_id", "host", "memory_tier", "op")},
                "quantile": pa.array([name] * rows.num_rows, pa.string()),
                "window_start": rows["window_start"],
                "window_s": rows["window_s"],
                "value_ns": rows[column],
            }
        ).cast(SERIES_SCHEMA)
        for name, column in QUANTILES.items()
    ]
    return pa.concat_tables(parts)


def episode_starts(rows: pa.Table) -> pa.Array:
    """Per row of `rows` sorted by series and time: the start of its run of anomalous intervals (null where not
    anomalous). A run breaks at an unflagged interval and at a missing one (the next interval does not begin where
    the previous ended)."""
    anomalous = rows["anomalous"].to_numpy(zero_copy_only=False)
    start = rows["window_start"].cast(pa.int64()).to_numpy()
    end = start + rows["window_s"].to_numpy().astype(np.int64) * 1_000_000_000
    series = group_ids(rows, SERIES_KEYS).ids
    follows = np.zeros(rows.num_rows, bool)
    follows[1:] = anomalous[:-1] & (series[1:] == series[:-1]) & (start[1:] == end[:-1])
    first = np.flatnonzero(anomalous & ~follows)
    run = np.cumsum(anomalous & ~follows) - 1
    starts = start[first][np.maximum(run, 0)] if first.size else np.zeros(rows.num_rows, np.int64)
    return pa.array(starts, pa.int64(), mask=~anomalous).cast(_TS)


def score(series: pa.Table, burn: pa.Table) -> pa.Table:
    """SCORED_SCHEMA rows of `series` (quantile_series over the history the detector needs) in series and time
    order; `burn`: BURN_SCHEMA's columns."""
    ordered = series.sort_by([(name, "ascending") for name in (*SERIES_KEYS, "window_start")])
    scored = score_table(ordered, "value_ns", "window_start", SERIES_KEYS, PARAMS)
    expected, band = scored["baseline"], pc.multiply(scored["spread"], PARAMS.z_half)
    rows = ordered.append_column("expected_ns", expected)  # score_table gives null where the detector has NaN
    rows = rows.append_column("normal_low_ns", pc.max_element_wise(pc.subtract(expected, band), 0.0, skip_nulls=False))
    rows = rows.append_column("normal_high_ns", pc.add(expected, band))
    rows = rows.append_column("score", scored["score"]).append_column("anomalous", scored["anomalous"])
    rows = rows.append_column("episode_start", episode_starts(rows))
    burn = burn.select(BURN_SCHEMA.names).cast(BURN_SCHEMA)
    joined = rows.append_column("row", pa.array(np.arange(rows.num_rows))).join(
        burn, ["controller_id", "window_start"], join_type="left outer"
    )
    return joined.sort_by("row").select(SCORED_SCHEMA.names).cast(SCORED_SCHEMA)


def score_since(batches: Iterable[tuple[pa.Table, pa.Table]], since: datetime) -> pa.Table:
    """`score` of the intervals starting at or after `since`, for each (series, burn) batch of whole series (a
    batch of controllers, say): the history before `since` only gives the detector its baseline, so no batch's
    lookback is kept once it is scored. The batches' rows in turn, each batch's as `score` orders them."""
    cut = pa.scalar(since, _TS)
    parts = [SCORED_SCHEMA.empty_table()]
    for series, burn in batches:
        scored = score(series, burn)
        parts.append(scored.filter(pc.greater_equal(scored["window_start"], cut)))
    return pa.concat_tables(parts)


def episodes(rows: pa.Table) -> pa.Table:
    """EPISODE_SCHEMA: one row per episode of SCORED_SCHEMA `rows` (any order), the worst first. An episode whose
    last interval is its series' last in `rows` is open (end null)."""
    rows = rows.sort_by([(name, "ascending") for name in (*SERIES_KEYS, "window_start")])
    series = group_ids(rows, SERIES_KEYS)
    last = np.zeros(rows.num_rows, bool)
    last[np.r_[np.flatnonzero(np.diff(series.ids) != 0), rows.num_rows - 1] if rows.num_rows else []] = True
    flagged = rows.append_column("open", pa.array(last)).filter(rows["anomalous"])
    if not flagged.num_rows:
        return EPISODE_SCHEMA.empty_table()
    ids = group_ids(flagged, [*SERIES_KEYS, "episode_start"])
    first = ids.first_rows
    peak = _peaks(flagged["score"].to_numpy(), ids.ids, first.size)
    count = np.bincount(ids.ids, minlength=first.size)
    finish = np.zeros(first.size, np.int64)
    np.maximum.at(finish, ids.ids, np.arange(flagged.num_rows))
    ends = pc.add(
        flagged["window_start"].take(finish),
        pc.cast(flagged["window_s"].take(finish), pa.int64()).cast(pa.duration("s")),
    )
    ends = pc.if_else(flagged["open"].take(finish), pa.scalar(None, _TS), ends)
    table = pa.table(
        {
            **{name: flagged[name].take(first) for name in SERIES_KEYS},
            "start": flagged["episode_start"].take(first),
            "peak_at": flagged["window_start"].take(peak),
            "end": ends,
            "intervals": pa.array(count, pa.int64()),
            "peak_score": flagged["score"].take(peak),
            "peak_value_ns": flagged["value_ns"].take(peak),
            "normal_low_ns": flagged["normal_low_ns"].take(first),
            "normal_high_ns": flagged["normal_high_ns"].take(first),
            "burn_1h": flagged["burn_1h"].take(peak),
        }
    )
    return table.cast(EPISODE_SCHEMA).sort_by([("peak_score", "descending"), ("start", "ascending")])


def _peaks(scores: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the row of its highest score (the first of equal ones)."""
    order = np.lexsort((np.arange(scores.size), -scores, group))
    firsts = np.r_[True, group[order][1:] != group[order][:-1]]
    peaks = np.zeros(groups, np.int64)
    peaks[group[order][firsts]] = order[firsts]
    return peaks
