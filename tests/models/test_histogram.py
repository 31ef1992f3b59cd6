"""Histogram merge and quantiles: merge laws, the stated error bound, accuracy against raw samples, SLI counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.contract import HISTOGRAM_BASE, bucket_index
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from models.grouping import group_ids
from models.histogram import (
    QUANTILE_REL_ERROR_BOUND,
    Histogram,
    bucket_indices,
    from_samples,
    good_events,
    merge,
    merge_table,
    quantiles,
    table_quantiles,
    with_quantiles,
)
from models.rollup import rollup, rollup_stream, with_inventory
from tests.models import tables
from tests.models.latency_rows import latency_table, lognormal_samples, minute, random_fleet

histograms = st.builds(
    Histogram,
    st.integers(-40, 400),
    st.lists(st.integers(0, 10**6), max_size=30).map(lambda c: np.array(c, np.uint64)),
)


def as_counter(h: Histogram) -> Counter:
    return Counter({h.offset + i: int(n) for i, n in enumerate(h.counts) if n})


def same(a: Histogram, b: Histogram) -> bool:
    return a.offset == b.offset and np.array_equal(a.counts, b.counts)


@given(st.lists(histograms, max_size=6))
def test_merge_adds_every_bucket_and_trims_to_the_occupied_span(hs):
    merged = merge(hs)
    expected = sum((as_counter(h) for h in hs), Counter())
    assert as_counter(merged) == expected
    if expected:
        assert merged.counts[0] > 0 and merged.counts[-1] > 0
    else:
        assert merged.counts.size == 0


@given(histograms, histograms, histograms)
def test_merge_is_commutative_and_associative(a, b, c):
    assert same(merge([a, b]), merge([b, a]))
    assert same(merge([merge([a, b]), c]), merge([a, merge([b, c])]))
    assert same(merge([merge([a, b]), c]), merge([a, b, c]))


@given(st.lists(st.floats(1.0, 1e7), min_size=1, max_size=400), st.sampled_from([0.0, 0.5, 0.9, 0.99, 0.999, 1.0]))
@settings(max_examples=200)
def test_quantile_error_never_exceeds_the_stated_bound(samples, q):
    """Whatever the data, the estimate and the nearest-rank order statistic share a bucket."""
    x = np.array(samples)
    estimate = quantiles(from_samples(x), [q], min_ns=x.min(), max_ns=x.max())[0]
    exact = np.quantile(x, q, method="inverted_cdf")
    assert abs(estimate / exact - 1) <= QUANTILE_REL_ERROR_BOUND + 1e-12


def test_bound_is_one_bucket_width():
    assert pytest.approx(HISTOGRAM_BASE - 1) == QUANTILE_REL_ERROR_BOUND
    assert 0.044 < QUANTILE_REL_ERROR_BOUND < 0.045


@pytest.fixture(scope="module")
def simulated() -> tuple[pa.Table, pa.Table]:
    """A small fleet from the simulator's raw-sample test mode: histogram rows and every sample behind them."""
    chunks = list(Simulation(SimConfig(controllers=8, hours=2, interval_s=60, seed=3, raw_samples=True)).chunks())
    latency = pa.concat_tables([c.latency for c in chunks])
    samples = pa.concat_tables([c.samples for c in chunks])
    # Samples carry no tier: local-DRAM rows are keyed by host name, so the tier follows from the id.
    tiers = latency.group_by(["controller_id", "memory_tier"]).aggregate([])
    position = pc.index_in(samples["controller_id"], value_set=tiers["controller_id"])
    hour = pc.floor_temporal(samples["window_start"], unit="hour")
    samples = samples.append_column("memory_tier", tiers["memory_tier"].take(position)).append_column("hour", hour)
    return latency.append_column("hour", pc.floor_temporal(latency["window_start"], unit="hour")), samples


def exact_quantiles(samples: pa.Table, keys: list[str], qs: list[float]) -> dict[tuple, np.ndarray]:
    groups = group_ids(samples, keys)
    order = np.argsort(groups.ids, kind="stable")
    bounds = np.searchsorted(groups.ids[order], np.arange(groups.count + 1))
    values = samples["latency_ns"].to_numpy()[order]
    return {
        tuple(key.values()): np.quantile(values[bounds[g] : bounds[g + 1]], qs, method="inverted_cdf")
        for g, key in enumerate(groups.keys.to_pylist())
    }


def relative_errors(simulated, keys: list[str]) -> np.ndarray:
    """|estimate / exact − 1| of p99 and p99.9 for every group: histograms merged, samples pooled."""
    latency, samples = simulated
    qs = [0.99, 0.999]
    merged = merge_table(latency, keys)
    exact = exact_quantiles(samples, keys, qs)
    truth = np.array([exact[tuple(row.values())] for row in merged.select(keys).to_pylist()])
    return np.abs(table_quantiles(merged, qs) / truth - 1)


