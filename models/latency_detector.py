"""A univariate anomaly detector for any (timestamp, value) series: score in [0, 1] per point, flags, alerts.

SREs point it at whatever latency series they have (per-controller p99 from merged histograms, a host's
p99.9, a service's mean), so it assumes only that points come in time order per series. Everything is causal
(the score of point i uses points 0..i of its series: cumulative sums and running extremes, never a look
ahead) and vectorised over the time axis and over many series at once (a series x time matrix).

* **Predictors.** Each point is predicted by a level model (the mean of the previous `baseline_points`
  points) and, when the series is long enough, by a daily and a weekly seasonal model (the mean of the same
  phase in the last `seasonal_cycles` cycles, cycles in rows from the median sampling step). Per point the
  model whose residuals had the smallest variance over its baseline window is used: a flat series keeps
  the level model, a daily one switches to the daily model once it predicts better.
* **Several scales of prediction error.** The mean residual of the last k points (k in `scales`: a spike,
  a short burst, a level shift or slow degradation) against the mean and spread of the residuals in the
  `baseline_points` before them; the largest |z| over the scales counts, so rises and drops both score.
* **Resolution floor.** The spread never goes below `resolution` x the range the series showed before the point:
  and never below half the smallest step it has taken (its quantum): quantised, low-resolution and
  long-constant series (runs of zeros) do not turn one quantum into an alarm.
* **Score** = z² / (z² + z_half²): 0.5 at z = z_half, tending to 1. Missing values (NaN) are left out of
  every statistic and score 0.
* **Onset** (what NAB scores): the score where it beats every score of the previous `refractory_points`
  points, else 0, so a long excursion reports its first and its growing points, not every point of it.
* **Flag / alert**: `anomalous` where the score reaches `flag_threshold`; `alert` on the first point of a
  flagged episode unless the previous episode of the series ended less than `snooze_s` earlier.

The knobs were chosen on NAB (docs/detector_quality.md, "Latency detector"), whose files are the development
set: the figures there are therefore optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from models.grouping import group_ids

_NS = 1_000_000_000
_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S
_BLOCK_CELLS = 1 << 21  # series x time cells scored at once: bounds the temporaries (16 MiB each)


@dataclass(frozen=True)
class DetectorParams:
    # 512 points: on NAB 256 under-estimates the spread of bursty series (tweets) and 1024 reacts late to a
    # changed regime; 512 is 1.8 days of 5-minute points, 8.5 hours of minutes.
    baseline_points: int = 512
    # A spike, a burst of a few points, a level shift or slow drift (16 points): the scales of error that
    # latency incidents take. One scale scores about the same on NAB; the longer ones are for degradations.
    scales: tuple[int, ...] = (1, 4, 16)
    # 5 % of the range seen so far: below it a change is a quantum or a rounding, not an incident (NAB: 1 %
    # fires on quantised series, 10 % misses small shifts).
    resolution: float = 0.05
    # The seasonal prediction averages 2 past cycles: half the noise variance of the last cycle alone, and
    # still ready after two days (daily) or two weeks (weekly).
    seasonal_cycles: int = 2
    # A score counts as an onset only above every score of the last 100 points (about one NAB window):
    # the first point of an excursion alerts, its continuation does not.
    refractory_points: int = 100
    # Fewer baseline points than this and there is no baseline: score 0 (a mean and spread of 8 is the least
    # that means anything).
    min_baseline_points: int = 8
    # z = 4.5 scores 0.5, near where NAB's swept threshold lands (z about 4.6), so the default flag means
    # what the benchmark picked; the map is monotone, so it changes no ranking and no NAB figure.
    z_half: float = 4.5
    flag_threshold: float = 0.5
    snooze_s: float = 1800.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_baseline_points <= self.baseline_points:
            raise ValueError("need 1 <= min_baseline_points <= baseline_points")
        if not self.scales or min(self.scales) < 1:
            raise ValueError("scales must be positive point counts")
        if min(self.resolution, self.z_half, self.seasonal_cycles, self.refractory_points) <= 0 or self.snooze_s < 0:
            raise ValueError("resolution, z_half, seasonal_cycles, refractory_points must be positive, snooze_s >= 0")
        if not 0 < self.flag_threshold < 1:
            raise ValueError(f"flag_threshold must lie in (0, 1), got {self.flag_threshold}")


@dataclass(frozen=True)
class Detection:
    """Per cell of a series x time matrix: expected value (the chosen predictor's), score, onset and spread (the
    one-point baseline's standard deviation with its resolution floor: a point scores 0.5 at expected +- z_half x
    spread; NaN without a baseline)."""

    expected: np.ndarray
    score: np.ndarray
    onset: np.ndarray
    spread: np.ndarray


@dataclass(frozen=True)
class Scores:
    """Per input point, in input order: expected value (the chosen model's prediction; NaN before any
    baseline), score in [0, 1], onset (the score where it starts or grows an excursion, else 0), spread (see
    `Detection`), anomalous (flag) and alert (start of a new alert)."""

    baseline: np.ndarray
    score: np.ndarray
    onset: np.ndarray
    spread: np.ndarray
    anomalous: np.ndarray
    alert: np.ndarray


def _cumulative(values: np.ndarray) -> np.ndarray:
    """Row-wise running sums with a leading zero column: sum of columns [s, e) = c[:, e] - c[:, s]."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def _window(cumulative: np.ndarray, width: int, lag: int) -> np.ndarray:
    """Per column t, the sum over columns [t - lag - width + 1, t - lag] (clipped at the start)."""
    size = cumulative.shape[1] - 1
    t = np.arange(size)
    return cumulative[:, np.clip(t - lag + 1, 0, size)] - cumulative[:, np.clip(t - lag - width + 1, 0, size)]


