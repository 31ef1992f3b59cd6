"""A real PostgreSQL server for tests: Debian's `postgresql` binaries, a throw-away cluster on a free loopback port.

`initdb` into a fresh temporary directory (trust authentication, loopback only, its socket in that directory),
`postgres` started directly (no `pg_ctl` daemon in between, so the pid we hold is the postmaster's) and stopped by
that pid. PostgreSQL refuses to run as root: as root the server runs as the `postgres` OS user the Debian package
creates, and the cluster directory is handed to it.

    python -m tests.postgres      # start one, print its catalog string, stop it on Enter
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.kafka.broker import free_port

HOST = "127.0.0.1"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30.0


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (`/usr/lib/postgresql/<major>/bin`), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _run_as() -> dict[str, object]:
    """Popen keywords that drop root to the `postgres` OS user (no intermediate process: `user=` is a setuid)."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(SUPERUSER)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@dataclass(frozen=True)
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    process: subprocess.Popen

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (what follows `postgres:` in LEO_FLEET_LAKE_CATALOG)."""
        return f"dbname={dbname} host={HOST} port={self.port} user={SUPERUSER}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        completed = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname)],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return completed.stdout

    def create_database(self, prefix: str = "lake") -> str:
        """A new, empty database; its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def catalog(self, dbname: str) -> str:
        return f"postgres:{self.dsn(dbname)}"


def _wait_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            log = (server.root / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"postgres exited with {server.process.returncode}: {log}")
        ready = subprocess.run(
            [str(server.bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(server.port), "-U", SUPERUSER],
            check=False,
            timeout=10,
        )
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"postgres on port {server.port} not ready after {START_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private cluster, yield it, stop it (SIGINT: fast shutdown; SIGKILL if it lingers), delete it."""
    binaries = bin_dir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql")
    # Not under pytest's tmp dirs: those are root-only (0700) and the server may run as another user.
    root = Path(tempfile.mkdtemp(prefix="leo-fleet-pg-"))
    run_as = _run_as()
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
    data = root / "data"
    try:
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            check=True,
            timeout=120,
            cwd=root,
            **run_as,
        )
        port = free_port()
        log = open(root / "postgres.log", "wb")  # noqa: SIM115 - the server writes to it until it stops
        # Loopback and the private socket directory only; fsync off: a test cluster, thrown away.
        durability = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        process = subprocess.Popen(
            [str(binaries / "postgres"), "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(root), *durability],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            **run_as,
        )
        log.close()
        server = PostgresServer(binaries, root, port, process)
        try:
            _wait_ready(server)
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _stop(process: subprocess.Popen, timeout_s: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back open transactions, close connections
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    with postgres_server() as running:
        print(running.catalog(running.create_database()), flush=True)
        input()
