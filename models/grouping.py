"""Dense group numbers for the rows of an Arrow table, so grouped work becomes one `np.bincount`.

pyarrow's hash aggregation covers sums and extremes but cannot add lists element-wise (histograms) or lay
counts out on a time grid; both need each row's group as a small integer. Key columns of any type work,
dictionary columns included (chunks whose dictionaries differ are decoded first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Re-number the running combined code once it could overflow int64 on the next multiplication.
_MAX_RADIX = 1 << 31


@dataclass(frozen=True)
class Groups:
    """`ids[row]` is the row's group in 0..count-1, groups numbered in key order; `order` lists the rows group
    by group (stable); `first_rows[g]` is group g's first row and `keys` its key values (a table without
    columns, and so without rows, when there are no keys)."""

    ids: np.ndarray
    count: int
    order: np.ndarray
    first_rows: np.ndarray
    keys: pa.Table


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Per row, the rank of its value among the distinct values (nulls last), and how many codes there are.

    Ranks rather than first-appearance codes, so groups come out sorted by their keys, whatever the row order.
    Dictionary columns are ranked through their (unified) dictionary: no string is materialised per row.
    """
    if pa.types.is_dictionary(column.type):
        unified = column.unify_dictionaries()
        values = unified.chunk(0).dictionary if unified.num_chunks else pa.array([], column.type.value_type)
        indices = [chunk.indices.fill_null(len(values)) for chunk in unified.chunks]
        indices = pa.chunked_array(indices, column.type.index_type)
    else:
        encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
        values, indices = encoded.dictionary, encoded.indices
    # One extra slot (ranked last) for nulls of a dictionary column; equal values share a rank.
    ranked = pa.concat_arrays([values, pa.nulls(1, values.type)])
    rank = pc.rank(ranked, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64) - 1
    return rank[indices.to_numpy(zero_copy_only=False).astype(np.int64)], len(ranked)


def _stable_order(code: np.ndarray, radix: int) -> np.ndarray:
    """Rows sorted by code, ties in row order; codes that fit 16 bits get numpy's linear-time radix sort."""
    if radix <= 1 << 16:
        code = code.astype(np.uint16)
    return np.argsort(code, kind="stable")


def group_ids(table: pa.Table, keys: Sequence[str]) -> Groups:
    """Number the distinct combinations of `keys`; no keys means one group holding every row."""
    missing = [key for key in keys if key not in table.column_names]
    if missing:
        raise ValueError(f"grouping columns not in the table: {missing}")
    rows = table.num_rows
    if not keys or rows == 0:
        count = 1 if rows else 0
        first_rows = np.zeros(count, np.int64)
        everything = np.arange(rows)
        return Groups(
            np.zeros(rows, np.int64), count, everything, first_rows, table.select(list(keys)).take(first_rows)
        )
    code = np.zeros(rows, np.int64)
    radix = 1
    for key in keys:
        key_codes, cardinality = _codes(table.column(key))
        if radix * cardinality >= _MAX_RADIX:
            _, code = np.unique(code, return_inverse=True)
            radix = int(code.max()) + 1
        code = code * cardinality + key_codes
        radix *= cardinality
    order = _stable_order(code, radix)
    sorted_code = code[order]
    starts = np.empty(rows, bool)
    starts[0] = True
    np.not_equal(sorted_code[1:], sorted_code[:-1], out=starts[1:])
    ids = np.empty(rows, np.int64)
    ids[order] = np.cumsum(starts) - 1
    first_rows = order[starts]
    return Groups(ids, len(first_rows), order, first_rows, table.select(list(keys)).take(first_rows))
