"""A univariate latency detector for any (timestamp, value) series: score in [0, 1] per point, flags, alerts.

SREs point it at whatever latency series they have (per-controller p99 from merged histograms, a host's
p99.9, a service's mean), so it assumes nothing but positive values in time order:

* Baseline: the median and MAD of log(value) over a trailing time window (at most `max_baseline_points`
  latest points, never the point itself). Robust statistics ignore up to half the window being anomalous;
  log space makes a 2x jump equally surprising at 200 ns and at 2 µs; the time window copes with irregular
  spacing, and after a gap longer than the window the score is unknown (NaN) until a baseline re-forms.
* Score: z = (log x − median) / max(1.4826·MAD, sigma_floor); score = z² / (z² + z_half²) for z > 0, else 0.
  It is 0.5 at z = z_half and tends to 1; only slowdowns score (a faster access is not an incident).
  sigma_floor keeps a very steady series from turning a 1 % wobble into an alarm: quantiles read from
  histograms are themselves only good to about 2 %.
* Flag (`anomalous`): the mean score of the last `smooth_n` points reaches `flag_threshold`, so one noisy
  point does not flag. Alert (`alert`): the first point of a flagged episode, unless the previous episode of
  the same series ended less than `snooze_s` earlier: a flapping series raises one alert (anomstack's
  smooth-and-snooze).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from models.grouping import group_ids

_NS = 1_000_000_000
_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution is 0.6745 sigma
_ROWS_PER_PASS = 1 << 16  # bounds the (points × window) scratch matrices


@dataclass(frozen=True)
class DetectorParams:
    baseline_s: float = 6 * 3600.0
    max_baseline_points: int = 64
    min_baseline_points: int = 8
    z_half: float = 4.0
    sigma_floor: float = 0.02
    smooth_n: int = 3
    flag_threshold: float = 0.5
    snooze_s: float = 1800.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_baseline_points <= self.max_baseline_points:
            raise ValueError("need 1 <= min_baseline_points <= max_baseline_points")
        if min(self.baseline_s, self.z_half, self.sigma_floor, self.smooth_n) <= 0 or self.snooze_s < 0:
            raise ValueError("baseline_s, z_half, sigma_floor and smooth_n must be positive, snooze_s >= 0")
        if not 0 < self.flag_threshold < 1:
            raise ValueError(f"flag_threshold must lie in (0, 1), got {self.flag_threshold}")


@dataclass(frozen=True)
class Scores:
    """Per input point, in input order: baseline (value units, NaN = unknown), score in [0, 1] (NaN =
    no baseline yet or value not positive), anomalous (flag) and alert (start of a new alert)."""

    baseline: np.ndarray
    score: np.ndarray
    anomalous: np.ndarray
    alert: np.ndarray


def _trailing(
    values: np.ndarray, group: np.ndarray, ts: np.ndarray, points: np.ndarray, count: int, within_ns: float
) -> np.ndarray:
    """(points × count) matrix of the `count` values preceding each of `points` in the same series and
    within `within_ns` of it; NaN where there is none. Arrays are sorted by (series, time)."""
    previous = points[:, None] - np.arange(1, count + 1)[None, :]
    safe = np.maximum(previous, 0)
    usable = (previous >= 0) & (group[safe] == group[points, None]) & (ts[points, None] - ts[safe] <= within_ns)
    return np.where(usable, values[safe], np.nan)


def _median(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row medians ignoring NaN (np.sort puts NaN last), and the number of values in each row."""
    ordered = np.sort(window, axis=1)
    present = np.isfinite(window).sum(axis=1)
    rows = np.arange(window.shape[0])
    low = ordered[rows, np.maximum(present - 1, 0) // 2]
    high = ordered[rows, np.minimum(present // 2, window.shape[1] - 1)]
    return (low + high) / 2, present


def _baseline(logs: np.ndarray, group: np.ndarray, ts: np.ndarray, params: DetectorParams) -> tuple[np.ndarray, ...]:
    """Median and robust spread of each point's trailing baseline (NaN without enough points)."""
    center = np.full(logs.size, np.nan)
    spread = np.full(logs.size, np.nan)
    for start in range(0, logs.size, _ROWS_PER_PASS):
        points = np.arange(start, min(logs.size, start + _ROWS_PER_PASS))
        window = _trailing(logs, group, ts, points, params.max_baseline_points, params.baseline_s * _NS)
        median, present = _median(window)
        mad, _ = _median(np.abs(window - median[:, None]))
        enough = present >= params.min_baseline_points
        center[points] = np.where(enough, median, np.nan)
        spread[points] = np.where(enough, np.maximum(_MAD_TO_SIGMA * mad, params.sigma_floor), np.nan)
    return center, spread


def _alerts(anomalous: np.ndarray, group: np.ndarray, ts: np.ndarray, snooze_ns: float) -> np.ndarray:
    """First point of each flagged episode that is not within `snooze_ns` of the previous episode's end."""
    before = np.concatenate([[False], anomalous[:-1] & (group[1:] == group[:-1])])
    after = np.concatenate([anomalous[1:] & (group[1:] == group[:-1]), [False]])
    starts = np.flatnonzero(anomalous & ~before)
    ends = np.flatnonzero(anomalous & ~after)
    # Episodes alternate start/end within a series, so episode k's predecessor ended at ends[k - 1].
    fresh = np.ones(starts.size, bool)
    same_series = group[starts[1:]] == group[ends[:-1]]
    fresh[1:] = ~same_series | (ts[starts[1:]] - ts[ends[:-1]] >= snooze_ns)
    alert = np.zeros(anomalous.size, bool)
    alert[starts[fresh]] = True
    return alert


def _score_sorted(group: np.ndarray, ts: np.ndarray, values: np.ndarray, params: DetectorParams) -> Scores:
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log(values), np.nan)
    center, spread = _baseline(logs, group, ts, params)
    z = np.maximum((logs - center) / spread, 0.0)
    score = z**2 / (z**2 + params.z_half**2)
    points = np.arange(score.size)
    recent = np.column_stack([score, _trailing(score, group, ts, points, params.smooth_n - 1, np.inf)])
    scored = np.isfinite(recent)
    # The mean score of the scored points among the last smooth_n; with none scored, no flag.
    scored_count = scored.sum(axis=1)
    score_sum = np.where(scored, recent, 0.0).sum(axis=1)
    anomalous = (scored_count > 0) & (score_sum >= params.flag_threshold * scored_count)
    return Scores(np.exp(center), score, anomalous, _alerts(anomalous, group, ts, params.snooze_s * _NS))


def _nanoseconds(times: object) -> np.ndarray:
    """Timestamps as int64 ns: Arrow or numpy datetimes, or plain numbers taken as seconds."""
    if isinstance(times, pa.ChunkedArray | pa.Array):
        if pa.types.is_timestamp(times.type):
            return times.cast(pa.timestamp("ns", tz=times.type.tz)).cast(pa.int64()).to_numpy()
        times = times.to_numpy()
    array = np.asarray(times)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[ns]").astype(np.int64)
    return np.round(array.astype(np.float64) * _NS).astype(np.int64)


def _score(group: np.ndarray, ts: np.ndarray, values: np.ndarray, params: DetectorParams) -> Scores:
    """Score in (series, time) order, hand back in input order."""
    order = np.lexsort((ts, group))
    ranked = _score_sorted(group[order], ts[order], values[order], params)
    restored = {}
    for name in ("baseline", "score", "anomalous", "alert"):
        sorted_values = getattr(ranked, name)
        restored[name] = np.empty_like(sorted_values)
        restored[name][order] = sorted_values
    return Scores(**restored)


def score_series(times: object, values: object, params: DetectorParams = DetectorParams()) -> Scores:
    """Score one series. `times`: timestamps (Arrow, numpy datetime64) or seconds; need not be sorted."""
    ts = _nanoseconds(times)
    numbers = np.asarray(values, dtype=np.float64)
    if ts.shape != numbers.shape:
        raise ValueError(f"{ts.size} timestamps but {numbers.size} values")
    return _score(np.zeros(ts.size, np.int64), ts, numbers, params)


def score_table(
    table: pa.Table,
    value_column: str,
    time_column: str = "ts",
    series_columns: Sequence[str] = (),
    params: DetectorParams = DetectorParams(),
) -> pa.Table:
    """`table` plus baseline, score, anomalous and alert columns; each distinct `series_columns` value (e.g.
    controller_id, op) is an independent series. Row order is kept."""
    missing = [c for c in (value_column, time_column, *series_columns) if c not in table.column_names]
    if missing:
        raise ValueError(f"columns not in the table: {missing}")
    values = table.column(value_column).cast(pa.float64()).fill_null(np.nan).to_numpy()
    scores = _score(group_ids(table, series_columns).ids, _nanoseconds(table.column(time_column)), values, params)
    for name in ("baseline", "score"):
        table = table.append_column(name, pa.array(getattr(scores, name), pa.float64(), from_pandas=True))
    return table.append_column("anomalous", pa.array(scores.anomalous)).append_column("alert", pa.array(scores.alert))
