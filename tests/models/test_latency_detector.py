"""The univariate latency detector on seeded series: causality, many series at once, rises and drops, the
series real telemetry gives (zeros, constants, quantised values, gaps), flags and alerts, the table API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.nab import DETECTOR
from models.latency_detector import DetectorParams, nab_detector, score_matrix, score_series, score_table

MINUTE_NS = 60 * 1_000_000_000


def p99_like(rng: np.random.Generator, size: int, level: float = 600.0, jitter: float = 0.04) -> np.ndarray:
    return level * np.exp(rng.normal(0, jitter, size))


def daily(rng: np.random.Generator, days: int, per_day: int = 288) -> np.ndarray:
    """A p99 with a daily load cycle: 5-minute points, +-20 % over the day, 2 % noise."""
    phase = np.arange(days * per_day) / per_day
    return 600.0 * (1 + 0.2 * np.sin(2 * np.pi * phase)) * np.exp(rng.normal(0, 0.02, phase.size))


def minutes(size: int) -> np.ndarray:
    return np.datetime64("2026-01-05T00:00:00", "ns") + np.arange(size) * np.timedelta64(5 * MINUTE_NS, "ns")


def test_the_score_of_a_prefix_is_the_prefix_of_the_scores():
    """Causal: cutting the future off changes no earlier score (the NAB harness's --check-causality)."""
    rng = np.random.default_rng(0)
    values = daily(rng, 16)
    values[3000:3040] *= 1.8
    values[4000:4100] = np.nan
    whole = nab_detector(minutes(values.size), values)
    for cut in (1, 17, 600, 3010, 4050):
        np.testing.assert_array_equal(nab_detector(minutes(cut), values[:cut]), whole[:cut])


def test_many_series_at_once_score_as_each_alone():
    rng = np.random.default_rng(1)
    matrix = np.stack([p99_like(rng, 700, level) for level in (300.0, 900.0, 5000.0)])
    matrix[1, 500:] *= 2
    matrix[2, 100:150] = np.nan
    together = score_matrix(matrix, (288,))
    for row in range(3):
        alone = score_matrix(matrix[row], (288,))
        for name in ("expected", "score", "onset"):
            np.testing.assert_array_equal(getattr(together, name)[row], getattr(alone, name))


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_a_level_shift_up_or_down_is_an_onset_at_its_start(factor):
    rng = np.random.default_rng(2)
    values = p99_like(rng, 1000)
    values[800:] *= factor
    found = score_matrix(values)
    assert found.score[800] >= DetectorParams().flag_threshold
    assert int(np.argmax(found.onset[600:])) + 600 == 800
    assert found.onset[:800].max() < 0.5
    # The continuation of the shift is no new onset.
    assert (found.onset[801:] < found.onset[800]).all()


def test_a_daily_cycle_is_learnt_and_a_flat_day_inside_it_is_found():
    rng = np.random.default_rng(3)
    values = daily(rng, 10)
    quiet = score_matrix(values, (288,))
    assert quiet.score[3 * 288 :].max() < 0.5  # the cycle itself is not anomalous once two days are known
    values[8 * 288 + 60 : 8 * 288 + 140] = 600.0  # the daily swing stops
    flat = score_matrix(values, (288,))
    assert flat.score[8 * 288 + 60 : 8 * 288 + 140].max() >= DetectorParams().flag_threshold


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(500),
        np.full(500, 640.0),
        np.r_[np.zeros(300), np.full(200, 7.0)],
        np.round(p99_like(np.random.default_rng(4), 500, 600.0, 0.01), -2),  # quantised to 100 ns
        np.r_[p99_like(np.random.default_rng(5), 200), np.full(100, np.nan), p99_like(np.random.default_rng(6), 200)],
        np.full(20, np.nan),
    ],
    ids=["zeros", "constant", "zeros-then-step", "quantised", "nan-gap", "all-nan"],
)
def test_awkward_series_give_finite_scores_in_range(values):
    found = score_matrix(values, (288, 2016))
    for scores in (found.score, found.onset):
        assert np.isfinite(scores).all()
        assert ((scores >= 0) & (scores <= 1)).all()


