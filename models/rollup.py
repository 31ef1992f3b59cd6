"""Latency rollups: raw per-window histogram rows merged per key and coarser time window (e.g. controller-hour-op).

The Dagster "latency rollups" asset, the benchmarks and SLO reports call these, so every consumer reads the
same merged histograms. A rollup has the raw table's histogram columns, so rollups roll up again (hours into
days, the partial rollups of a stream into one) with the same code and the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import described
from models.grouping import group_ids
from models.histogram import merge_table

ROLLUP_KEYS = ("host", "controller_id", "memory_tier", "op")
# How many partial rollups a stream accumulates before they are merged into one.
_PARTIALS_BEFORE_COMPACTION = 16


def floor_windows(table: pa.Table, every_s: int) -> pa.Array:
    """Each row's window_start floored to a multiple of `every_s` since the epoch (UTC).

    Raises ValueError when a row's own window (window_start + window_s) straddles two such windows, since
    its counts could then not be attributed to one of them.
    """
    if every_s <= 0:
        raise ValueError(f"window length must be positive, got {every_s} s")
    start = table.column("window_start")
    start_ns = start.cast(pa.int64()).to_numpy()
    every_ns = every_s * 1_000_000_000
    floored = start_ns - start_ns % every_ns
    last_ns = start_ns + table.column("window_s").to_numpy().astype(np.int64) * 1_000_000_000 - 1
    straddling = (last_ns - last_ns % every_ns) != floored
    if straddling.any():
        first = int(np.argmax(straddling))
        raise ValueError(
            f"a {int(table.column('window_s')[first].as_py())} s window starting at "
            f"{start[first].as_py()} does not fit in one {every_s} s window"
        )
    return pa.array(floored, pa.int64()).cast(start.type)


def rollup(latency: pa.Table, every_s: int = 3600, keys: Sequence[str] = ROLLUP_KEYS) -> pa.Table:
    """Merge histogram rows per `keys` and `every_s`-second window.

    Columns: keys, window_start, window_s (uint32), then histogram.MERGED_COLUMNS. Unknown columns (e.g.
    kafka_*) are ignored.
    """
    windows = floor_windows(latency, every_s)
    columns = [c for c in latency.column_names if c != "window_start"]
    keyed = latency.select(columns).append_column(latency.schema.field("window_start"), windows)
    merged = merge_table(keyed, [*keys, "window_start"])
    position = merged.column_names.index("window_start") + 1
    window_s = described("window_s", pa.uint32(), "length of the rollup window, seconds", nullable=False)
    return merged.add_column(position, window_s, pa.array(np.full(merged.num_rows, every_s), pa.uint32()))


def rollup_stream(
    batches: Iterable[pa.RecordBatch | pa.Table], every_s: int = 3600, keys: Sequence[str] = ROLLUP_KEYS
) -> pa.Table:
    """Roll up a stream of batches without holding it: every few batches, their rollups are merged into one
    piece; the pieces are merged at the end (a window spanning two pieces is added up then)."""
    pieces: list[pa.Table] = []
    fresh: list[pa.Table] = []
    group_columns = [*keys, "window_start", "window_s"]
    for batch in batches:
        fresh.append(rollup(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]), every_s, keys))
        if len(fresh) == _PARTIALS_BEFORE_COMPACTION:
            pieces.append(merge_table(pa.concat_tables(fresh), group_columns))
            fresh = []
    if not pieces and not fresh:
        raise ValueError("no latency rows to roll up")
    return merge_table(pa.concat_tables([*pieces, *fresh]), group_columns)


def with_inventory(table: pa.Table, inventory: pa.Table, columns: Sequence[str]) -> pa.Table:
    """`table` plus fleet attributes (e.g. rack, region, firmware_version) looked up by controller_id.

    The inventory may hold several rows per controller (re-deployments, firmware updates); the one with the
    latest deployed_at wins. Rows of unknown controllers get nulls; row order is kept.
    """
    wanted = [c for c in columns if c not in table.column_names]
    missing = [c for c in ("controller_id", "deployed_at", *wanted) if c not in inventory.column_names]
    if missing:
        raise ValueError(f"the inventory has no column(s) {missing}")
    latest = inventory.sort_by([("controller_id", "ascending"), ("deployed_at", "descending")])
    latest = latest.take(group_ids(latest, ["controller_id"]).first_rows)
    position = pc.index_in(table.column("controller_id"), value_set=latest.column("controller_id").combine_chunks())
    for column in wanted:
        table = table.append_column(column, latest.column(column).take(position))
    return table