@pytest.mark.parametrize("keys", [["memory_tier", "op"], ["controller_id", "op"]])
def test_merged_p99_and_p999_within_2_percent_of_raw_simulator_samples(simulated, keys):
    """Acceptance: fleet-wide and per-controller quantiles, merged across 120 one-minute windows."""
    errors = relative_errors(simulated, keys)
    assert len(errors) >= 4
    assert errors.max() < 0.02


def test_hourly_rollup_quantiles_against_raw_simulator_samples(simulated):
    """Per controller-hour-op: p99 within 2%; p99.9 of a small group rests on a handful of samples per tail
    bucket, where only the stated one-bucket bound holds."""
    errors = relative_errors(simulated, ["controller_id", "op", "hour"])
    assert errors[:, 0].max() < 0.02
    assert errors[:, 1].max() <= QUANTILE_REL_ERROR_BOUND


def test_following_the_density_slope_beats_flat_interpolation_on_a_steep_tail():
    """Lognormal body: the density halves across a tail bucket; the estimator follows it."""
    x = np.random.default_rng(8).lognormal(np.log(300), 0.16, 2_000_000)
    qs = [0.9, 0.99, 0.999]
    errors = np.abs(quantiles(from_samples(x), qs, min_ns=x.min(), max_ns=x.max()) / np.quantile(x, qs) - 1)
    assert errors.max() < 0.002


def test_bucket_indices_match_the_contract():
    values = np.random.default_rng(1).uniform(1, 1e6, 2000)
    values = np.concatenate([values, [1024.0, 2.0**-0.5 * 1024, 1.0, 2**20]])
    assert bucket_indices(values).tolist() == [bucket_index(v) for v in values]
    with pytest.raises(ValueError, match="finite and positive"):
        bucket_indices(np.array([10.0, 0.0]))


