"""Build contract columns straight from numpy arrays, without per-row Python objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ingest.contract import TS, conform

# dictionary<int16, string> holds at most this many distinct values per array.
_MAX_DICTIONARY = np.iinfo(np.int16).max
_MAX_BLOCK_RUNS = 64


def dictionary_block(indices: np.ndarray) -> np.ndarray:
    """Which block of 32,767 names each index falls in; rows sorted by block make cheap dictionary pieces."""
    return np.asarray(indices) // _MAX_DICTIONARY


def codes(names: Sequence[str]) -> dict[str, int]:
    """Name → dictionary index for an enumeration of the contract."""
    return {name: index for index, name in enumerate(names)}


def dictionary(indices: np.ndarray, names: pa.Array | Sequence[str]) -> pa.Array | pa.ChunkedArray:
    """A dictionary<int16, string> column of `names[indices]`.

    Fleets with more than 32,767 hosts exceed int16 indices, so the column is then split into pieces, each with
    its own dictionary (Arrow allows that per chunk): runs of rows within one block of 32,767 names share a
    zero-copy slice of the names (rows grouped by `dictionary_block` make few runs); otherwise ranges of
    32,767 rows each get a dictionary of the names they use.
    """
    names = names if isinstance(names, pa.Array) else pa.array(list(names), pa.string())
    indices = np.asarray(indices)
    if len(names) <= _MAX_DICTIONARY:
        # Indices come from our own arrays of valid positions: skip the per-row bounds check.
        return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int16)), names, safe=False)
    block = dictionary_block(indices)
    starts = np.flatnonzero(np.diff(block, prepend=-1))
    if starts.size <= _MAX_BLOCK_RUNS:
        ends = np.append(starts[1:], indices.size)
        pieces = [
            pa.DictionaryArray.from_arrays(
                pa.array((indices[a:b] - block[a] * _MAX_DICTIONARY).astype(np.int16)),
                names.slice(block[a] * _MAX_DICTIONARY, _MAX_DICTIONARY),
                safe=False,
            )
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        return pa.chunked_array(pieces, pa.dictionary(pa.int16(), pa.string()))
    pieces = []
    local = np.zeros(len(names), np.int16)
    present = np.zeros(len(names), bool)
    for start in range(0, max(indices.size, 1), _MAX_DICTIONARY):
        part = indices[start : start + _MAX_DICTIONARY]
        present[part] = True
        used = np.flatnonzero(present)
        local[used] = np.arange(used.size)
        present[used] = False
        pieces.append(pa.DictionaryArray.from_arrays(pa.array(local[part]), names.take(pa.array(used)), safe=False))
    return pa.chunked_array(pieces, pa.dictionary(pa.int16(), pa.string()))


def strings(indices: np.ndarray, names: pa.Array) -> pa.Array:
    """`names[indices]` as a plain string column; decoding a dictionary is several times faster than take."""
    index = pa.array(np.asarray(indices, np.int32))
    return pa.DictionaryArray.from_arrays(index, names).cast(pa.string())


def timestamps(ns: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Timestamps at microsecond precision, so readers without pandas can still turn them into datetimes."""
    micros = np.asarray(ns, np.int64) // 1000 * 1000
    return pa.array(micros, TS, mask=None if valid is None else ~np.asarray(valid, bool))


def masked(values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A nullable column: `values` where `valid`, null elsewhere."""
    return pa.array(values, type_, mask=~np.asarray(valid, bool))


def uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4 UUIDs as fixed_size_binary(16), from the seeded stream."""
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(raw.tobytes())])


def contract_table(schema: pa.Schema, columns: dict[str, pa.Array | pa.ChunkedArray], n_rows: int) -> pa.Table:
    """A table of `schema` from the given columns; every column not given must be nullable and is all null."""
    arrays = []
    for schema_field in schema:
        column = columns.get(schema_field.name)
        if column is None:
            if not schema_field.nullable:
                raise ValueError(f"column {schema_field.name!r} is required")
            column = pa.nulls(n_rows, schema_field.type)
        arrays.append(column)
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"columns not in {schema.metadata[b'leo.schema'].decode()}: {sorted(unknown)}")
    try:
        # Columns are built in the contract's exact types, so no cast is needed; from_arrays checks the types.
        table = pa.Table.from_arrays(arrays, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        table = pa.Table.from_arrays(arrays, names=schema.names)
    return conform(table, schema) if table.schema != schema else _check_nulls(table)


def _check_nulls(table: pa.Table) -> pa.Table:
    for schema_field in table.schema:
        if not schema_field.nullable and table.column(schema_field.name).null_count:
            raise ValueError(f"column {schema_field.name!r} has nulls but is not nullable")
    return table
