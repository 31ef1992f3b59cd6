"""The local broker's lifecycle through `leo-fleet broker`, and the cases where it must refuse or not act."""

from __future__ import annotations

import json
import os
import socket

import psutil
import pytest

from ingest.kafka import broker
from ingest.settings import KafkaSettings, Settings
from tests.ingest.kafka.helpers import run_cli


def _local(tmp_path, port: int) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")).with_data_dir(tmp_path)


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path):
    settings = _local(tmp_path, broker.free_port())

    started = run_cli(settings, "broker", "start", "--json")
    again = run_cli(settings, "broker", "start", "--json")
    status = run_cli(settings, "broker", "status", "--json")
    pid = json.loads(started.stdout)["pid"]
    listening = _accepts(settings)
    stopped = run_cli(settings, "broker", "stop")
    after = run_cli(settings, "broker", "status")

    assert started.returncode == 0, started.stderr
    assert json.loads(again.stdout) == json.loads(started.stdout) == json.loads(status.stdout)
    assert json.loads(status.stdout)["bootstrap_servers"] == settings.kafka.bootstrap_servers
    assert listening
    assert stopped.returncode == 0
    assert not _alive(pid)
    assert (after.returncode, after.stdout.strip()) == (3, "broker not running")
    assert not (settings.broker_dir / "tansu.pid").exists()


def test_a_stale_pid_file_is_never_trusted(tmp_path):
    settings = _local(tmp_path, broker.free_port())
    settings.broker_dir.mkdir(parents=True)
    (settings.broker_dir / "tansu.pid").write_text(f"{os.getpid()}\n")  # alive, but not a broker

    assert broker.status(settings).running is False
    broker.stop(settings)
    assert psutil.pid_exists(os.getpid())


def test_a_busy_port_and_a_remote_cluster_are_refused_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(broker.BrokerError, match=f"port {port}"):
            broker.start(_local(tmp_path, port))
    remote = Settings(kafka=KafkaSettings(bootstrap_servers="kafka.example.com:9093")).with_data_dir(tmp_path)

    refused = run_cli(remote, "broker", "start")

    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "not a local broker" in refused.stderr


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _accepts(settings: Settings) -> bool:
    host, port = settings.kafka.bootstrap_servers.split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0