def test_quantiles_of_empty_histogram_are_nan_and_q_is_checked():
    assert np.isnan(quantiles(Histogram(0, np.zeros(0, np.uint64)), [0.5])).all()
    assert np.isnan(quantiles(Histogram(10, np.zeros(3, np.uint64)), [0.5])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        quantiles(from_samples(np.array([5.0])), [1.5])


def test_merge_table_groups_like_merging_each_group_by_hand():
    table, samples = random_fleet(np.random.default_rng(3))
    merged = merge_table(table, ["controller_id", "op"])
    pairs = list(zip(merged["controller_id"].to_pylist(), merged["op"].to_pylist(), strict=True))
    assert pairs == sorted({k[:2] for k in samples})
    for row in merged.to_pylist():
        raw = np.concatenate([x for k, x in samples.items() if k[:2] == (row["controller_id"], row["op"])])
        expected = from_samples(raw)
        assert (row["bucket_offset"], row["bucket_counts"]) == (expected.offset, expected.counts.tolist())
        assert row["count"] == raw.size
        assert row["sum_ns"] == pytest.approx(raw.sum())
        assert (row["min_ns"], row["max_ns"]) == (int(np.floor(raw.min())), int(np.ceil(raw.max())))
        assert row["over_slo"] == int((raw > 1024).sum())


@given(st.lists(st.integers(0, 2), min_size=24, max_size=24))
@settings(max_examples=25, deadline=None)
def test_merging_partial_merges_gives_the_same_table(parts):
    """Merge is associative at table level: any split of the rows, merged piecewise, then merged again."""
    table, _ = random_fleet(np.random.default_rng(5), controllers=4, windows=3)
    keys = ["controller_id", "op"]
    labels = np.array(parts)
    pieces = [merge_table(table.filter(pa.array(labels == p)), keys) for p in range(3)]
    twice = merge_table(pa.concat_tables(pieces), keys)
    once = merge_table(table, keys)
    assert twice.drop_columns(["sum_ns"]).equals(once.drop_columns(["sum_ns"]))
    np.testing.assert_allclose(twice["sum_ns"].to_numpy(), once["sum_ns"].to_numpy(), rtol=1e-12)


def test_groups_follow_key_values_across_chunks_with_different_dictionaries():
    rng = np.random.default_rng(12)
    first = latency_table([{"samples": lognormal_samples(rng, 50), "op": op} for op in ("write", "read")])
    second = latency_table([{"samples": lognormal_samples(rng, 50), "op": op} for op in ("read", "read")])
    assert first["op"].chunk(0).dictionary.to_pylist() != second["op"].chunk(0).dictionary.to_pylist()
    both = pa.concat_tables([first, second])
    merged = merge_table(both, ["op"])
    assert merged["op"].to_pylist() == ["read", "write"]
    assert merged["count"].to_pylist() == [150, 50]


def test_windows_without_samples_do_not_drag_min_and_max():
    rng = np.random.default_rng(0)
    table = latency_table([{"samples": lognormal_samples(rng, 100)}, {"samples": []}])
    merged = merge_table(table, [])
    assert merged["min_ns"][0].as_py() == table["min_ns"][0].as_py() > 0
    assert merge_table(table.slice(1), [])["min_ns"][0].as_py() is None


def test_merge_table_refuses_incomparable_rows():
    rng = np.random.default_rng(0)
    mixed_threshold = latency_table(
        [{"samples": lognormal_samples(rng, 50)}, {"samples": lognormal_samples(rng, 50), "slo_threshold_ns": 2048}]
    )
    with pytest.raises(ValueError, match="slo_threshold_ns"):
        merge_table(mixed_threshold, [])
    assert merge_table(mixed_threshold, ["slo_threshold_ns"]).num_rows == 2
    mixed_scale = mixed_threshold.set_column(
        mixed_threshold.schema.get_field_index("scale"), "scale", pa.array([4, 3], pa.int8())
    )
    with pytest.raises(ValueError, match="different scales"):
        merge_table(mixed_scale, ["slo_threshold_ns"])
    with pytest.raises(ValueError, match="missing columns"):
        merge_table(mixed_threshold.drop_columns(["over_slo"]), [])


def test_good_events_uses_exact_counters_or_bucket_boundaries():
    rng = np.random.default_rng(2)
    x = lognormal_samples(rng, 5000, median_ns=600, tail=0.2)
    table = latency_table([{"samples": x}])
    assert good_events(table, 1024).tolist() == [int((x <= 1024).sum())]
    assert good_events(table, 512).tolist() == [int((x <= 512).sum())]
    assert good_events(table, 2048).tolist() == [int((x <= 2048).sum())]
    with pytest.raises(ValueError, match="bucket boundary"):
        good_events(table, 1000)


def test_with_quantiles_adds_named_columns_read_from_each_row():
    table, samples = random_fleet(np.random.default_rng(4), controllers=1, windows=1)
    result = with_quantiles(table)
    assert result.column_names[-4:] == ["p50_ns", "p90_ns", "p99_ns", "p999_ns"]
    for row in result.to_pylist():
        raw = samples[(row["controller_id"], row["op"], 0)]
        exact = np.quantile(raw, 0.99, method="inverted_cdf")
        assert abs(row["p99_ns"] / exact - 1) <= QUANTILE_REL_ERROR_BOUND


def test_rollup_merges_per_controller_hour_op_and_rolls_up_again():
    rng = np.random.default_rng(6)
    rows = [
        {"samples": lognormal_samples(rng, 300), "controller_id": c, "op": op, "window_start": minute(m)}
        for c in ("0xa", "0xb")
        for op in ("read", "write")
        for m in range(0, 180, 10)
    ]
    table = latency_table(rows)
    hourly = rollup(table, every_s=3600)
    assert hourly.num_rows == 2 * 2 * 3
    assert set(hourly["window_s"].to_pylist()) == {3600}
    assert hourly.column_names[:6] == ["host", "controller_id", "memory_tier", "op", "window_start", "window_s"]
    # Hours into a 3-hour window equals the raw rows into it; a stream of 36 batches (compacted twice on the
    # way) equals the whole table.
    direct = rollup(table, every_s=3 * 3600).drop_columns(["sum_ns"])
    assert rollup(hourly, every_s=3 * 3600).drop_columns(["sum_ns"]).equals(direct)
    assert rollup_stream(table.to_batches(max_chunksize=2), every_s=3 * 3600).drop_columns(["sum_ns"]).equals(direct)


def test_rollup_refuses_windows_that_straddle_the_rollup_window():
    table = latency_table([{"samples": [300.0], "window_start": minute(59), "window_s": 120}])
    with pytest.raises(ValueError, match="does not fit"):
        rollup(table, every_s=3600)


def test_with_inventory_takes_the_latest_row_per_controller():
    table = latency_table([{"samples": [300.0], "controller_id": "0xa"}, {"samples": [300.0], "controller_id": "0xb"}])
    inventory = tables.inventory(
        {"controller_id": "0xa", "rack": "rack-old", "deployed_at": tables.at(0)},
        {"controller_id": "0xa", "rack": "rack-new", "deployed_at": tables.at(60)},
        {"controller_id": "0xb", "rack": "rack-b"},
    )
    joined = with_inventory(table, inventory, ["rack"])
    assert joined["controller_id"].to_pylist() == ["0xa", "0xb"]
    assert joined["rack"].to_pylist() == ["rack-new", "rack-b"]
