"""Every table the simulator produces conforms to the telemetry contract, and histograms obey its layout."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.contract import (
    ERRORS_SCHEMA,
    HISTOGRAM_BASE,
    INVENTORY_SCHEMA,
    LATENCY_SAMPLES_SCHEMA,
    LATENCY_SCHEMA,
    LINK_SCHEMA,
    TRUTH_FAULTS_SCHEMA,
    bucket_index,
    conform,
)
from ingest.sim.arrow_columns import dictionary, dictionary_block
from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.simulator import Simulation


@pytest.fixture(scope="module")
def chunks():
    sim = Simulation(SimConfig(controllers=60, hours=1.0, seed=3, chunk_intervals=20))
    return sim, list(sim.chunks())


def test_raw_samples_conform_to_their_schema():
    chunk = next(Simulation(SimConfig(controllers=4, hours=0.25, raw_samples=True)).chunks())
    assert chunk.samples.schema == LATENCY_SAMPLES_SCHEMA
    assert conform(chunk.samples, LATENCY_SAMPLES_SCHEMA).equals(chunk.samples)


def test_every_chunk_table_conforms_to_its_schema(chunks):
    sim, produced = chunks
    assert conform(sim.inventory, INVENTORY_SCHEMA).equals(sim.inventory)
    for chunk in produced:
        for table, schema in (
            (chunk.errors, ERRORS_SCHEMA),
            (chunk.link, LINK_SCHEMA),
            (chunk.latency, LATENCY_SCHEMA),
            (chunk.truth, TRUTH_FAULTS_SCHEMA),
        ):
            assert table.schema == schema
            assert conform(table, schema).equals(table)


def test_conform_rejects_a_table_that_breaks_the_contract(chunks):
    link = chunks[1][0].link
    with pytest.raises(ValueError, match="missing"):
        conform(link.drop_columns(["rx_err"]), LINK_SCHEMA)
    with pytest.raises(ValueError, match="nulls"):
        nulls = pa.nulls(link.num_rows, pa.uint32())
        conform(link.set_column(link.schema.get_field_index("counter_epoch"), "counter_epoch", nulls), LINK_SCHEMA)


def test_histogram_rows_are_consistent_with_the_bucket_layout():
    """Counts sum to `count`; min and max sit in the first and last bucket; over_slo matches the buckets above
    the SLO (1024 ns is a bucket boundary), in the fast template path."""
    latency = pa.concat_tables(c.latency for c in Simulation(SimConfig(controllers=80, hours=0.5, seed=5)).chunks())
    counts = latency.column("bucket_counts").combine_chunks()
    offsets = latency.column("bucket_offset").to_numpy()
    lengths = pc.list_value_length(counts).to_numpy()
    values = counts.flatten().to_numpy().astype(np.int64)
    row = np.repeat(np.arange(len(lengths)), lengths)
    bucket = offsets[row] + (np.arange(values.size) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    total = np.bincount(row, weights=values, minlength=len(lengths))
    assert np.array_equal(total, latency.column("count").to_numpy())
    slo_bucket = bucket_index(1024)
    above = np.bincount(row, weights=values * (bucket > slo_bucket), minlength=len(lengths))
    assert np.array_equal(above, latency.column("over_slo").to_numpy())
    first_nonzero = values[np.cumsum(lengths) - lengths]
    last_nonzero = values[np.cumsum(lengths) - 1]
    assert (first_nonzero > 0).all() and (last_nonzero > 0).all()
    min_ns = latency.column("min_ns").to_numpy().astype(float)
    max_ns = latency.column("max_ns").to_numpy().astype(float)
    assert (min_ns > HISTOGRAM_BASE**offsets).all() and (min_ns <= HISTOGRAM_BASE ** (offsets + 1)).all()
    last = offsets + lengths - 1
    assert (max_ns > HISTOGRAM_BASE**last).all() and (max_ns <= HISTOGRAM_BASE ** (last + 1)).all()
    mean = latency.column("sum_ns").to_numpy() / latency.column("count").to_numpy()
    assert ((mean >= min_ns - 1) & (mean <= max_ns + 1)).all()


def test_raw_mode_histograms_are_exactly_the_binned_samples():
    """In raw mode each histogram is its own samples, binned with the contract's bucket_index rule."""
    # Raw samples are drawn before the confounders: the firmware rollout shifts the histograms only.
    clean = confounder_knobs("off")
    chunk = next(Simulation(SimConfig(controllers=12, hours=0.5, seed=4, raw_samples=True, confounders=clean)).chunks())
    latency, samples = chunk.latency, chunk.samples
    row_key, sample_key = (_row_keys(table, chunk.window_start) for table in (latency, samples))
    order = np.argsort(row_key)
    row = order[np.searchsorted(row_key, sample_key, sorter=order)]
    assert np.array_equal(row_key[row], sample_key)
    ns = samples.column("latency_ns").to_numpy()
    n = latency.num_rows
    assert np.array_equal(np.bincount(row, minlength=n), latency.column("count").to_numpy())
    assert np.allclose(np.bincount(row, weights=ns, minlength=n), latency.column("sum_ns").to_numpy())
    assert np.array_equal(np.bincount(row, weights=ns > 1024, minlength=n), latency.column("over_slo").to_numpy())
    buckets = np.ceil(np.log2(ns) * 16).astype(np.int64) - 1
    assert all(buckets[i] == bucket_index(float(ns[i])) for i in range(0, ns.size, max(1, ns.size // 500)))
    lowest = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(lowest, row, buckets)
    assert np.array_equal(lowest, latency.column("bucket_offset").to_numpy())


def _row_keys(table: pa.Table, start) -> np.ndarray:
    """(window, controller, op) as one integer, to join samples to their histogram rows."""
    window = (table.column("window_start").cast(pa.int64()).to_numpy() - int(start.timestamp() * 1e9)) // 10**9
    ids = pc.dictionary_encode(table.column("controller_id")).combine_chunks()
    names = {name: i for i, name in enumerate(sorted(ids.dictionary.to_pylist()))}
    controller = np.array([names[name] for name in ids.dictionary.to_pylist()])[ids.indices.to_numpy()]
    op = pc.equal(table.column("op").cast(pa.string()), "write").to_numpy(zero_copy_only=False)
    return (window * 100_000 + controller) * 2 + op


@pytest.mark.parametrize("grouped", [True, False])
def test_dictionary_columns_hold_more_names_than_int16_indices_allow(grouped):
    """Fleets beyond 32,767 hosts still produce dictionary<int16, string> columns with the right values."""
    names = pa.array([f"host-{i:06d}" for i in range(80_000)])
    indices = np.random.default_rng(0).integers(0, len(names), 100_000)
    if grouped:
        indices = indices[np.argsort(dictionary_block(indices), kind="stable")]
    column = dictionary(indices, names)
    assert column.type == pa.dictionary(pa.int16(), pa.string())
    assert column.cast(pa.string()).to_pylist() == names.take(pa.array(indices)).to_pylist()