def test_quantised_and_constant_series_do_not_alarm_on_one_quantum():
    rng = np.random.default_rng(7)
    steady = np.round(p99_like(rng, 2000, 600.0, 0.03), -2)  # 600 with an occasional 500 or 700
    first_step = int(np.flatnonzero(steady != steady[0])[0])  # a first-ever change is news; later ones not
    assert 0 < first_step < 1000
    assert score_matrix(steady).score[first_step + 1 :].max() < 0.5
    zeros = np.zeros(2000)
    zeros[::97] = 1.0  # a rare single count in a long run of zeros, from the start: part of normal
    assert score_matrix(zeros).score[200:].max() < 0.5


def test_hourly_series_are_scored_and_gaps_score_zero():
    """Sparse (hourly) series get scores from the 9th point on; a missing point scores 0."""
    rng = np.random.default_rng(8)
    values = p99_like(rng, 24 * 14)
    values[100] = np.nan
    values[300] *= 3
    times = np.arange(values.size) * 3600.0
    scores = score_series(times, values)
    assert scores.score[100] == 0 and scores.onset[100] == 0
    assert scores.score[300] >= DetectorParams().flag_threshold and scores.alert[300]
    assert np.isfinite(scores.baseline[8:100]).all()


def test_a_flapping_episode_alerts_once_under_the_snooze():
    rng = np.random.default_rng(9)
    values = p99_like(rng, 600)
    values[400:440:4] *= 4  # a spike every 4 minutes for 40 minutes
    times = np.arange(600) * 60.0
    scores = score_series(times, values)
    assert scores.anomalous[400:440].sum() >= 5
    assert scores.alert.sum() == 1 and scores.alert[400]
    assert score_series(times, values, DetectorParams(snooze_s=0)).alert.sum() > 1


def test_timestamps_may_be_arrow_numpy_or_seconds_and_unsorted():
    rng = np.random.default_rng(10)
    seconds = np.arange(300) * 30.0
    values = p99_like(rng, 300)
    values[250:260] *= 3
    reference = score_series(seconds, values)
    as_numpy = np.datetime64("2026-01-05T00:00:00", "ns") + (seconds * 1e9).astype("timedelta64[ns]")
    as_arrow = pa.array(as_numpy).cast(pa.timestamp("ns", tz="UTC"))
    for times in (as_numpy, as_arrow):
        np.testing.assert_array_equal(score_series(times, values).score, reference.score)
    shuffle = rng.permutation(300)
    np.testing.assert_array_equal(score_series(seconds[shuffle], values[shuffle]).score, reference.score[shuffle])
    with pytest.raises(ValueError, match="timestamps but"):
        score_series(seconds[:10], values)


def test_score_table_keeps_series_apart_and_rows_in_order():
    rng = np.random.default_rng(11)
    frames, expected = [], {}
    for controller, level, size, step_s in (
        ("0xa", 500.0, 300, 60),
        ("0xb", 2000.0, 250, 60),
        ("0xc", 800.0, 200, 3600),
    ):
        times = np.arange(size) * float(step_s)
        values = p99_like(rng, size, level)
        if controller == "0xc":
            values[150:] *= 2.5
        expected[controller] = score_series(times, values).score
        frames.append(
            pa.table(
                {"controller_id": [controller] * size, "ts": (times * 1e9).astype("datetime64[ns]"), "p99_ns": values}
            )
        )
    mixed = pa.concat_tables(frames)
    mixed = mixed.append_column("row", pa.array(np.arange(mixed.num_rows)))
    shuffled = mixed.take(rng.permutation(mixed.num_rows))
    scored = score_table(shuffled, "p99_ns", series_columns=["controller_id"])
    assert scored.column_names[-6:] == ["baseline", "score", "onset", "spread", "anomalous", "alert"]
    assert scored["row"].equals(shuffled["row"])
    restored = scored.sort_by("row")
    for controller, score in expected.items():
        mine = restored.filter(pc.equal(restored["controller_id"], controller))
        np.testing.assert_array_equal(mine["score"].to_numpy(zero_copy_only=False), score)
    assert scored.filter(scored["alert"])["controller_id"].to_pylist() == ["0xc"]


