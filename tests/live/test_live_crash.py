"""`leo-fleet live` killed in the middle of a round (its writes done, COMMIT not sent) and restarted, while the
telemetry keeps being committed: the incidents and the alert outbox are exactly those of a run that never crashed
(same rows fed the same way), every alert state once."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq

from ingest.lake import LAKE_ALIAS, connect, lake_cursor
from ingest.lake.fault_injection import ENV as CRASH_ENV
from ingest.lake.fault_injection import EXIT_CODE
from ingest.lake.raw_tables import Batch, Rows, commit_batch, ensure_tables
from ingest.settings import ENV_PREFIX, Settings
from pipelines.live.detect import ROUND_STAGE, LiveDetector
from pipelines.live.tables import POSITION, ensure_live_tables
from tests.ingest.kafka.helpers import CLI
from tests.live.test_live import SLICE, _slice
from tests.sample_lake import REPO, SAMPLE_DIR, SAMPLE_SPAN

SLICES = 12  # two hours
CRASH_AT = 5


def _slices() -> list[list[Rows]]:
    tables = {name: pq.read_table(SAMPLE_DIR / f"{name}.parquet") for name in ("errors", "link", "latency")}
    out = []
    for k in range(SLICES):
        start = SAMPLE_SPAN.start + k * SLICE
        out.append(
            [
                Rows("errors", _slice(tables["errors"], start, start + SLICE)),
                Rows("link", _slice(tables["link"], start, start + SLICE)),
                Rows("latency", _slice(tables["latency"], start, start + SLICE, "window_start")),
            ]
        )
    return out


def _lake(data_dir: Path):
    con = connect(Settings().with_data_dir(data_dir))
    ensure_tables(con)
    ensure_live_tables(con)
    commit_batch(con, Batch(rows=[Rows("inventory", pq.read_table(SAMPLE_DIR / "inventory.parquet"))]))
    return con


def _state(con) -> tuple[list, list]:
    incidents = con.execute(
        "SELECT incident_id, kind, start_ts, end_ts, resolved_at IS NOT NULL FROM sre.live_incidents ORDER BY ALL"
    ).fetchall()
    outbox = con.execute(
        "SELECT fingerprint, status, count(*) FROM sre.alert_outbox GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return incidents, outbox


def _start(data_dir: Path, crash: bool) -> subprocess.Popen:
    env = {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(data_dir)}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = f"{ROUND_STAGE}:{CRASH_AT}"
    return subprocess.Popen([*CLI, "live", "--poll", "0.2"], env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def _caught_up(con, snapshot: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    """Wait until the live process stored a position at or past `snapshot`, or exited."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        (position,) = con.execute(f"SELECT coalesce(max(snapshot_id), 0) FROM {POSITION}").fetchone()
        if position >= snapshot:
            return
        assert time.monotonic() < deadline, "the live process did not catch up"
        time.sleep(0.2)


def test_a_crash_mid_round_leaves_exactly_the_rows_of_an_uninterrupted_run(tmp_path: Path) -> None:
    slices = _slices()
    reference = _lake(tmp_path / "reference")
    detector = LiveDetector(lake_cursor(reference))
    for parts in slices:
        commit_batch(reference, Batch(rows=parts))
        detector.round()
    expected = _state(reference)
    reference.close()
    assert expected[0] and expected[1]

    con = _lake(tmp_path / "crashed")
    process = _start(tmp_path / "crashed", crash=True)
    crashed = False
    try:
        for parts in slices:
            commit_batch(con, Batch(rows=parts))
            # This connection's commit (the live process commits its own snapshots in between).
            (mine,) = con.execute(f"FROM {LAKE_ALIAS}.last_committed_snapshot()").fetchone()
            _caught_up(con, mine, process)
            if process.poll() is not None:
                assert process.returncode == EXIT_CODE
                crashed = True
                process = _start(tmp_path / "crashed", crash=False)
                _caught_up(con, mine, process)
        time.sleep(1)  # a last round would have nothing new: the process has no more to write
        assert crashed
        assert _state(con) == expected
    finally:
        process.terminate()
        process.wait(timeout=60)
        con.close()
