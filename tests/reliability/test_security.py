"""Security properties of the running system (docs/security.md): Kafka clients built from the SASL/TLS settings,
no password in anything the system writes or prints, owner-only files, and a loopback-only Dagster UI.

The SQL entry point's read-only guarantee is tested in tests/sql/test_sql_readonly.py.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psutil
import pytest
from rich.console import Console

from ingest import contract, lake
from ingest.kafka.broker import free_port
from ingest.kafka.producer import TelemetryProducer
from ingest.settings import ENV_PREFIX, KafkaSettings, Settings
from pipelines import demo
from pipelines.lib.partitions import Window
from tests.conftest import DemoRun
from tests.ingest.kafka.helpers import CLI, cli_env, simulated_streams, simulation
from tests.processes import stop_process_group

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("ingest", "pipelines", "bench")
KAFKA_CLIENTS = {"KafkaConsumer", "KafkaProducer", "KafkaAdminClient"}
SASL_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "leo-loader",
    "KAFKA_SSL_CAFILE": "/etc/ssl/certs/fleet-ca.pem",
}
UI_WAIT_S = 120


def _secret() -> str:
    return f"pw-{secrets.token_hex(12)}"


# ---------------------------------------------------------------------------------------------------------
# Kafka SASL/TLS settings reach every client.
# ---------------------------------------------------------------------------------------------------------


def test_sasl_and_tls_settings_reach_the_kafka_client_config():
    password = _secret()
    kafka = Settings.from_env({**SASL_ENV, "KAFKA_SASL_PASSWORD": password}).kafka

    config = kafka.client_config()

    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "leo-loader"
    assert config["sasl_plain_password"] == password
    assert config["ssl_cafile"] == "/etc/ssl/certs/fleet-ca.pem"
    plain = KafkaSettings().client_config()
    assert plain["security_protocol"] == "PLAINTEXT" and "sasl_mechanism" not in plain and "ssl_cafile" not in plain


def _kafka_client_calls() -> Iterator[tuple[str, ast.Call]]:
    for directory in SOURCES:
        for path in sorted((REPO / directory).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) in KAFKA_CLIENTS:
                    yield f"{path.relative_to(REPO)}:{node.lineno}", node


def test_every_kafka_client_the_project_builds_takes_its_config_from_settings():
    """Each KafkaConsumer/KafkaProducer/KafkaAdminClient call spreads `<kafka settings>.client_config()`, so
    a SASL/TLS setting applies to all of them; a client built any other way fails this test."""
    calls = list(_kafka_client_calls())
    assert len(calls) >= 4  # loader, producer, topic admin, demo
    for where, call in calls:
        spread = [kw.value for kw in call.keywords if kw.arg is None]
        assert any(isinstance(v, ast.Call) and getattr(v.func, "attr", None) == "client_config" for v in spread), (
            f"{where}: Kafka client not built from settings.kafka.client_config()"
        )


def test_settings_repr_and_str_redact_the_password():
    password = _secret()
    settings_ = Settings.from_env({**SASL_ENV, "KAFKA_SASL_PASSWORD": password})
    assert settings_.kafka.sasl_password == password
    for text in (repr(settings_), str(settings_), repr(settings_.kafka), str(settings_.kafka)):
        assert password not in text
        assert "leo-loader" in text  # the rest of the settings still show


# ---------------------------------------------------------------------------------------------------------
# No secret in logs, status or metadata; owner-only files.
# ---------------------------------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def _open_to_others(root: Path) -> list[str]:
    """Paths under `root` (root included) that group or others can read, write or enter."""
    paths = [root, *sorted(root.rglob("*"))]
    return [
        f"{path.relative_to(root.parent)} {stat.filemode(path.lstat().st_mode)}"
        for path in paths
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]


@pytest.mark.kafka
def test_demo_output_is_owner_only_and_holds_no_password(demo_run: DemoRun):
    """`leo-fleet demo` with a SASL password in the environment (tests/conftest.py): the password appears in no file
    of the data dir (lake catalog and data, loader_status, quarantine, reports, Dagster event log, broker log), not
    in stdout/stderr, not in any materialization's metadata; and every file and directory it created is private
    to its user."""
    data_dir, password, done = demo_run.data_dir, demo_run.sasl_password, demo_run.completed
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert password.encode() not in done.stdout + done.stderr
    files = _files(data_dir)
    assert {"lake", "reports", "dagster", "broker"} <= {p.relative_to(data_dir).parts[0] for p in files}
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "catalog.sqlite" for p in files)
    assert [str(p) for p in files if password.encode() in p.read_bytes()] == []
    assert _open_to_others(data_dir) == []

    # Compressed Parquet could hide it from a byte search: read the bookkeeping tables themselves.
    con = lake.connect(Settings().with_data_dir(data_dir), read_only=True)
    try:
        for table in ("loader_status", "quarantine", "ingest_offsets"):
            rows = con.execute(f"SELECT CAST(t AS VARCHAR) FROM raw.{table} t").fetchall()
            assert table != "loader_status" or rows, "the loader wrote no status row"
            assert not any(password in text for (text,) in rows), table
    finally:
        con.close()
    instance = dg.DagsterInstance.from_config(str(data_dir / "dagster"))
    try:
        metadata = [
            repr(record.asset_materialization.metadata)
            for key in instance.get_asset_keys()
            for record in instance.fetch_materializations(key, limit=1000).records
        ]
    finally:
        instance.dispose()
    assert metadata and not any(password in text for text in metadata)


@pytest.mark.kafka
def test_loader_status_output_holds_no_password(settings):
    password = _secret()
    streams = simulated_streams(simulation(controllers=5, hours=0.25))
    with TelemetryProducer(settings) as producer:
        producer.send(contract.TOPIC_LATENCY, streams[contract.TOPIC_LATENCY])
    env = {**cli_env(settings), "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_PASSWORD": password}
    done = subprocess.run(
        [*CLI, "ingest", "--until-idle", "--json"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    statuses = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert statuses and statuses[-1]["rows_total"] == streams[contract.TOPIC_LATENCY].num_rows
    assert password not in done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------------------
# The Dagster UI listens on loopback only.
# ---------------------------------------------------------------------------------------------------------


def _printed_ui_command(data_dir: Path) -> str:
    """The UI command line (`leo-fleet ui`, which runs `dagster dev`) exactly as the demo prints it."""
    console = Console(record=True, width=1000, file=open(os.devnull, "w"))  # noqa: SIM115
    start = datetime(2026, 1, 5, tzinfo=UTC)
    demo.where_to_look(data_dir, Window(start, start + timedelta(hours=2)), console)
    line = next(line for line in console.export_text().splitlines() if "Dagster UI:" in line)
    return line.split("Dagster UI:", 1)[1].strip()


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of `process` and its descendants."""
    found = set()
    for member in [process, *process.children(recursive=True)]:
        try:
            connections = member.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def test_the_dagster_ui_command_the_demo_prints_listens_on_loopback_only(tmp_path: Path, monkeypatch):
    data_dir = tmp_path / "data"
    demo.dagster_home(data_dir)
    port = free_port()
    monkeypatch.setattr(demo, "UI_PORT", port)  # the printed default, 3000, may be taken on a CI host
    reports_port = free_port()  # the reports server `leo-fleet ui` starts beside the UI: loopback too
    monkeypatch.setenv(f"{ENV_PREFIX}REPORTS_PORT", str(reports_port))
    command = _printed_ui_command(data_dir)
    assert f"--host 127.0.0.1 --port {port}" in command
    log = tmp_path / "dagster-dev.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, shell=True, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + UI_WAIT_S
        tree = psutil.Process(process.pid)
        while not {("127.0.0.1", port), ("127.0.0.1", reports_port)} <= (listening := _listening(tree)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1"}, listening
    finally:
        stop_process_group(process)