@given(
    st.lists(st.one_of(st.floats(0.0, 1e6), st.just(float("nan"))), min_size=1, max_size=150),
    st.lists(st.floats(0.0, 3600.0), min_size=1, max_size=150),
)
@settings(max_examples=100, deadline=None)
def test_scores_are_probabilities_for_any_series(values, gaps):
    size = min(len(values), len(gaps))
    scores = score_series(np.cumsum(gaps[:size]), np.array(values[:size]), DetectorParams(min_baseline_points=2))
    for column in (scores.score, scores.onset):
        assert np.isfinite(column).all() and ((column >= 0) & (column <= 1)).all()
    assert not (scores.alert & ~scores.anomalous).any()


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="min_baseline_points"):
        DetectorParams(min_baseline_points=100, baseline_points=10)
    with pytest.raises(ValueError, match="scales"):
        DetectorParams(scales=(0, 4))
    with pytest.raises(ValueError, match="flag_threshold"):
        DetectorParams(flag_threshold=1.0)


NAB_HARNESS = Path(__file__).resolve().parents[3] / "shared" / "nab" / "nab_score.py"


@pytest.mark.skipif(not NAB_HARNESS.exists(), reason="no NAB harness at ../shared/nab beside the checkout")
def test_nab_harness_scores_the_detector_on_a_small_nab_format_corpus(tmp_path):
    """bench.nab's path end to end on one synthetic file: the harness loads the detector, finds it causal and
    scores it above the null detector (0) when a level shift sits in the labelled window."""
    rng = np.random.default_rng(12)
    values = p99_like(rng, 2000)
    values[1500:] *= 1.6
    stamps = pd.date_range("2026-01-05", periods=values.size, freq="5min")
    (tmp_path / "data/synthetic").mkdir(parents=True)
    (tmp_path / "results/null/synthetic").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    (tmp_path / "config").mkdir()
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(tmp_path / "data/synthetic/shift.csv", index=False)
    null = pd.DataFrame({"timestamp": stamps, "value": values, "anomaly_score": 0.5})
    null.to_csv(tmp_path / "results/null/synthetic/null_shift.csv", index=False)
    window = [str(stamps[1450]), str(stamps[1550])]
    (tmp_path / "labels/combined_windows.json").write_text(json.dumps({"synthetic/shift.csv": [window]}))
    weights = {"standard": 0.11, "reward_low_FP_rate": 0.22, "reward_low_FN_rate": 0.11}
    profiles = {p: {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": w}} for p, w in weights.items()}
    (tmp_path / "config/profiles.json").write_text(json.dumps(profiles))
    done = subprocess.run(
        [
            sys.executable,
            str(NAB_HARNESS),
            "--nab",
            str(tmp_path),
            "score",
            "--detector",
            DETECTOR,
            "--check-causality",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0 of 1 files changed" in done.stdout
    standard = float(re.search(r"standard (-?[\d.]+) \(threshold", done.stdout).group(1))
    assert standard > 0


def test_the_spread_bounds_what_one_point_may_do_unflagged() -> None:
    """expected -+ z_half x spread is the normal range: the last point just outside it is flagged, one well inside
    is not (the expected value and spread of a point do not depend on the point: causal)."""
    rng = np.random.default_rng(21)
    values = p99_like(rng, 200)
    params = DetectorParams()
    scores = score_series(np.arange(200) * 60.0, values)
    expected, spread = scores.baseline[-1], scores.spread[-1]
    for factor, flagged in ((1.01, True), (0.5, False)):
        values[-1] = expected + factor * params.z_half * spread
        assert score_series(np.arange(200) * 60.0, values).anomalous[-1] == flagged
