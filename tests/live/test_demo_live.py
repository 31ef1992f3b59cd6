"""`leo-fleet demo --live` as a user runs it: its own broker (a free port), a short fleet at 120x, alerts printed as
the receiver gets them, every resolution after its firing, the same alerts in the lake's outbox, and the first hour's
live incidents equal to its hourly marts' (the acceptance's reconciliation in the demo)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ingest.kafka.broker import free_port
from ingest.lake import connect
from ingest.settings import ENV_PREFIX, Settings
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import REPO


def test_a_short_live_run_prints_alerts_as_they_fire_and_resolve(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        f"{ENV_PREFIX}DATA_DIR": str(tmp_path / "data"),
    }
    args = ["demo", "--live", "--controllers", "100", "--live-hours", "1.2", "--speed", "120"]
    done = subprocess.run([*CLI, *args], env=env, cwd=REPO, capture_output=True, timeout=600, check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    printed = re.findall(r"^(FIRING|RESOLVED)\s+(\w+)\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    assert printed, out
    fired = set()
    for status, _, subject, start in printed:
        if status == "FIRING":
            fired.add((subject, start))
        else:
            assert (subject, start) in fired
    (lake_dir,) = re.findall(r"^lake (\S+);", out, re.MULTILINE)
    con = connect(Settings().with_data_dir(Path(lake_dir)), read_only=True)
    try:
        (recorded,) = con.execute("SELECT count(*) FROM sre.alert_outbox").fetchone()
    finally:
        con.close()
    assert recorded == len(printed)
    assert f"{len(printed)} alert states delivered" in out
    # The first hour is behind the live path: reconciled with its marts, the same incidents.
    (matched, differences) = re.findall(
        r"^hour 2026-01-05-00:00: live vs hourly marts: (\d+) .*, (\d+) differences$", out, re.M
    )[0]
    assert int(matched) > 0 and int(differences) == 0, out
