"""Per-controller time series out of contract tables: column access, ordering and the counter-epoch delta rule.

Every detector in models/ reads the same raw tables (millions of rows at fleet scale), so the conversions to numpy,
the (controller, time) ordering and the delta rule of telemetry.md §4 live here once. Unknown columns (the lake's
kafka_* columns) are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import LINK_PORTS

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
NULL_TS = np.iinfo(np.int64).min


def timestamps_ns(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamp column as int64 ns since the epoch; nulls become NULL_TS so comparisons stay integer-exact."""
    return pc.fill_null(column.cast(pa.int64()), NULL_TS).to_numpy()


def numbers(column: pa.ChunkedArray | pa.Array, fill: float = np.nan) -> np.ndarray:
    """Numeric column as float64 with nulls replaced by `fill` (NaN by default: absent is not zero)."""
    return pc.fill_null(column.cast(pa.float64()), fill).to_numpy()


def equals(column: pa.ChunkedArray | pa.Array, value: str) -> np.ndarray:
    """Boolean mask of rows whose (dictionary or plain) string column equals `value`; nulls are False."""
    return pc.fill_null(pc.equal(column, value), False).to_numpy()


def is_in(column: pa.ChunkedArray | pa.Array, values: tuple[str, ...]) -> np.ndarray:
    mask = pc.is_in(column.cast(pa.string()), value_set=pa.array(values, pa.string()))
    return pc.fill_null(mask, False).to_numpy()


@dataclass(frozen=True)
class Controllers:
    """A fixed, sorted list of controller ids and the mapping of any id column onto its integer codes."""

    ids: pa.Array

    @classmethod
    def of(cls, *columns: pa.ChunkedArray | pa.Array) -> Controllers:
        uniques = pa.chunked_array(
            [pc.unique(c.cast(pa.string())) for c in columns if len(c)], type=pa.string()
        ).unique()
        return cls(uniques.take(pc.sort_indices(uniques)))

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Integer code per row (-1 for an id outside this list)."""
        return pc.fill_null(pc.index_in(column.cast(pa.string()), value_set=self.ids), -1).to_numpy().astype(np.int64)


def order_by_controller_time(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row order that sorts by controller code, then time (stable, so ties keep their arrival order)."""
    return np.lexsort((ts, codes))


def group_starts(sorted_codes: np.ndarray) -> np.ndarray:
    """True on the first row of each controller in code-sorted data."""
    first = np.ones(len(sorted_codes), dtype=bool)
    first[1:] = sorted_codes[1:] != sorted_codes[:-1]
    return first


def median_spacing_s(codes: np.ndarray, ts: np.ndarray) -> float:
    """Median time between consecutive rows of one controller: the cadence of a periodic stream."""
    order = order_by_controller_time(codes, ts)
    codes, ts = codes[order], ts[order]
    gaps = np.diff(ts)[~group_starts(codes)[1:]]
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) / NS_PER_S if len(gaps) else float("nan")


@dataclass(frozen=True)
class Deltas:
    """Per-row increments of a cumulative counter under the delta rule, plus where the rule had to intervene."""

    values: np.ndarray  # increments; 0 on a controller's first row (its earlier history is unknown)
    new_epoch: np.ndarray  # the row opened a new counter epoch
    decreased: np.ndarray  # same epoch but smaller: a data-quality flag (or a reset the epoch did not record)


COUNTER_32_BIT = 2.0**32  # the width of the CXL health counters and of older firmware's link tallies


def epoch_deltas(sorted_codes: np.ndarray, epochs: np.ndarray, values: np.ndarray) -> Deltas:
    """telemetry.md §4: same epoch -> value - previous; new epoch -> value; same epoch but smaller -> flag, 0.

    Rows must already be sorted by (controller, time). A row still carrying an epoch older than the highest seen
    (a late arrival) contributes 0 and is skipped as "previous", so it neither opens nor closes an epoch.
    """
    n = len(values)
    values = values.astype(np.float64)
    epochs = epochs.astype(np.int64)
    first = group_starts(sorted_codes)
    high = running_max_per_group(epochs, first)
    current = epochs == high
    # Index of the last current row strictly before each row, within the same controller (-1 if none).
    idx = np.where(current, np.arange(n), -1)
    last_current = np.maximum.accumulate(idx) if n else idx
    prev = np.full(n, -1, dtype=np.int64)
    prev[1:] = last_current[:-1]
    group_first_idx = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else idx
    has_prev = current & (prev >= group_first_idx)
    safe_prev = np.where(has_prev, prev, 0)
    new_epoch = has_prev & (epochs > epochs[safe_prev])
    raw = _unwrapped(values - values[safe_prev], values[safe_prev])
    same = has_prev & ~new_epoch
    decreased = same & (raw < 0)
    out = np.where(new_epoch, values, np.where(same & ~decreased, raw, 0.0))
    return Deltas(values=out, new_epoch=new_epoch, decreased=decreased)


def _unwrapped(raw: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Deltas of cumulative counters that may be 32-bit: a fall from the top half of the 32-bit range to a value
    a small step past 2^32 is a wrap, and a rise by whole multiples of 2^32 is the counter widening to 64 bits
    (a firmware update), not 4 billion errors. No interval holds 2^31 real increments."""
    wrapped = (raw < 0) & (previous >= COUNTER_32_BIT / 2) & (raw + COUNTER_32_BIT >= 0)
    wrapped &= raw + COUNTER_32_BIT < COUNTER_32_BIT / 2
    raw = np.where(wrapped, raw + COUNTER_32_BIT, raw)
    return np.where(raw >= COUNTER_32_BIT, raw % COUNTER_32_BIT, raw)


def running_max_per_group(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Cumulative max that restarts on every `first` row (rows grouped contiguously)."""
    if not len(values):
        return values
    # Dense ranks keep the lifted values small: lifting each group above all earlier ones lets a single global
    # cummax respect the group boundaries without overflowing int64 on nanosecond timestamps.
    uniques, ranks = np.unique(values, return_inverse=True)
    group = np.cumsum(first) - 1
    span = len(uniques)
    return uniques[np.maximum.accumulate(ranks + group * span) - group * span]


def series_codes(controller_codes: np.ndarray, ports: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """One code per (controller, link port): link counters are cumulative per port, not per controller."""
    port_index = pc.fill_null(pc.index_in(ports.cast(pa.string()), value_set=pa.array(LINK_PORTS)), 0).to_numpy()
    return controller_codes * len(LINK_PORTS) + port_index
