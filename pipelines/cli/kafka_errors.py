"""The one-line error for a Kafka cluster that cannot be reached or refuses a request."""

from __future__ import annotations

from ingest.settings import Settings
from pipelines.cli.errors import CliError


def kafka_error(settings: Settings, exc: Exception) -> CliError:
    return CliError(
        f"Kafka at {settings.kafka.bootstrap_servers}: {' '.join(str(exc).split())} "
        "(start a local broker with `leo-fleet broker start` or set KAFKA_BOOTSTRAP_SERVERS)"
    )
