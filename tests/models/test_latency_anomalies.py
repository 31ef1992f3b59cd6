"""models.latency_anomalies on known inputs: the fleet series from merged histograms, episodes (start, peak, end,
open, breaks at unflagged and missing hours), the normal range and the SLO burn attached, and causality."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models.histogram import from_samples, merge, quantiles
from models.latency_anomalies import (
    BURN_SCHEMA,
    FLEET,
    episode_starts,
    episodes,
    fleet_quantiles,
    quantile_series,
    score,
    score_since,
)
from pipelines.defs.latency.rollups import hourly_rollup
from tests.models.latency_rows import T0, latency_table, lognormal_samples

TS = pa.timestamp("ns", tz="UTC")
NO_BURN = BURN_SCHEMA.empty_table()


def hourly_series(values: list[float], controller: str = "0xc0") -> pa.Table:
    """One p99 series of hourly values from T0; NaN = a missing hour (no row)."""
    hours = [h for h, v in enumerate(values) if not np.isnan(v)]
    return pa.table(
        {
            "controller_id": [controller] * len(hours),
            "host": ["host-0"] * len(hours),
            "memory_tier": ["cxl"] * len(hours),
            "op": ["read"] * len(hours),
            "quantile": ["p99"] * len(hours),
            "window_start": pa.array([T0 + timedelta(hours=h) for h in hours], TS),
            "window_s": pa.array([3600] * len(hours), pa.uint32()),
            "value_ns": pa.array([values[h] for h in hours], pa.float64()),
        }
    )


def with_flags(series: pa.Table, anomalous: list[bool], scores: list[float]) -> pa.Table:
    """Scored rows with the given flags and scores in place of the detector's: the episode logic alone."""
    rows = score(series, NO_BURN)
    rows = rows.set_column(rows.schema.get_field_index("anomalous"), "anomalous", pa.array(anomalous))
    rows = rows.set_column(rows.schema.get_field_index("score"), "score", pa.array(scores, pa.float64()))
    return rows.set_column(rows.schema.get_field_index("episode_start"), "episode_start", episode_starts(rows))


def hour(n: int) -> object:
    return pa.scalar(T0 + timedelta(hours=n), TS).as_py()


def steady(rng: np.random.Generator, hours: int, level: float = 500.0) -> list[float]:
    return list(level * np.exp(rng.normal(0, 0.01, hours)))


def test_the_fleet_series_is_every_controllers_histograms_merged() -> None:
    rng = np.random.default_rng(5)
    samples = {c: lognormal_samples(rng, 4000, median_ns=m) for c, m in (("0xa", 250.0), ("0xb", 700.0))}
    raw = latency_table([{"controller_id": c, "samples": s} for c, s in samples.items()])
    rollups = hourly_rollup([raw])
    series = pa.concat_tables([quantile_series(rollups), quantile_series(fleet_quantiles(rollups))])
    fleet = series.filter(pc.equal(series["controller_id"], FLEET)).sort_by("quantile")
    merged = merge([from_samples(s) for s in samples.values()])
    assert fleet["quantile"].to_pylist() == ["p99", "p99.9"]
    assert np.allclose(fleet["value_ns"].to_numpy(), quantiles(merged, [0.99, 0.999]))
    assert series.num_rows == 6  # two controllers and the fleet, p99 and p99.9


def test_episodes_start_peak_end_and_break_at_gaps_and_unflagged_hours() -> None:
    values = [500.0] * 9
    values[5] = float("nan")  # hour 5 missing: the run of hours 3-4 ends there
    series = hourly_series(values)
    anomalous = [False, True, False, True, True, True, True, False]  # rows: hours 0-4, 6-8
    scores = [0.1, 0.6, 0.2, 0.7, 0.9, 0.55, 0.8, 0.3]
    found = episodes(with_flags(series, anomalous, scores)).sort_by("start")
    assert found["start"].to_pylist() == [hour(1), hour(3), hour(6)]
    assert found["end"].to_pylist() == [hour(2), hour(5), hour(8)]
    assert found["peak_at"].to_pylist() == [hour(1), hour(4), hour(7)]
    assert found["intervals"].to_pylist() == [1, 2, 2]


def test_an_episode_running_at_the_last_hour_is_open() -> None:
    found = episodes(with_flags(hourly_series([500.0] * 4), [False, False, True, True], [0, 0, 0.6, 0.7]))
    assert found.num_rows == 1 and found["end"].to_pylist() == [None] and found["start"].to_pylist() == [hour(2)]


def test_a_step_is_one_episode_with_the_normal_range_before_it_and_the_burn_then() -> None:
    rng = np.random.default_rng(11)
    values = steady(rng, 60)
    values[40:44] = [900.0] * 4
    burn = pa.table(
        {"controller_id": ["0xc0"], "window_start": pa.array([T0 + timedelta(hours=40)], TS), "burn_1h": [14.4]}
    )
    found = episodes(score(hourly_series(values), burn))
    assert found.num_rows >= 1
    worst = found.slice(0, 1).to_pylist()[0]
    assert worst["start"] == hour(40) and worst["peak_at"] == hour(40) and worst["burn_1h"] == 14.4
    assert worst["normal_low_ns"] < 500.0 < worst["normal_high_ns"] < 900.0


def test_scores_are_causal() -> None:
    """Scoring a prefix of the history changes none of its rows: a run may score only its window's hours."""
    rng = np.random.default_rng(3)
    values = steady(rng, 50)
    values[30] = 800.0
    whole = score(hourly_series(values), NO_BURN)
    prefix = score(hourly_series(values[:35]), NO_BURN)
    assert whole.slice(0, 35).equals(prefix)


def test_no_flag_no_episode() -> None:
    rng = np.random.default_rng(8)
    rows = score(hourly_series(steady(rng, 40)), NO_BURN)
    assert episodes(rows).num_rows == int(np.sum(rows["anomalous"].to_numpy())) == 0


def test_scoring_in_batches_of_controllers_keeps_the_window_of_the_whole_score() -> None:
    """Batches of two controllers, the fleet's series among them: the rows from the cut on, as scoring all at once."""
    rng = np.random.default_rng(5)
    names = [FLEET, "0xc0", "0xc1", "0xc2", "0xc3"]
    series = pa.concat_tables(hourly_series(steady(rng, 30, 400.0 + 50 * i), name) for i, name in enumerate(names))
    burn = pa.table(
        {"controller_id": ["0xc2"], "window_start": pa.array([T0 + timedelta(hours=25)], TS), "burn_1h": [2.0]}
    )
    whole = score(series, burn)
    expected = whole.filter(pc.greater_equal(whole["window_start"], pa.scalar(T0 + timedelta(hours=20), TS)))
    ordered = sorted(names)
    batches = [ordered[i : i + 2] for i in range(0, len(ordered), 2)]
    batched = score_since(
        (
            (
                series.filter(pc.is_in(series["controller_id"], pa.array(batch))),
                burn.filter(pc.is_in(burn["controller_id"], pa.array(batch))),
            )
            for batch in batches
        ),
        T0 + timedelta(hours=20),
    )
    assert batched.num_rows == 10 * len(names)
    assert batched.equals(expected)
