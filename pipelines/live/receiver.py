"""A minimal Alertmanager-compatible receiver: accepts `POST /api/v2/alerts` and keeps every alert it was sent.

For `leo-fleet demo --live` (which prints alerts as they arrive), the delivery tests and bench.live: a real HTTP
server on a loopback port that can be told to refuse requests for a while (HTTP 503), as a restarting
Alertmanager does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/api/v2/alerts"


@dataclass(frozen=True)
class Received:
    """One alert as posted, with when it arrived (wall clock, time.time())."""

    alert: dict
    arrived: float

    @property
    def status(self) -> str:
        return "resolved" if "endsAt" in self.alert else "firing"

    @property
    def key(self) -> tuple[str, str]:
        """Alertmanager's identity of an alert state: its label set and its status."""
        return json.dumps(sorted(self.alert["labels"].items())), self.status


@dataclass
class Receiver:
    """Started with `start()`, stopped with `stop()`; `url` is its alerts endpoint."""

    host: str = "127.0.0.1"
    port: int = 0
    on_alert: Callable[[Received], None] = lambda _: None
    received: list[Received] = field(default_factory=list)
    posts: int = 0
    refused: int = 0
    _refusals_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}{PATH}"

    def refuse_next(self, requests: int) -> None:
        """Answer 503 to the next `requests` requests."""
        with self._lock:
            self._refusals_left = requests

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != PATH:
                    self.send_error(404)
                    return
                with receiver._lock:
                    refuse = receiver._refusals_left > 0
                    if refuse:
                        receiver._refusals_left -= 1
                        receiver.refused += 1
                if refuse:
                    self.send_error(503)
                    return
                try:
                    alerts = json.loads(body)
                    assert isinstance(alerts, list)
                except (ValueError, AssertionError):
                    self.send_error(400)
                    return
                arrived = time.time()
                with receiver._lock:
                    receiver.posts += 1
                    got = [Received(alert, arrived) for alert in alerts]
                    receiver.received.extend(got)
                for item in got:
                    receiver.on_alert(item)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:  # quiet: the caller reports
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="alert receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
