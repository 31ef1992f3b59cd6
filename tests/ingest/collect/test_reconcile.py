"""A poll cut short is sent again without what Kafka already holds: read back from the recorded partition ends,
rows compared whole and one for one, rejects by bytes and reason; a recreated topic is read from its start."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from ingest import contract
from ingest.collect import reconcile
from ingest.collect.cxl_monitor import HostIdentity, Reject, map_lines
from ingest.collect.spool import Publication
from ingest.kafka.producer import TelemetryProducer
from tests.ingest.collect import fixtures as fx

pytestmark = pytest.mark.kafka


def a_poll() -> Publication:
    lines = [fx.line(event) for event in fx.EVENTS]
    errors, _ = map_lines([*lines, lines[0]], HostIdentity("host-r", "r", "g"), 1_764_871_200 * 10**9)
    reject = Reject(fx.MALFORMED, "bad_json: cut short")
    return Publication(tables=[(contract.TOPIC_ERRORS, errors)], rejects=[(contract.TOPIC_ERRORS, reject)])


def test_what_the_cut_short_attempt_delivered_is_taken_out_and_the_rest_kept(settings):
    poll = a_poll()
    errors = poll.tables[0][1]  # 8 rows: the seven events and the first one again (the same line read twice)
    consumer = KafkaConsumer(**settings.kafka.client_config(), enable_auto_commit=False)
    try:
        ends = reconcile.end_offsets(consumer, reconcile.topics_of(poll))
        with TelemetryProducer(settings) as producer:  # the attempt that got this far before it was cut short
            producer.send(contract.TOPIC_ERRORS, errors.slice(0, 3))
            producer.send_rejected(contract.TOPIC_ERRORS, fx.MALFORMED, "bad_json: cut short", b"host-r")

        remaining = reconcile.remove_delivered(consumer, poll, ends)
        from_the_start = reconcile.remove_delivered(
            consumer, poll, {t: dict.fromkeys(p, 10**9) for t, p in ends.items()}
        )
    finally:
        consumer.close()

    assert remaining.rejects == []
    assert remaining.tables[0][1].equals(errors.slice(3))  # the repeated first row is kept: only one copy went
    assert from_the_start.tables[0][1].equals(errors.slice(3))  # ends above today's: the topic was recreated
    assert remaining.states == poll.states


def test_nothing_delivered_keeps_the_whole_poll(settings):
    poll = a_poll()
    consumer = KafkaConsumer(**settings.kafka.client_config(), enable_auto_commit=False)
    try:
        ends = reconcile.end_offsets(consumer, reconcile.topics_of(poll))
        remaining = reconcile.remove_delivered(consumer, poll, ends)
    finally:
        consumer.close()

    assert remaining.tables[0][1].equals(poll.tables[0][1]) and remaining.rejects == poll.rejects
