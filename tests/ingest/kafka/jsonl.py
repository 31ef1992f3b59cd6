"""A JSON-lines writer following the README's interop format, written from the client's side (not the codec's)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc


def to_jsonl(table: pa.Table) -> bytes:
    """One JSON object per row: RFC 3339 UTC timestamps, plain strings, 16-byte ids as hex, nulls omitted."""
    columns = {}
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type):
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        elif pa.types.is_dictionary(field.type):
            column = column.cast(pa.string())
        elif pa.types.is_list(field.type) and pa.types.is_dictionary(field.type.value_type):
            column = column.cast(pa.list_(pa.string()))
        values = column.to_pylist()
        if pa.types.is_fixed_size_binary(field.type):
            values = [None if v is None else v.hex() for v in values]
        columns[field.name] = values
    rows = [
        {name: values[i] for name, values in columns.items() if values[i] is not None} for i in range(table.num_rows)
    ]
    return "\n".join(json.dumps(row) for row in rows).encode() + b"\n"
