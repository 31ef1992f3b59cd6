"""Shared by tests/kafka and tests/reliability: a real local broker for the whole session (free port, stopped at the
end) and a clean slate per test.

Every test gets its own lake directory, its own consumer group and freshly created, empty telemetry topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import broker
from ingest.settings import KafkaSettings, Settings
from ingest.topics import reset_topics


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}"))
    home = home.with_data_dir(tmp_path_factory.mktemp("broker-home"))
    status = broker.start(home)
    yield status.bootstrap_servers
    broker.stop(home)


@pytest.fixture
def settings(kafka_broker: str, tmp_path: Path) -> Settings:
    kafka = KafkaSettings(bootstrap_servers=kafka_broker, consumer_group=f"test-{uuid.uuid4().hex[:8]}")
    fresh = Settings(kafka=kafka).with_data_dir(tmp_path / "data")
    reset_topics(fresh)
    return fresh


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    """A private lake and no Kafka: for the file-loading and SQL paths."""
    return Settings().with_data_dir(tmp_path / "data")