def _errors(
    residual: np.ndarray, present: np.ndarray, floor2: np.ndarray, params: DetectorParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest |z| over the scales, the one-point baseline's variance (inf without a baseline) and mean."""
    value = np.where(present, residual, 0.0)
    sums, squares, counts = _cumulative(value), _cumulative(value * value), _cumulative(present.astype(np.float64))
    z_max = np.zeros(residual.shape)
    one_variance = one_mean = z_max
    for k in sorted(params.scales, reverse=True):  # the one-point scale last: its baseline is the one kept
        recent_n, recent_sum = _window(counts, k, 0), _window(sums, k, 0)
        base_n = _window(counts, params.baseline_points, k)
        usable = (base_n >= params.min_baseline_points) & (recent_n > 0)
        base_n = np.maximum(base_n, 1.0)
        mean = _window(sums, params.baseline_points, k) / base_n
        variance = np.maximum(_window(squares, params.baseline_points, k) / base_n - mean * mean, 0.0)
        deviation = np.abs(recent_sum / np.maximum(recent_n, 1.0) - mean)
        # A zero spread (a constant series) makes any deviation huge and none a NaN; z stays below 1e100.
        z = deviation / np.maximum(np.sqrt(variance + floor2), deviation * 1e-100 + 1e-300)
        z_max = np.maximum(z_max, np.where(usable, z, 0.0))
        one_variance, one_mean = np.where(usable, variance, np.inf), mean
    return np.where(present, z_max, 0.0), one_variance, one_mean


def _seasonal_residual(centred: np.ndarray, present: np.ndarray, period: int, cycles: int) -> tuple[np.ndarray, ...]:
    """Value minus the mean of the same phase in the last `cycles` cycles; present where all of them are."""
    size = centred.shape[1]
    lag = period * cycles
    residual = np.zeros_like(centred)
    known = np.zeros_like(present)
    known[:, lag:] = present[:, lag:]
    past = np.zeros((centred.shape[0], size - lag))
    for j in range(1, cycles + 1):
        past += centred[:, lag - j * period : size - j * period]
        known[:, lag:] &= present[:, lag - j * period : size - j * period]
    residual[:, lag:] = centred[:, lag:] - past / cycles
    return residual, known


def _previous_max(values: np.ndarray, width: int) -> np.ndarray:
    """Per column t, the max of columns [t - width, t - 1] (0 before the start): doubling windows, O(T log w)."""
    span, running = 1, values
    while 2 * span <= width:
        shifted = np.zeros_like(running)
        shifted[:, span:] = running[:, :-span]
        running = np.maximum(running, shifted)
        span *= 2
    # running[t] = max over [t - span + 1, t]; two such windows cover [t - width + 1, t], then one step back.
    rest, back = np.zeros_like(running), width - span
    if back < running.shape[1]:
        rest[:, back:] = running[:, : running.shape[1] - back]
    covered = np.maximum(running, rest)
    out = np.zeros_like(values)
    out[:, 1:] = covered[:, :-1]
    return out


def _quantum(centred: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per point, the smallest non-zero step between consecutive values before it (0 before any step): a
    quantised series cannot move by less, so a one-quantum change is no more than one spread."""
    filled = np.maximum.accumulate(np.where(present, np.arange(centred.shape[1]), 0), axis=1)
    previous = np.take_along_axis(centred, filled, axis=1)  # the latest present value, for gaps
    step = np.abs(np.diff(previous, axis=1))
    step = np.where(step > 0, step, np.inf)
    quantum = np.zeros_like(centred)
    quantum[:, 2:] = np.minimum.accumulate(step, axis=1)[:, :-1]
    return np.where(np.isfinite(quantum), quantum, 0.0)


def _score_block(values: np.ndarray, periods: Sequence[int], params: DetectorParams) -> Detection:
    present = np.isfinite(values)
    rows = np.arange(values.shape[0])
    first = np.where(present.any(axis=1), values[rows, np.argmax(present, axis=1)], 0.0)
    # Centred on each series' first value, so the running sums of squares keep their precision.
    centred = np.where(present, values - first[:, None], 0.0)
    high = np.maximum.accumulate(np.where(present, centred, -np.inf), axis=1)
    low = np.minimum.accumulate(np.where(present, centred, np.inf), axis=1)
    seen = np.zeros_like(centred)
    seen[:, 1:] = np.where(np.isfinite(high), high - low, 0.0)[:, :-1]  # the range before the point
    # Rounding to a quantum q leaves up to q / 2 of error: a spread below that is not real.
    floor2 = (params.resolution * seen) ** 2 + (0.5 * _quantum(centred, present)) ** 2
    z, variance, mean = _errors(centred, present, floor2, params)
    expected = mean
    for period in periods:
        if period < 2 or period * params.seasonal_cycles >= values.shape[1]:
            continue
        residual, known = _seasonal_residual(centred, present, period, params.seasonal_cycles)
        seasonal_z, seasonal_variance, seasonal_mean = _errors(residual, known, floor2, params)
        better = seasonal_variance < variance
        z = np.where(better, seasonal_z, z)
        variance = np.where(better, seasonal_variance, variance)
        expected = np.where(better, centred - residual + seasonal_mean, expected)
    score = z * z / (z * z + params.z_half**2)
    onset = np.where(score > _previous_max(score, params.refractory_points), score, 0.0)
    known = np.isfinite(variance)
    expected = np.where(known, expected + first[:, None], np.nan)
    spread = np.where(known, np.sqrt(np.where(known, variance, 0.0) + floor2), np.nan)
    return Detection(expected, score, onset, spread)


def score_matrix(
    values: np.ndarray, periods: Sequence[int] = (), params: DetectorParams = DetectorParams()
) -> Detection:
    """Score a (series x time) matrix of equally spaced points (NaN = missing), or one series as a vector.
    `periods`: seasonal cycles in points (e.g. 1440 for a daily cycle of minutes); none = level model only."""
    matrix = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if matrix.ndim != 2:
        raise ValueError(f"values must be a vector or a series x time matrix, got shape {matrix.shape}")
    step = max(1, _BLOCK_CELLS // max(matrix.shape[1], 1))
    blocks = [_score_block(matrix[s : s + step], periods, params) for s in range(0, matrix.shape[0], step)]
    if not blocks:
        empty = np.zeros(matrix.shape)
        return Detection(empty, empty, empty, empty)
    names = ("expected", "score", "onset", "spread")
    joined = [np.concatenate([getattr(b, name) for b in blocks]) for name in names]
    if np.ndim(values) == 1:
        joined = [array[0] for array in joined]
    return Detection(*joined)


def seasonal_periods(ts_ns: np.ndarray) -> tuple[int, ...]:
    """Daily and weekly cycles in points, from the median sampling step of a sorted series."""
    steps = np.diff(ts_ns)
    steps = steps[steps > 0]
    if not steps.size:
        return ()
    step = float(np.median(steps))
    return tuple(round(cycle * _NS / step) for cycle in (_DAY_S, _WEEK_S))


def nab_detector(timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The onset score with the NAB harness's signature (`nab_score.py score --detector`)."""
    periods = seasonal_periods(np.asarray(timestamps).astype("datetime64[ns]").astype(np.int64))
    return score_matrix(np.asarray(values, dtype=np.float64), periods).onset


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
    """Points sorted by (series, time): series with the same cycles are scored as one padded matrix."""
    size = values.size
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if size else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, size])
    position = np.arange(size) - np.repeat(starts, lengths)
    series_of = np.repeat(np.arange(starts.size), lengths)
    cycles = [seasonal_periods(ts[s : s + n]) for s, n in zip(starts, lengths, strict=True)]
    expected, score, onset, spread = np.full(size, np.nan), np.zeros(size), np.zeros(size), np.full(size, np.nan)
    for periods in set(cycles):
        members = np.flatnonzero([c == periods for c in cycles])
        points = np.flatnonzero(np.isin(series_of, members))
        slot = np.searchsorted(members, series_of[points])
        matrix = np.full((members.size, int(lengths[members].max())), np.nan)
        matrix[slot, position[points]] = values[points]
        found = score_matrix(matrix, periods, params)
        expected[points] = found.expected[slot, position[points]]
        score[points] = found.score[slot, position[points]]
        onset[points] = found.onset[slot, position[points]]
        spread[points] = found.spread[slot, position[points]]
    anomalous = score >= params.flag_threshold
    return Scores(expected, score, onset, spread, anomalous, _alerts(anomalous, group, ts, params.snooze_s * _NS))


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
    for name in ("baseline", "score", "onset", "spread", "anomalous", "alert"):
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
    """`table` plus baseline, score, onset, spread, anomalous and alert columns; each distinct `series_columns` value
    (e.g. controller_id, op) is an independent series. Row order is kept."""
    missing = [c for c in (value_column, time_column, *series_columns) if c not in table.column_names]
    if missing:
        raise ValueError(f"columns not in the table: {missing}")
    values = table.column(value_column).cast(pa.float64()).fill_null(np.nan).to_numpy()
    scores = _score(group_ids(table, series_columns).ids, _nanoseconds(table.column(time_column)), values, params)
    for name in ("baseline", "score", "onset", "spread"):
        table = table.append_column(name, pa.array(getattr(scores, name), pa.float64(), from_pandas=True))
    return table.append_column("anomalous", pa.array(scores.anomalous)).append_column("alert", pa.array(scores.alert))
