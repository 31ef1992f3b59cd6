"""The one-line error for a Kafka cluster that cannot be reached or refuses a request."""

from __future__ import annotations

import socket

from ingest.settings import Settings, bootstrap_addresses
from pipelines.cli.errors import CliError, one_line

CONNECT_TIMEOUT_S = 3.0


def kafka_error(settings: Settings, problem: object) -> CliError:
    return CliError(
        f"Kafka at {settings.kafka.bootstrap_servers}: {one_line(str(problem))} "
        "(start a local broker with `leo-fleet broker start` or set KAFKA_BOOTSTRAP_SERVERS)"
    )


def require_reachable(settings: Settings) -> None:
    """Refuse at once when no bootstrap server accepts a TCP connection (typically: no broker started), rather
    than after the Kafka client's 30 s bootstrap timeout, and before any work is done."""
    failures = []
    for host, port in bootstrap_addresses(settings.kafka.bootstrap_servers):
        try:
            with socket.create_connection((host.strip("[]"), port), timeout=CONNECT_TIMEOUT_S):
                return
        except OSError as exc:
            failures.append(f"{host}:{port} {exc.strerror or exc}")
    raise kafka_error(settings, f"cannot connect ({'; '.join(failures)})")
