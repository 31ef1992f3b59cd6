"""Alert delivery end to end: outbox rows in a real lake, `leo-fleet live --no-detect` posting them to a real HTTP
receiver on a free loopback port that refuses requests for a while, a crash between the receiver's 2xx and the
cursor's commit, and a SIGKILL: every alert state arrives, in order, and any second arrival is an identical
re-post (what Alertmanager treats as the same alert)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.lake import connect
from ingest.lake.fault_injection import ENV as CRASH_ENV
from ingest.lake.fault_injection import EXIT_CODE
from ingest.settings import ENV_PREFIX, Settings
from pipelines.live.alerts import Alert, fingerprint, record
from pipelines.live.delivery import DELIVERED_STAGE, cursor
from pipelines.live.receiver import Receiver
from pipelines.live.tables import OUTBOX, ensure_live_tables
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import REPO

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _alert(i: int) -> Alert:
    labels = {
        "alertname": ("LeoLinkDrop", "LeoControllerReset")[i % 2],
        "controller_id": f"c{i:03d}",
        "incident_id": str(i),
    }
    return Alert(labels, T0 + timedelta(minutes=i), str(i), {"summary": f"incident {i}"})


def _record(settings: Settings, alerts: list[Alert]) -> None:
    con = connect(settings)
    try:
        ensure_live_tables(con)
        con.execute("BEGIN TRANSACTION")
        record(con, alerts, datetime.now(UTC))
        con.execute("COMMIT")
    finally:
        con.close()


@contextmanager
def _live(data_dir: Path, url: str, crash_at: str | None = None) -> Iterator[subprocess.Popen]:
    env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(data_dir)}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    process = subprocess.Popen(
        [*CLI, "live", "--no-detect", "--webhook", url, "--poll", "0.2"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _wait(condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _outbox(settings: Settings) -> list[tuple[str, str, int]]:
    con = connect(settings, read_only=True)
    try:
        return con.execute(f"SELECT fingerprint, status, seq FROM {OUTBOX} ORDER BY seq").fetchall()
    finally:
        con.close()


def test_every_alert_arrives_across_refusals_a_crash_and_a_sigkill(lake_settings: Settings) -> None:
    firing = [_alert(i) for i in range(40)]
    _record(lake_settings, firing)
    receiver = Receiver().start()
    try:
        # The receiver refuses for a while; the delivery retries, then crashes right after the 2xx (cursor not moved).
        receiver.refuse_next(3)
        with _live(lake_settings.data_dir, receiver.url, crash_at=f"{DELIVERED_STAGE}:1") as process:
            assert process.wait(timeout=120) == EXIT_CODE, process.stderr.read().decode()[-2000:]
        assert receiver.refused == 3
        first_pass = len(receiver.snapshot())
        assert first_pass == len(firing)

        # Half of them resolve, ten more fire; a process is SIGKILLed while it delivers, another finishes.
        _record(lake_settings, [a.resolved(a.starts_at + timedelta(minutes=5)) for a in firing[::2]])
        _record(lake_settings, [_alert(i) for i in range(40, 50)])
        with _live(lake_settings.data_dir, receiver.url) as process:
            _wait(lambda: len(receiver.snapshot()) > first_pass)
            process.send_signal(signal.SIGKILL)
        outbox = _outbox(lake_settings)
        expected = {(f, s) for f, s, _ in outbox}
        with _live(lake_settings.data_dir, receiver.url):
            _wait(lambda: expected <= {(_fp(r.alert), r.status) for r in receiver.snapshot()})
            con = connect(lake_settings, read_only=True)
            try:
                _wait(lambda: cursor(con, receiver.url) == outbox[-1][2], 30)
            finally:
                con.close()
    finally:
        receiver.stop()

    got = receiver.snapshot()
    # Every recorded (fingerprint, status) arrived; nothing else did.
    assert {(_fp(r.alert), r.status) for r in got} == expected
    assert len(expected) == 40 + 20 + 10
    # The crash after the 2xx made the first batch arrive twice: re-posts are byte-for-byte the same alert.
    assert len(got) > len(expected)
    first: dict[tuple[str, str], dict] = {}
    for r in got:
        assert first.setdefault((_fp(r.alert), r.status), r.alert) == r.alert
    # A firing arrives before its resolution, and carries no endsAt; a resolution does, with the same labels.
    order = {key: i for i, key in reversed(list(enumerate((_fp(r.alert), r.status) for r in got)))}
    for f, status in expected:
        if status == "resolved":
            assert order[(f, "firing")] < order[(f, "resolved")]
    for alert in first.values():
        assert set(alert) <= {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        assert alert["startsAt"].endswith("Z") and alert["labels"]["alertname"].startswith("Leo")


def _fp(alert: dict) -> str:
    return fingerprint(alert["labels"])


@pytest.mark.parametrize("args", [["--webhook", "ftp://x"], ["--no-detect"], ["--poll", "0"]])
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], lake_settings: Settings) -> None:
    env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(lake_settings.data_dir)}
    done = subprocess.run([*CLI, "live", *args], env=env, cwd=REPO, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr.decode()
