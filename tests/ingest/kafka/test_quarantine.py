"""1,000 bad messages of every kind, mixed into a good stream: all quarantined with a reason, every good row loaded."""

from __future__ import annotations

from collections import Counter

import pytest
from kafka import KafkaProducer

from ingest import contract
from ingest.kafka.producer import TelemetryProducer
from tests.ingest.kafka.helpers import STREAMS, lake_count, lake_rows, run_loader, simulated_streams, simulation
from tests.ingest.kafka.malformed import bad_messages

pytestmark = pytest.mark.kafka

BAD_MESSAGES = 1000
ROUNDS = 10


def test_bad_messages_are_quarantined_with_reasons_while_the_good_stream_keeps_flowing(settings):
    streams = simulated_streams(simulation(controllers=80, hours=2))
    kinds = bad_messages(streams[contract.TOPIC_ERRORS].slice(0, 5), streams[contract.TOPIC_LINK].slice(0, 5))
    bad = [kinds[i % len(kinds)] for i in range(BAD_MESSAGES)]
    raw = KafkaProducer(**settings.kafka.client_config(), max_request_size=2 * 1024 * 1024)
    with TelemetryProducer(settings) as good:
        good.send(contract.TOPIC_INVENTORY, streams[contract.TOPIC_INVENTORY])
        for round_ in range(ROUNDS):
            for topic in STREAMS:
                rows = streams[topic]
                step = -(-rows.num_rows // ROUNDS)
                good.send(topic, rows.slice(round_ * step, step))
            good.flush()
            for number, case in enumerate(bad[round_::ROUNDS]):
                raw.send(case.topic, value=case.value, key=f"bad-{number}".encode(), headers=case.headers)
            raw.flush()
    raw.close()

    status = run_loader(settings)

    quarantined = lake_rows(settings, "quarantine", ["kafka_topic", "reason_code", "reason", "raw_bytes"])
    assert quarantined.num_rows == BAD_MESSAGES
    assert status["quarantined_total"] == BAD_MESSAGES
    stored = Counter(
        zip(
            quarantined["kafka_topic"].to_pylist(),
            quarantined["reason_code"].to_pylist(),
            quarantined["raw_bytes"].to_pylist(),
            strict=True,
        )
    )
    assert stored == Counter((case.topic, case.code, case.value) for case in bad)
    for code, reason in zip(quarantined["reason_code"].to_pylist(), quarantined["reason"].to_pylist(), strict=True):
        assert reason.startswith(f"{code}: ") and len(reason) > len(code) + 2
    assert len({case.code for case in bad}) >= 10
    for topic, rows in streams.items():
        assert lake_count(settings, f"SELECT count(*) FROM raw.{contract.TABLE_NAMES[topic]}") == rows.num_rows
