"""The codec without a broker: round trips in both encodings, and the reason given to each kind of bad input."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ingest import contract
from ingest.kafka import codec
from tests.ingest.kafka.helpers import BUSY_CALENDAR, every_stream, simulation, without_dictionaries
from tests.ingest.kafka.jsonl import to_jsonl
from tests.ingest.kafka.malformed import bad_messages


@pytest.fixture(scope="module")
def streams():
    return every_stream(simulation(controllers=12, hours=1, maintenance_per_host_day=BUSY_CALENDAR))


@pytest.mark.parametrize("topic", list(contract.TELEMETRY_SCHEMAS))
def test_arrow_and_json_lines_decode_to_the_same_contract_table(streams, topic):
    table = streams[topic].slice(0, 400)  # JSON is verbose: keep the message under the size limit
    schema = contract.TELEMETRY_SCHEMAS[topic]

    payload = codec.encode_arrow(table)
    from_arrow = codec.decode(topic, payload, codec.message_headers(schema))
    from_json = codec.decode(topic, to_jsonl(table), codec.message_headers(schema, contract.CONTENT_TYPE_JSONL))

    assert table.num_rows > 0
    # Descriptions stay off the wire (no field metadata, as a collector's messages come) and are back on receipt.
    assert all(field.metadata is None for field in pa.ipc.open_stream(payload).schema)
    assert all(field.metadata for field in schema)
    assert from_arrow.schema.equals(schema, check_metadata=True)
    assert from_arrow.equals(table)
    assert from_json.schema.equals(schema, check_metadata=True)
    assert without_dictionaries(from_json).equals(without_dictionaries(table))


def test_each_kind_of_bad_message_gets_its_reason(streams):
    cases = bad_messages(streams[contract.TOPIC_ERRORS].slice(0, 5), streams[contract.TOPIC_LINK].slice(0, 5))

    outcomes = {}
    for case in cases:
        with pytest.raises(codec.Rejected) as rejected:
            codec.decode(case.topic, case.value, case.headers)
        outcomes[case.kind] = rejected.value.code
        assert rejected.value.detail, case.kind

    assert outcomes == {case.kind: case.code for case in cases}
    assert len(set(outcomes.values())) >= 10
