"""Every kind of bad message the loader must quarantine, each with the reason code it must be given."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pyarrow as pa

from ingest import contract
from ingest.kafka import codec
from tests.ingest.kafka.jsonl import to_jsonl

ARROW = contract.CONTENT_TYPE_ARROW
JSONL = contract.CONTENT_TYPE_JSONL


@dataclass(frozen=True)
class BadMessage:
    kind: str
    code: str  # the reason code the loader must record
    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]


def _headers(schema_name: str, version: str = "1", content_type: str = ARROW) -> list[tuple[str, bytes]]:
    return [
        (contract.HEADER_SCHEMA, schema_name.encode()),
        (contract.HEADER_SCHEMA_VERSION, version.encode()),
        (contract.HEADER_CONTENT_TYPE, content_type.encode()),
    ]


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, column.type), column)


def bad_messages(errors: pa.Table, link: pa.Table) -> list[BadMessage]:
    """One message per kind, built from a few good rows of leo.errors and leo.link."""
    topic = contract.TOPIC_ERRORS
    good = codec.encode_arrow(errors)
    ok = _headers(topic)
    n = errors.num_rows
    null_ts = pa.nulls(n, contract.TS)
    bogus_severity = pa.array(["bogus"] * n).cast(contract.DICT)
    json_lines = to_jsonl(errors).splitlines()
    cases = [
        ("garbage_bytes", "undecodable_ipc", os.urandom(2000), ok),
        ("truncated_mid_stream", "truncated_ipc", good[: len(good) // 2], ok),
        ("missing_end_of_stream", "truncated_ipc", good[: -len(codec.IPC_END_OF_STREAM)], ok),
        ("arrow_file_not_stream", "undecodable_ipc", _arrow_file(errors), ok),
        ("unknown_schema_version", "unknown_schema_version", good, _headers(topic, version="7")),
        ("no_headers", "missing_header", good, []),
        ("unknown_content_type", "unknown_content_type", good, _headers(topic, content_type="text/csv")),
        ("unknown_schema_name", "unknown_topic_schema", good, _headers("leo.bogus")),
        ("schema_of_another_topic", "unknown_topic_schema", codec.encode_arrow(link), _headers(contract.TOPIC_LINK)),
        ("missing_column", "missing_columns", codec.encode_arrow(errors.drop_columns(["severity"])), ok),
        ("extra_column", "extra_columns", codec.encode_arrow(errors.append_column("x", pa.nulls(n))), ok),
        ("retyped_column", "retyped_column", codec.encode_arrow(_replace(errors, "ts", pa.array(range(n)))), ok),
        ("null_in_required", "null_in_required", codec.encode_arrow(_replace(errors, "ts", null_ts)), ok),
        (
            "unknown_enum_value",
            "unknown_enum_value",
            codec.encode_arrow(_replace(errors, "severity", bogus_severity)),
            ok,
        ),
        ("oversize", "oversize", os.urandom(codec.MAX_MESSAGE_BYTES + 1), ok),
        ("empty_payload", "empty_message", b"", ok),
        ("bad_header_encoding", "bad_header", good, [*ok[:2], (contract.HEADER_CONTENT_TYPE, b"\xff\xfe")]),
        ("json_syntax_error", "bad_json", b"\n".join([*json_lines[:2], b"{not json", *json_lines[2:]]), _jsonl(topic)),
        ("json_not_an_object", "bad_json", b"[1, 2, 3]\n", _jsonl(topic)),
        (
            "json_wrong_type",
            "retyped_column",
            re.sub(rb'"hdr_flags": (\d+)', rb'"hdr_flags": "\1"', to_jsonl(errors)),
            _jsonl(topic),
        ),
        ("json_missing_field", "missing_columns", to_jsonl(errors.drop_columns(["controller_id"])), _jsonl(topic)),
    ]
    return [BadMessage(kind, code, topic, value, headers) for kind, code, value, headers in cases]


def _jsonl(topic: str) -> list[tuple[str, bytes]]:
    return _headers(topic, content_type=JSONL)


def _arrow_file(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
