"""Base-2 exponential latency histograms: merge, quantiles and threshold counts, vectorized over Arrow rows.

Percentiles cannot be averaged across controllers or windows; histograms at one fleet-wide scale can be added
bucket by bucket and then read (pipeline_patterns.md §5). A histogram is `(offset, counts)`: `counts[j]` is the
number of samples in bucket `offset + j`, which covers (base**i, base**(i+1)] with base = 2**(2**-scale)
(ingest/contract.py). Every function here works on many rows at once (one row = one histogram, as in the
latency table), and the single-histogram helpers call the same code with one row, so there is one answer.

Quantile estimator, and its bound. The estimate for quantile q of N samples lies in the bucket b that holds
rank ceil(q·N) (the nearest-rank order statistic). Inside b the density over log(x) is taken as exponential,
with slope s = ½·ln((n[b+1] + ½) / (n[b−1] + ½)) per bucket (the central difference of the neighbouring
counts; the half-count keeps an empty neighbour finite), and the estimate is the point below which the share
f = (q·N − samples below b) / n[b] of the bucket lies: base**(b + u), u = ln(1 + f·(eˢ − 1)) / s (u = f when
s = 0), then clamped to the group's exact [min_ns, max_ns]. u stays in [0, 1], so the estimate and the true
order statistic share bucket b and the relative error is at most one bucket width, base − 1 = 4.43% at scale 4
(QUANTILE_REL_ERROR_BOUND), for any data whatsoever. In the tail of a latency distribution the density falls
by half or more across one bucket; following that slope reads p90/p99 of the simulated fleet to ~0.2%, where
log-uniform interpolation errs by up to ~1% and the bucket's geometric midpoint by up to its 2.17% bound.
Where a bucket holds only a handful of samples (p99.9 of a small group) no estimator can place them: the
error is then noise within the bucket, still inside the bound.
Counts are added in float64, exact while a merged bucket holds fewer than 2**53 samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import HISTOGRAM_BASE, HISTOGRAM_SCALE, described
from models.grouping import group_ids

QUANTILE_REL_ERROR_BOUND = HISTOGRAM_BASE - 1.0
DEFAULT_QUANTILES = (0.5, 0.9, 0.99, 0.999)

# Columns of a mergeable histogram row; merge_table returns exactly these after the keys, so its output can
# be merged again (hourly rollups into days, partial rollups of a stream into one).
MERGED_FIELDS = (
    described("scale", pa.int8(), "histogram scale: bucket i covers (base^i, base^(i+1)] ns", nullable=False),
    described("bucket_offset", pa.int32(), "bucket number of the first element of bucket_counts", nullable=False),
    described(
        "bucket_counts", pa.list_(pa.uint64()), "merged samples per bucket, dense from bucket_offset", nullable=False
    ),
    described("count", pa.uint64(), "samples merged into the row", nullable=False),
    described("sum_ns", pa.float64(), "sum of the samples, ns: the exact mean is sum_ns / count", nullable=False),
    described("min_ns", pa.uint32(), "smallest sample, ns; null when the group holds no samples"),
    described("max_ns", pa.uint32(), "largest sample, ns; null when the group holds no samples"),
    described("slo_threshold_ns", pa.uint32(), "the latency threshold over_slo counts against, ns", nullable=False),
    described("over_slo", pa.uint64(), "exact count of samples above slo_threshold_ns", nullable=False),
)
MERGED_COLUMNS = tuple(field.name for field in MERGED_FIELDS)

# Merge at most this many (group, bucket) cells at once, bounding memory to ~128 MiB whatever the keys.
_MAX_CELLS = 1 << 24
# Add about this many bucket counts per bincount: its temporaries (16 bytes a count) stay small and are reused,
# where one bincount over a 4-hour fleet chunk (16 M counts) took 2.2 s in a fresh process, 0.2 s blocked.
_BLOCK_COUNTS = 1 << 20


class Histogram(NamedTuple):
    offset: int
    counts: np.ndarray


def bucket_indices(values_ns: np.ndarray, scale: int = HISTOGRAM_SCALE) -> np.ndarray:
    """Bucket of each sample: i = ceil(log2(x) · 2**scale) − 1 (the contract's `bucket_index`, vectorized)."""
    values = np.asarray(values_ns, dtype=np.float64)
    if values.size and not (np.isfinite(values).all() and values.min() > 0):
        raise ValueError("latency samples must be finite and positive")
    return (np.ceil(np.log2(values) * 2.0**scale) - 1).astype(np.int64)


def from_samples(values_ns: np.ndarray, scale: int = HISTOGRAM_SCALE) -> Histogram:
    """Bin raw samples: what a device does in firmware, here for tests, debug streams and ad-hoc series."""
    indices = bucket_indices(values_ns, scale)
    if not indices.size:
        return Histogram(0, np.zeros(0, np.uint64))
    low = int(indices.min())
    return Histogram(low, np.bincount(indices - low).astype(np.uint64))


def _as_lists(histograms: Sequence[Histogram]) -> tuple[np.ndarray, pa.ListArray]:
    offsets = np.array([h.offset for h in histograms], dtype=np.int64)
    counts = pa.array([np.asarray(h.counts, dtype=np.uint64) for h in histograms], type=pa.list_(pa.uint64()))
    return offsets, counts


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Add histograms bucket by bucket; the result is trimmed to its first and last non-empty bucket."""
    offsets, counts = _as_lists(list(histograms))
    merged_offsets, merged_counts = merge_lists(np.zeros(len(offsets), np.int64), 1, offsets, counts)
    return Histogram(int(merged_offsets[0]), merged_counts[0].values.to_numpy(zero_copy_only=False))


def quantiles(
    histogram: Histogram,
    qs: Sequence[float],
    scale: int = HISTOGRAM_SCALE,
    min_ns: float | None = None,
    max_ns: float | None = None,
) -> np.ndarray:
    """Quantile estimates of one histogram (module docstring: estimator and bound); NaN when it is empty."""
    offsets, counts = _as_lists([histogram])
    bounds = [np.array([np.nan if v is None else v], dtype=np.float64) for v in (min_ns, max_ns)]
    return list_quantiles(offsets, counts, qs, np.array([scale]), *bounds)[0]


@dataclass(frozen=True)
class _Lists:
    """Many rows' dense lists, flattened: row i counts values[starts[i]:starts[i] + lengths[i]] samples in
    buckets offset[i], offset[i] + 1, ... No per-element row or bucket array is ever built."""

    offset: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, bucket_offset: np.ndarray, counts: pa.Array | pa.ChunkedArray) -> _Lists:
        lengths = pc.list_value_length(counts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        values = pc.list_flatten(counts).to_numpy(zero_copy_only=False)
        return cls(np.asarray(bucket_offset, np.int64), lengths, np.cumsum(lengths) - lengths, values)

    def prefix(self) -> np.ndarray:
        """Running sample count before each element, with the grand total appended."""
        return np.concatenate([np.zeros(1, np.uint64), np.cumsum(self.values, dtype=np.uint64)])


def _trim(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a (groups × buckets) matrix: first non-empty column, run length, and the kept cells."""
    nonzero = dense > 0
    has_data = nonzero.any(axis=1)
    width = dense.shape[1]
    first = np.where(has_data, nonzero.argmax(axis=1), 0)
    last = np.where(has_data, width - 1 - nonzero[:, ::-1].argmax(axis=1), -1)
    columns = np.arange(width)
    kept = (columns >= first[:, None]) & (columns <= last[:, None])
    return first, last - first + 1, dense[kept]


def merge_lists(
    group: np.ndarray, groups: int, bucket_offset: np.ndarray, counts: pa.Array | pa.ChunkedArray
) -> tuple[np.ndarray, pa.ListArray]:
    """Add the histogram of every row into its group's: returns (bucket_offset, bucket_counts) per group.

    Weighted `np.bincount`s over (group, bucket) cells; groups are taken in slices so memory stays bounded.
    """
    lists = _Lists.of(bucket_offset, counts)
    offsets = np.zeros(groups, np.int64)
    lengths = np.zeros(groups, np.int64)
    parts: list[np.ndarray] = []
    if lists.values.size:
        occupied = lists.lengths > 0
        low = int(lists.offset[occupied].min())
        width = int((lists.offset + lists.lengths)[occupied].max()) - low
        row_cell = group * width + lists.offset - low  # the cell of each row's first bucket
        per_pass = max(1, _MAX_CELLS // width)
        for start in range(0, groups, per_pass):
            stop = min(groups, start + per_pass)
            rows = np.flatnonzero((group >= start) & (group < stop)) if per_pass < groups else np.arange(group.size)
            dense = _add_rows(lists, row_cell - start * width, rows, (stop - start) * width)
            first, lengths[start:stop], kept = _trim(dense.reshape(stop - start, width))
            offsets[start:stop] = np.where(lengths[start:stop] > 0, low + first, 0)
            parts.append(kept)
    flat = np.rint(np.concatenate(parts)).astype(np.uint64) if parts else np.zeros(0, np.uint64)
    list_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return offsets, pa.ListArray.from_arrays(pa.array(list_offsets), pa.array(flat, pa.uint64()))


def _add_rows(lists: _Lists, row_cell: np.ndarray, rows: np.ndarray, cells: int) -> np.ndarray:
    """Every bucket count of `rows` (ascending) added into a dense array of `cells` cells, about _BLOCK_COUNTS
    at a time. Consecutive rows hold consecutive counts, so a block of them is a slice of `lists.values`."""
    dense = np.zeros(cells)
    blocks = max(1, int(lists.lengths[rows].sum()) // _BLOCK_COUNTS)
    for block in np.array_split(rows, blocks):
        lengths = lists.lengths[block]
        if block[-1] - block[0] + 1 == block.size:
            first, last = int(lists.starts[block[0]]), int(lists.starts[block[-1]] + lengths[-1])
            elements = np.arange(first, last)
        else:
            elements = np.repeat(lists.starts[block] - (np.cumsum(lengths) - lengths), lengths)
            elements += np.arange(elements.size)
        cell = np.repeat(row_cell[block] - lists.starts[block], lengths) + elements
        dense += np.bincount(cell, weights=lists.values[elements], minlength=cells)
    return dense


def list_quantiles(
    bucket_offset: np.ndarray,
    counts: pa.Array | pa.ChunkedArray,
    qs: Sequence[float],
    scale: np.ndarray,
    min_ns: np.ndarray | None = None,
    max_ns: np.ndarray | None = None,
) -> np.ndarray:
    """(rows × len(qs)) quantile estimates, NaN for empty rows; `min_ns`/`max_ns` (NaN = unknown) clamp them."""
    q = np.asarray(qs, dtype=np.float64)
    if q.size and not (q.min() >= 0 and q.max() <= 1):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(qs)}")
    lists = _Lists.of(bucket_offset, counts)
    prefix = lists.prefix()
    before_row = prefix[lists.starts]
    total = prefix[lists.starts + lists.lengths] - before_row
    rank = q[None, :] * total[:, None].astype(np.float64)
    # The bucket holding the nearest-rank order statistic: the first whose running count reaches ceil(rank).
    needed = np.maximum(np.ceil(rank), 1).astype(np.uint64)
    position = np.searchsorted(prefix[1:], before_row[:, None] + needed, side="left")
    empty = total == 0
    position[empty] = 0
    if not lists.values.size:
        return np.full(rank.shape, np.nan)
    below = (prefix[position] - before_row[:, None]).astype(np.float64)
    bucket = lists.offset[:, None] + position - lists.starts[:, None]
    first, end = lists.starts[:, None], (lists.starts + lists.lengths)[:, None]
    last_element = lists.values.size - 1
    under = np.where(position > first, lists.values[np.maximum(position - 1, 0)], 0).astype(np.float64)
    over = np.where(position + 1 < end, lists.values[np.minimum(position + 1, last_element)], 0).astype(np.float64)
    slope = 0.5 * np.log((over + 0.5) / (under + 0.5))
    with np.errstate(invalid="ignore", divide="ignore"):  # empty rows (set to NaN below) and zero slopes
        fraction = (rank - below) / lists.values[position]
        within = np.where(slope == 0, fraction, np.log(1 + fraction * (np.exp(slope) - 1)) / slope)
    estimate = np.exp2((bucket + within) / 2.0 ** np.asarray(scale, np.float64)[:, None])
    if min_ns is not None:
        estimate = np.fmax(estimate, np.asarray(min_ns, np.float64)[:, None])
    if max_ns is not None:
        estimate = np.fmin(estimate, np.asarray(max_ns, np.float64)[:, None])
    estimate[empty] = np.nan
    return estimate


def _numpy(table: pa.Table, column: str, dtype: type = np.float64) -> np.ndarray:
    """A column as numpy, nulls as NaN (floats) so they drop out of clamps."""
    array = table.column(column)
    if dtype is np.float64:
        array = array.cast(pa.float64()).fill_null(np.nan)
    return array.to_numpy().astype(dtype)


def _uniform_scale(table: pa.Table) -> int:
    low, high = (v.as_py() for v in pc.min_max(table.column("scale")).values())
    if low != high:
        raise ValueError(f"histograms at different scales ({low} and {high}) cannot be merged")
    return HISTOGRAM_SCALE if low is None else int(low)


def merge_table(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """Merge the histogram rows of `table` per distinct `keys`: keys + MERGED_COLUMNS, one row per group.

    Counts and sums add, extremes combine (windows without samples do not count), and over_slo adds only
    between rows with the same slo_threshold_ns (counts above different thresholds are not comparable).
    Extra columns are ignored. The output is itself a valid input, so merging is associative.
    """
    missing = [c for c in (*keys, *MERGED_COLUMNS) if c not in table.column_names]
    if missing:
        raise ValueError(f"not a latency histogram table: missing columns {missing}")
    scale = _uniform_scale(table)
    groups = group_ids(table, keys)
    offsets, lists = merge_lists(
        groups.ids, groups.count, _numpy(table, "bucket_offset", np.int64), table.column("bucket_counts")
    )
    has_samples = pc.greater(table.column("count"), 0)
    counters = (
        pa.table(
            {
                "group": groups.ids,
                "count": table.column("count"),
                "sum_ns": table.column("sum_ns"),
                "min_ns": pc.if_else(has_samples, table.column("min_ns"), None),
                "max_ns": pc.if_else(has_samples, table.column("max_ns"), None),
                "threshold": table.column("slo_threshold_ns"),
                "over_slo": table.column("over_slo"),
            }
        )
        .group_by("group", use_threads=False)
        .aggregate(
            [
                ("count", "sum"),
                ("sum_ns", "sum"),
                ("min_ns", "min"),
                ("max_ns", "max"),
                ("threshold", "min"),
                ("threshold", "max"),
                ("over_slo", "sum"),
            ]
        )
        .sort_by("group")
    )
    mixed = np.flatnonzero(pc.not_equal(counters["threshold_min"], counters["threshold_max"]).to_numpy())
    if mixed.size:
        where = {key: groups.keys.column(key)[mixed[0]].as_py() for key in keys}
        raise ValueError(f"rows with different slo_threshold_ns cannot be merged (group {where})")
    columns = [
        pa.array(np.full(groups.count, scale), pa.int8()),
        pa.array(offsets, pa.int32()),
        lists,
        counters["count_sum"],
        counters["sum_ns_sum"],
        counters["min_ns_min"],
        counters["max_ns_max"],
        counters["threshold_min"],
        counters["over_slo_sum"],
    ]
    merged = pa.Table.from_arrays([*groups.keys.columns, *columns], names=[*keys, *MERGED_COLUMNS])
    return merged.cast(pa.schema([*groups.keys.schema, *MERGED_FIELDS]))


def quantile_name(q: float) -> str:
    """0.99 → 'p99_ns', 0.999 → 'p999_ns': the column names used in tables and reports."""
    return "p" + f"{q * 100:g}".replace(".", "") + "_ns"


def table_quantiles(table: pa.Table, qs: Sequence[float] = DEFAULT_QUANTILES) -> np.ndarray:
    """(rows × len(qs)) quantile estimates for each histogram row of `table`, clamped to its min/max."""
    return list_quantiles(
        _numpy(table, "bucket_offset", np.int64),
        table.column("bucket_counts"),
        qs,
        _numpy(table, "scale", np.int64),
        _numpy(table, "min_ns"),
        _numpy(table, "max_ns"),
    )


def with_quantiles(table: pa.Table, qs: Sequence[float] = DEFAULT_QUANTILES) -> pa.Table:
    """`table` plus one float64 column per quantile (e.g. p99_ns), each read from the row's own histogram."""
    estimates = table_quantiles(table, qs)
    for j, q in enumerate(qs):
        column = described(quantile_name(q), pa.float64(), f"the {q:g} quantile of the row's merged histogram, ns")
        table = table.append_column(column, pa.array(estimates[:, j], pa.float64(), from_pandas=True))
    return table


def good_events(table: pa.Table, threshold_ns: int) -> np.ndarray:
    """Per row, the samples at or below `threshold_ns`: exact from the over_slo counter where the row's
    slo_threshold_ns is that threshold, otherwise from the buckets, which is exact only on a bucket
    boundary (a threshold elsewhere raises ValueError rather than guess)."""
    count = table.column("count").to_numpy().astype(np.int64)
    exact = _numpy(table, "slo_threshold_ns", np.int64) == threshold_ns
    if exact.all():
        return count - table.column("over_slo").to_numpy().astype(np.int64)
    boundary = np.log2(float(threshold_ns)) * 2.0 ** _numpy(table, "scale", np.int64)
    if not np.all(exact | (boundary == np.round(boundary))):
        raise ValueError(
            f"threshold {threshold_ns} ns is neither the rows' counter threshold nor a bucket boundary; "
            "a power of two is a boundary at every scale"
        )
    lists = _Lists.of(_numpy(table, "bucket_offset", np.int64), table.column("bucket_counts"))
    # Buckets below boundary k hold exactly the samples <= base**k: a prefix of each row's list.
    inside = np.clip(np.round(boundary).astype(np.int64) - lists.offset, 0, lists.lengths)
    prefix = lists.prefix()
    from_buckets = (prefix[lists.starts + inside] - prefix[lists.starts]).astype(np.int64)
    return np.where(exact, count - table.column("over_slo").to_numpy().astype(np.int64), from_buckets)
