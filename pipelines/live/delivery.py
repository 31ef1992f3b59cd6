"""Deliver the alert outbox to a webhook (Alertmanager's `POST /api/v2/alerts`) and to the `leo.alerts` topic.

Each sink has a cursor in `sre.alert_delivery`: the highest outbox sequence number it accepted. A round reads the
rows after it, sends them (retrying with jittered exponential backoff, capped, for as long as it takes: an alert is
never dropped), and only then appends the new cursor. A crash between the receiver's 2xx and that commit sends the
same rows again after the restart: the same labels, startsAt and endsAt, which Alertmanager treats as one alert
(and `leo.alerts` consumers dedupe by key and status). So every (fingerprint, status) arrives at least once, and
any second arrival is an identical re-post: exactly once as Alertmanager counts alerts.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import duckdb
import pyarrow as pa

from ingest.lake.fault_injection import CrashPoints
from ingest.lake.raw_tables import retry_transaction
from ingest.settings import Settings
from pipelines.live.alerts import postable, posts
from pipelines.live.tables import DELIVERY, DELIVERY_SCHEMA, OUTBOX, append

# The crash point between the receiver's acceptance and the cursor's commit (reliability tests).
DELIVERED_STAGE = "alerts_delivered"
BATCH = 500
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 10.0
HTTP_TIMEOUT_S = 10.0


class SinkError(RuntimeError):
    """A sink refused or could not take a batch; the round retries it."""


class Sink(Protocol):
    name: str

    def send(self, rows: list[dict]) -> int:
        """Send outbox rows (sequence order); returns the requests it took. Raises SinkError on failure."""
        ...


@dataclass
class WebhookSink:
    """Alertmanager's API: a JSON list of postable alerts per request, one request per group (`alerts.posts`)."""

    url: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.url

    def send(self, rows: list[dict]) -> int:
        bodies = posts(rows)
        for body in bodies:
            request = urllib.request.Request(
                self.url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                raise SinkError(f"{self.url} answered {exc.code}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise SinkError(f"{self.url}: {exc}") from None
            if not 200 <= status < 300:
                raise SinkError(f"{self.url} answered {status}")
        return len(bodies)


class KafkaSink:
    """`leo.alerts`: one message per alert change, keyed by its fingerprint, the postable alert plus its status."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        from ingest.kafka.topics import ALERTS_TOPIC, ensure_topics

        ensure_topics(settings, (ALERTS_TOPIC,))
        self.name = ALERTS_TOPIC
        self._producer = KafkaProducer(**settings.kafka.client_config(), acks="all", enable_idempotence=True)

    def send(self, rows: list[dict]) -> int:
        from kafka.errors import KafkaError

        futures = [
            self._producer.send(
                self.name,
                key=row["fingerprint"].encode(),
                value=json.dumps({"status": row["status"], **postable(row)}).encode(),
            )
            for row in rows
        ]
        try:
            self._producer.flush()
            for future in futures:
                future.get(timeout=HTTP_TIMEOUT_S)
        except KafkaError as exc:
            raise SinkError(f"{self.name}: {exc}") from None
        return 1

    def close(self) -> None:
        self._producer.close()


def cursor(con: duckdb.DuckDBPyConnection, sink: str) -> int:
    """The highest outbox sequence number `sink` accepted (0: none yet)."""
    (seq,) = con.execute(f"SELECT coalesce(max(delivered_seq), 0) FROM {DELIVERY} WHERE sink = ?", [sink]).fetchone()
    return int(seq)


def pending(con: duckdb.DuckDBPyConnection, sink: str, limit: int = BATCH) -> list[dict]:
    """Outbox rows after the sink's cursor, in sequence order."""
    rows = con.execute(
        f"SELECT * FROM {OUTBOX} WHERE seq > ? ORDER BY seq LIMIT ?", [cursor(con, sink), limit]
    ).to_arrow_table()
    return rows.to_pylist()


@dataclass
class Delivery:
    """Rounds of outbox -> sink for one sink; `stop` ends a retry wait early (the round then returns 0)."""

    sink: Sink
    stop: threading.Event
    crash_points: CrashPoints | None = None

    def round(self, con: duckdb.DuckDBPyConnection) -> int:
        """Deliver the next batch; returns how many outbox rows the sink accepted."""
        rows = pending(con, self.sink.name)
        if not rows:
            return 0
        attempts = self._send_until_accepted(rows)
        if attempts == 0:
            return 0
        if self.crash_points:
            self.crash_points.reach(DELIVERED_STAGE)
        row = {
            "sink": self.sink.name,
            "delivered_seq": rows[-1]["seq"],
            "delivered_at": datetime.now(UTC),
            "alerts": len(rows),
            "attempts": attempts,
        }
        retry_transaction(lambda: _commit_cursor(con, row))
        return len(rows)

    def _send_until_accepted(self, rows: list[dict]) -> int:
        """Requests it took (0: stopped before the sink accepted)."""
        attempts = 0
        while not self.stop.is_set():
            try:
                return attempts + self.sink.send(rows)
            except SinkError:
                attempts += 1
                # Capped exponential backoff with jitter: a receiver that comes back is not stampeded.
                self.stop.wait(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(attempts, 16)) * random.uniform(0.5, 1.0))
        return 0


def _commit_cursor(con: duckdb.DuckDBPyConnection, row: dict) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        append(con, DELIVERY, pa.Table.from_pylist([row], schema=DELIVERY_SCHEMA))
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise


def drain(deliveries: list[Delivery], con: duckdb.DuckDBPyConnection, stop: threading.Event, poll_s: float) -> None:
    """Deliver until `stop`: every sink's backlog, then wait `poll_s` for new outbox rows."""
    while not stop.is_set():
        moved = sum(delivery.round(con) for delivery in deliveries)
        if not moved:
            stop.wait(poll_s)
