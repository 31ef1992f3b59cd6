"""Kafka message payloads: Arrow IPC stream (zstd) or JSON lines in, contract-conforming Arrow tables out.

Decoding is also the contract check: every way a message can be wrong is classified into a short, stable reason
code (`Rejected.code`) plus detail, so the loader can quarantine it with a reason instead of stopping or
dropping it. A message is accepted or rejected as a whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract
from ingest.settings import Settings

# Producers aim for messages well inside 64–512 KB (local_kafka.md: Tansu stalls near 1 MiB).
TARGET_MESSAGE_BYTES = 256 * 1024
MAX_PRODUCED_BYTES = 512 * 1024
# The loader rejects anything larger than this, and decoded tables larger than MAX_DECODED_BYTES (zstd bombs).
MAX_MESSAGE_BYTES = 640 * 1024
MAX_DECODED_BYTES = 64 * 1024 * 1024

IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=1))
# Every Arrow IPC stream ends with this marker; a stream cut at a batch boundary would otherwise decode "fine".
IPC_CONTINUATION = b"\xff\xff\xff\xff"
IPC_END_OF_STREAM = IPC_CONTINUATION + b"\x00\x00\x00\x00"

# Dictionary columns whose values are a closed contract enumeration (free-form names like host are not).
ENUM_COLUMNS: dict[str, tuple[str, ...]] = {
    "record_type": contract.RECORD_TYPES,
    "log_type": contract.LOG_TYPES,
    "severity": contract.SEVERITIES,
    "reset_kind": contract.RESET_KINDS,
    "port": contract.LINK_PORTS,
    "event": contract.LINK_EVENTS,
    "reason": contract.LINK_REASONS,
    "ltssm_state": contract.LTSSM_STATES,
    "memory_tier": contract.MEMORY_TIERS,
    "op": contract.LATENCY_OPS,
    "sku": contract.SKUS,
    "workload": contract.JOB_WORKLOADS,
    "outcome": contract.JOB_OUTCOMES,
}


# Value ranges beyond the types (docs/reliability.md, "Rules for bad input"). 0 GT/s and x0 mean link down.
LINK_DOWN = 0
ALLOWED_VALUES: dict[str, tuple[float, ...]] = {
    "cur_speed_gts": (LINK_DOWN, *contract.PCIE_SPEEDS_GTS),
    "max_speed_gts": contract.PCIE_SPEEDS_GTS,
    "max_link_speed_gts": contract.PCIE_SPEEDS_GTS,
    "cur_width": (LINK_DOWN, *contract.PCIE_WIDTHS),
    "max_width": contract.PCIE_WIDTHS,
    "max_link_width": contract.PCIE_WIDTHS,
}
# Float columns that hold a latency or a count of nanoseconds: finite and never negative.
NON_NEGATIVE_FLOATS = ("sum_ns",)
# No CXL device reported telemetry before this; earlier timestamps are a broken clock or a unit error.
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


class Rejected(Exception):
    """A message that fails decoding or the contract; `reason` is what the quarantine table stores."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def schema_name(schema: pa.Schema) -> str:
    return schema.metadata[b"leo.schema"].decode()


def message_headers(schema: pa.Schema, content_type: str = contract.CONTENT_TYPE_ARROW) -> list[tuple[str, bytes]]:
    return [
        (contract.HEADER_SCHEMA, schema_name(schema).encode()),
        (contract.HEADER_SCHEMA_VERSION, str(contract.SCHEMA_VERSION).encode()),
        (contract.HEADER_CONTENT_TYPE, content_type.encode()),
    ]


def rejected_headers(schema: pa.Schema, reason: str) -> list[tuple[str, bytes]]:
    """Headers of a message that carries input its producer could not map (`decode` quarantines it with `reason`)."""
    return [
        *message_headers(schema, contract.CONTENT_TYPE_REJECTED),
        (contract.HEADER_REJECT_REASON, reason.encode()),
    ]


