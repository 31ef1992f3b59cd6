"""Alerts published to `leo.alerts` on the real local broker: one message per alert change, keyed by the alert's
fingerprint, carrying its status and Alertmanager body; the cursor moves only after the broker acknowledged."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer

from ingest.kafka.topics import ALERTS_TOPIC
from ingest.lake import connect, lake_cursor
from ingest.settings import Settings
from pipelines.live.alerts import Alert, record
from pipelines.live.delivery import Delivery, KafkaSink, cursor
from pipelines.live.tables import ensure_live_tables

pytestmark = pytest.mark.kafka
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def test_alert_changes_are_published_keyed_by_fingerprint(settings: Settings) -> None:
    alerts = [
        Alert({"alertname": "LeoLinkDrop", "incident_id": str(i)}, T0 + timedelta(minutes=i), str(i)) for i in range(5)
    ]
    con = connect(settings)
    sink = KafkaSink(settings)
    try:
        ensure_live_tables(con)
        for batch in (alerts, [a.resolved(a.starts_at + timedelta(minutes=3)) for a in alerts[:2]]):
            con.execute("BEGIN TRANSACTION")
            record(con, batch, datetime.now(UTC))
            con.execute("COMMIT")
        delivery = Delivery(sink, threading.Event())
        assert delivery.round(lake_cursor(con)) == 7
        assert cursor(con, ALERTS_TOPIC) == 7
        assert delivery.round(lake_cursor(con)) == 0  # nothing after the cursor
    finally:
        sink.close()
        con.close()

    consumer = KafkaConsumer(
        ALERTS_TOPIC, **settings.kafka.client_config(), auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    try:
        messages = [(m.key.decode(), json.loads(m.value)) for m in consumer]
    finally:
        consumer.close()
    assert sorted((key, body["status"]) for key, body in messages) == sorted(
        [(a.fingerprint, "firing") for a in alerts] + [(a.fingerprint, "resolved") for a in alerts[:2]]
    )
    for key, body in messages:
        assert key == Alert(body["labels"], T0, "").fingerprint
        assert ("endsAt" in body) == (body["status"] == "resolved")
