"""The reports server `leo-fleet ui` starts beside the Dagster UI: it serves the reports directory over http on
loopback, goes away with the process that started it, and a taken port is one line and exit status 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from ingest.kafka.broker import free_port
from ingest.settings import ENV_PREFIX, Settings
from tests.ingest.kafka.helpers import CLI

WAIT_S = 30
# A parent that starts the server, prints its pid, and waits to be told to go.
PARENT = """
import sys
from ingest.settings import Settings
from pipelines.reports import serve
print(serve.start(Settings.from_env()).pid, flush=True)
sys.stdin.readline()
"""


def test_serves_the_reports_and_exits_with_its_parent(tmp_path: Path) -> None:
    page = tmp_path / "reports" / "slo" / "2026-01-05" / "report.html"
    page.parent.mkdir(parents=True)
    page.write_text("<h1>SLO report 2026-01-05</h1>")
    env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(tmp_path), f"{ENV_PREFIX}REPORTS_PORT": str(free_port())}
    settings = Settings.from_env(env)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        server = psutil.Process(int(parent.stdout.readline()))
        url = f"http://127.0.0.1:{settings.reports_port}/slo/2026-01-05/report.html"
        with urllib.request.urlopen(url, timeout=WAIT_S) as response:
            assert response.read().decode() == page.read_text()
        listening = {c.laddr for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert {(ip, port) for ip, port in listening} == {("127.0.0.1", settings.reports_port)}
    finally:
        parent.communicate("\n", timeout=WAIT_S)  # the parent exits
    server.wait(timeout=WAIT_S)  # and the server with it
    assert not server.is_running()


def test_a_taken_reports_port_is_one_line_and_status_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(tmp_path), f"{ENV_PREFIX}REPORTS_PORT": str(port)}
        done = subprocess.run(
            [*CLI, "ui", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout)
    assert len(done.stderr.strip().splitlines()) == 1 and f"{ENV_PREFIX}REPORTS_PORT" in done.stderr, done.stderr