def encode_arrow(table: pa.Table) -> bytes:
    """One self-contained IPC stream (schema, dictionaries, zstd-compressed batches, end marker).

    The columns' descriptions stay home: every message repeats its schema, uncompressed, and the contract's
    descriptions would add up to 5.5 KB to each (the receiver conforms rows to the contract, descriptions included).
    """
    bare = pa.schema([field.remove_metadata() for field in table.schema], metadata=table.schema.metadata)
    table = pa.Table.from_arrays(table.columns, schema=bare)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(
    topic: str,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    *,
    max_skew_s: float = Settings.max_clock_skew_s,
    now: datetime | None = None,
) -> pa.Table:
    """The message's rows in the contract schema of `topic`, or `Rejected` saying exactly what is wrong.

    A row time more than `max_skew_s` after `now` (default: the wall clock) is a sender clock gone wrong, not data.
    """
    expected = contract.TELEMETRY_SCHEMAS.get(topic)
    if expected is None:
        raise Rejected("unknown_topic", topic)
    header = _header_map(headers)
    name = _required_header(header, contract.HEADER_SCHEMA)
    version = _required_header(header, contract.HEADER_SCHEMA_VERSION)
    content_type = _required_header(header, contract.HEADER_CONTENT_TYPE)
    if name not in contract.TELEMETRY_SCHEMAS:
        raise Rejected("unknown_topic_schema", f"{name!r} is not a telemetry schema")
    if name != schema_name(expected):
        raise Rejected("unknown_topic_schema", f"schema {name!r} does not belong on topic {topic!r}")
    if version != str(contract.SCHEMA_VERSION):
        raise Rejected("unknown_schema_version", version)
    if content_type == contract.CONTENT_TYPE_REJECTED:
        raise Rejected("producer_rejected", header.get(contract.HEADER_REJECT_REASON) or "no reason given")
    if not value:
        raise Rejected("empty_message", "no payload")
    if len(value) > MAX_MESSAGE_BYTES:
        raise Rejected("oversize", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    if content_type == contract.CONTENT_TYPE_ARROW:
        table = _read_ipc(value)
    elif content_type == contract.CONTENT_TYPE_JSONL:
        table = _read_jsonl(value, expected)
    else:
        raise Rejected("unknown_content_type", content_type)
    table = _validate(table, expected)
    _check_values(table, topic, (now or datetime.now(UTC)) + timedelta(seconds=max_skew_s))
    return table


def _header_map(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    try:
        return {key: (raw or b"").decode() for key, raw in headers or ()}
    except UnicodeDecodeError as exc:
        raise Rejected("bad_header", f"not UTF-8: {exc}") from None


def _required_header(header: dict[str, str], key: str) -> str:
    value = header.get(key)
    if not value:
        raise Rejected("missing_header", key)
    return value


def _read_ipc(value: bytes) -> pa.Table:
    if not value.endswith(IPC_END_OF_STREAM):
        if value.startswith(IPC_CONTINUATION):
            raise Rejected("truncated_ipc", f"{len(value)} bytes of a stream without its end-of-stream marker")
        raise Rejected("undecodable_ipc", f"not an Arrow IPC stream (starts with {value[:8].hex()})")
    try:
        reader = pa.ipc.open_stream(value)
        batches, decoded = [], 0
        for batch in reader:
            decoded += batch.nbytes
            if decoded > MAX_DECODED_BYTES:
                raise Rejected("oversize", f"decodes to more than {MAX_DECODED_BYTES} bytes")
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        # Corrupt buffers can carry valid metadata: bad offsets, dictionary indices or UTF-8 would otherwise
        # reach DuckDB, which fails the whole lake transaction (a poison message) or reads out of bounds.
        table.validate(full=True)
        return table
    except (pa.ArrowException, OSError) as exc:
        raise Rejected("undecodable_ipc", _short(exc)) from None


def _validate(table: pa.Table, expected: pa.Schema) -> pa.Table:
    names = table.schema.names
    missing = [name for name in expected.names if name not in names]
    if missing:
        raise Rejected("missing_columns", str(missing))
    extra = [name for name in names if name not in expected.names]
    if extra:
        raise Rejected("extra_columns", str(extra))
    if len(set(names)) != len(names):
        raise Rejected("duplicate_columns", str(sorted({n for n in names if names.count(n) > 1})))
    for field in expected:
        actual = table.schema.field(field.name).type
        if not _equivalent(actual, field.type):
            raise Rejected("retyped_column", f"{field.name}: {actual}, contract says {field.type}")
        nulls = _null_count(table.column(field.name))
        if nulls and not field.nullable:
            raise Rejected("null_in_required", f"{field.name}: {nulls} nulls")
    table = contract.conform(table.select(expected.names), expected)
    for column, allowed in ENUM_COLUMNS.items():
        if column in expected.names:
            _check_enum(table.column(column), column, allowed)
    return table


def _null_count(column: pa.ChunkedArray) -> int:
    """Nulls as readers see them: a dictionary index may point at a null dictionary entry."""
    if pa.types.is_dictionary(column.type) and any(chunk.dictionary.null_count for chunk in column.chunks):
        return pc.sum(pc.is_null(column)).as_py()
    return column.null_count


def _check_values(table: pa.Table, topic: str, latest: datetime) -> None:
    """Ranges the Arrow types cannot express: PCIe speeds and widths, latencies, plausible row times."""
    for name, allowed in ALLOWED_VALUES.items():
        if name in table.column_names:
            column = table.column(name)
            bad = pc.invert(pc.is_in(column, pa.array(allowed, column.type)))
            if pc.any(bad).as_py():
                raise Rejected("out_of_range", f"{name}: {_first(column, bad)!r} not in {list(allowed)}")
    for name in NON_NEGATIVE_FLOATS:
        if name in table.column_names:
            column = table.column(name)
            bad = pc.invert(pc.and_(pc.is_finite(column), pc.greater_equal(column, 0)))
            if pc.any(bad).as_py():
                raise Rejected("out_of_range", f"{name}: {_first(column, bad)!r} is negative or not finite")
    time_column = contract.TIME_COLUMNS.get(topic)
    if time_column and table.num_rows:
        first, last = pc.min_max(table.column(time_column)).values()
        if first.value < _ns(EARLIEST_TIMESTAMP):
            raise Rejected("out_of_range", f"{time_column}: {first.value} ns is before {EARLIEST_TIMESTAMP:%Y-%m-%d}")
        if last.value > _ns(latest):
            raise Rejected("future_timestamp", f"{time_column}: {last.value} ns is after {latest:%Y-%m-%dT%H:%M:%SZ}")


def _ns(moment: datetime) -> int:
    return math.floor(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _first(column: pa.ChunkedArray, mask: pa.ChunkedArray) -> object:
    return column.filter(mask)[0].as_py()


def _equivalent(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Equal up to names of nested fields and the width of dictionary indices (other Arrow writers differ there)."""
    if pa.types.is_dictionary(expected):
        return pa.types.is_dictionary(actual) and actual.value_type == expected.value_type
    if pa.types.is_list(expected):
        return pa.types.is_list(actual) and _equivalent(actual.value_type, expected.value_type)
    return actual == expected


def _check_enum(column: pa.ChunkedArray, name: str, allowed: Iterable[str]) -> None:
    """Only dictionaries with an unknown entry are inspected further, so valid data costs one set lookup per value."""
    allowed = set(allowed)
    for chunk in column.chunks:
        unknown = set(chunk.dictionary.to_pylist()) - allowed
        if unknown:
            bad = sorted(str(v) for v in unknown & set(chunk.to_pylist()))
            if bad:
                raise Rejected("unknown_enum_value", f"{name}: {bad}")


# ---------------------------------------------------------------------------------------------------------
# JSON lines: one object per line, keys = contract column names (README "JSON-lines interop").
# ---------------------------------------------------------------------------------------------------------


def _read_jsonl(value: bytes, expected: pa.Schema) -> pa.Table:
    rows = []
    for number, line in enumerate(value.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise Rejected("bad_json", f"line {number}: {_short(exc)}") from None
        if not isinstance(row, dict):
            raise Rejected("bad_json", f"line {number}: not a JSON object")
        rows.append(row)
    if not rows:
        raise Rejected("empty_message", "no JSON lines")
    keys = set().union(*rows)
    extra = sorted(keys - set(expected.names))
    if extra:
        raise Rejected("extra_columns", str(extra))
    missing = [f.name for f in expected if not f.nullable and any(f.name not in row for row in rows)]
    if missing:
        raise Rejected("missing_columns", str(missing))
    columns = [_json_column(field, [row.get(field.name) for row in rows]) for field in expected]
    return pa.Table.from_arrays(columns, schema=expected)


def _json_column(field: pa.Field, values: list) -> pa.Array:
    try:
        return _json_values(field.type, values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise Rejected("retyped_column", f"{field.name}: {_short(exc)}") from None


def _json_values(kind: pa.DataType, values: list) -> pa.Array:
    """JSON values → Arrow: strings become dictionaries, RFC 3339 strings timestamps, hex strings 16-byte ids."""
    if pa.types.is_integer(kind) and any(type(v) is not int for v in values if v is not None):
        raise TypeError(f"expected integers, got {_first_not(int, values)!r}")
    if pa.types.is_dictionary(kind):
        return pa.array(values, pa.string()).cast(kind)
    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.string()).cast(kind)
    if pa.types.is_fixed_size_binary(kind):
        if any(v is not None and not isinstance(v, str) for v in values):
            raise TypeError(f"expected hex strings, got {_first_not(str, values)!r}")
        return pa.array([None if v is None else bytes.fromhex(v.replace("-", "")) for v in values], kind)
    if pa.types.is_list(kind):
        if any(v is not None and not isinstance(v, list) for v in values):
            raise TypeError(f"expected arrays, got {_first_not(list, values)!r}")
        flat = [item for v in values if v is not None for item in v]
        offsets = [0]
        for v in values:
            offsets.append(offsets[-1] + (len(v) if v is not None else 0))
        mask = pa.array([v is None for v in values])
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), _json_values(kind.value_type, flat), mask=mask)
    return pa.array(values, kind)


def _first_not(kind: type, values: list) -> object:
    return next(v for v in values if v is not None and type(v) is not kind)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
