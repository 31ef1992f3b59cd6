"""The univariate latency detector on seeded series: irregular spacing, gaps, spikes, flapping, many series."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.latency_detector import DetectorParams, score_series, score_table


def p99_like(rng: np.random.Generator, size: int, level: float = 600.0, jitter: float = 0.04) -> np.ndarray:
    return level * np.exp(rng.normal(0, jitter, size))


def irregular_times(rng: np.random.Generator, size: int, mean_gap_s: float = 60.0) -> np.ndarray:
    return np.cumsum(rng.exponential(mean_gap_s, size))


def test_quiet_series_raises_no_alert_and_scores_stay_in_range():
    rng = np.random.default_rng(0)
    times = irregular_times(rng, 20_000)
    scores = score_series(times, p99_like(rng, times.size))
    finite = scores.score[np.isfinite(scores.score)]
    assert finite.min() >= 0 and finite.max() <= 1
    assert scores.alert.sum() == 0
    assert scores.anomalous.mean() < 0.001


def test_a_slowdown_is_flagged_within_a_few_points_and_raises_one_alert():
    rng = np.random.default_rng(1)
    times = irregular_times(rng, 600)
    values = p99_like(rng, times.size)
    values[400:430] *= 2.0
    scores = score_series(times, values)
    assert np.flatnonzero(scores.alert).tolist() == [int(np.flatnonzero(scores.anomalous)[0])]
    assert 400 <= np.flatnonzero(scores.alert)[0] <= 402
    assert scores.anomalous[403:430].all()
    assert not scores.anomalous[:400].any()
    assert scores.score[400] > 0.9
    assert scores.baseline[401] == pytest.approx(600, rel=0.05)


def test_faster_is_not_anomalous():
    rng = np.random.default_rng(2)
    values = p99_like(rng, 300)
    values[200:220] /= 3
    scores = score_series(np.arange(300) * 60.0, values)
    assert scores.score[200:220].max() == 0
    assert not scores.anomalous.any()


def test_one_noisy_point_does_not_flag_and_a_flapping_episode_alerts_once():
    rng = np.random.default_rng(3)
    values = p99_like(rng, 500)
    values[100] *= 5  # a single spike: smoothed away
    values[300:340:2] *= 4  # flapping every other point for 40 minutes: one alert under the snooze
    scores = score_series(np.arange(500) * 60.0, values)
    assert not scores.anomalous[95:110].any()
    assert scores.anomalous[300:340].any()
    assert scores.alert.sum() == 1
    unsnoozed = score_series(np.arange(500) * 60.0, values, DetectorParams(snooze_s=0))
    assert unsnoozed.alert.sum() > 1


def test_after_a_long_gap_the_score_is_unknown_until_a_baseline_reforms():
    rng = np.random.default_rng(4)
    params = DetectorParams(baseline_s=3600, min_baseline_points=8)
    times = np.concatenate([np.arange(100) * 60.0, 100 * 60.0 + 86400 + np.arange(30) * 60.0])
    scores = score_series(times, p99_like(rng, times.size), params)
    assert np.isfinite(scores.score[8:100]).all()
    assert np.isnan(scores.score[100:108]).all()
    assert np.isfinite(scores.score[108:]).all()


def test_irregular_spacing_uses_a_time_window_not_a_point_count():
    """A dense burst of old points must not count as baseline once it is older than the window."""
    params = DetectorParams(baseline_s=600, min_baseline_points=3, max_baseline_points=64)
    times = np.array([0, 1, 2, 3, 4, 5, 1000, 1200, 1400, 1600], dtype=float)
    values = np.array([100, 100, 100, 100, 100, 100, 500, 500, 500, 500], dtype=float)
    scores = score_series(times, values, params)
    assert np.isnan(scores.score[6:9]).all()  # fewer than 3 points within the last 600 s
    assert scores.score[9] == 0  # baseline = the three 500 ns points


def test_nonpositive_values_are_unscored_and_excluded_from_the_baseline():
    rng = np.random.default_rng(5)
    values = p99_like(rng, 100)
    values[50] = 0.0
    values[60] = np.nan
    scores = score_series(np.arange(100) * 60.0, values)
    assert np.isnan(scores.score[[50, 60]]).all()
    assert np.isfinite(scores.score[51:60]).all()


def test_timestamps_may_be_arrow_numpy_or_seconds_and_unsorted():
    rng = np.random.default_rng(6)
    seconds = np.arange(200) * 30.0
    values = p99_like(rng, 200)
    values[150:160] *= 3
    reference = score_series(seconds, values)
    as_numpy = np.datetime64("2026-01-05T00:00:00", "ns") + (seconds * 1e9).astype("timedelta64[ns]")
    as_arrow = pa.array(as_numpy).cast(pa.timestamp("ns", tz="UTC"))
    shuffle = rng.permutation(200)
    for times in (as_numpy, as_arrow):
        np.testing.assert_array_equal(score_series(times, values).alert, reference.alert)
    shuffled = score_series(seconds[shuffle], values[shuffle])
    np.testing.assert_array_equal(shuffled.score, reference.score[shuffle])
    with pytest.raises(ValueError, match="timestamps but"):
        score_series(seconds[:10], values)


def test_score_table_keeps_series_apart_and_rows_in_order():
    rng = np.random.default_rng(7)
    frames = []
    expected = {}
    for controller, level in (("0xa", 500.0), ("0xb", 2000.0), ("0xc", 800.0)):
        times = irregular_times(rng, 300)
        values = p99_like(rng, 300, level)
        if controller == "0xc":
            values[250:] *= 2.5
        expected[controller] = score_series(times, values).score
        frames.append(
            pa.table(
                {"controller_id": [controller] * 300, "ts": (times * 1e9).astype("datetime64[ns]"), "p99_ns": values}
            )
        )
    mixed = pa.concat_tables(frames)
    mixed = mixed.append_column("row", pa.array(np.arange(mixed.num_rows)))
    shuffled = mixed.take(rng.permutation(mixed.num_rows))
    scored = score_table(shuffled, "p99_ns", series_columns=["controller_id"])
    assert scored.column_names[-4:] == ["baseline", "score", "anomalous", "alert"]
    assert scored["row"].equals(shuffled["row"])
    restored = scored.sort_by("row")
    for controller, score in expected.items():
        mine = restored.filter(pa.compute.equal(restored["controller_id"], controller))
        np.testing.assert_array_equal(mine["score"].to_numpy(zero_copy_only=False), score)
    alerts = scored.filter(scored["alert"])["controller_id"].to_pylist()
    assert alerts == ["0xc"]


@given(
    st.lists(st.floats(1.0, 1e6), min_size=1, max_size=120),
    st.lists(st.floats(0.0, 3600.0), min_size=1, max_size=120),
)
@settings(max_examples=100, deadline=None)
def test_scores_are_probabilities_or_unknown_for_any_series(values, gaps):
    size = min(len(values), len(gaps))
    scores = score_series(np.cumsum(gaps[:size]), np.array(values[:size]), DetectorParams(min_baseline_points=2))
    finite = scores.score[np.isfinite(scores.score)]
    assert ((finite >= 0) & (finite <= 1)).all()
    assert not (scores.alert & ~scores.anomalous).any()


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="min_baseline_points"):
        DetectorParams(min_baseline_points=100, max_baseline_points=10)
    with pytest.raises(ValueError, match="flag_threshold"):
        DetectorParams(flag_threshold=1.0)
