"""kill -9 of `leo-fleet collect` at seeded random moments during a replay of 100,000 `cxl monitor` events.

The events are appended to the followed file at 5,000 a second (a monitor log replayed at speed) while real
`leo-fleet collect` processes follow it, each killed with SIGKILL (no chance to flush or save) 0.5-3 s after its
first poll (counted from its start, a kill on a loaded machine could come before the process has read anything) and
the next started at once. The last run is stopped with SIGTERM once its saved position is the file's
end. Then the loader drains the topics: every event is in raw.errors and none twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time

import pytest

from ingest.collect.agent import CXL_MONITOR_STATE
from tests.ingest.collect import fixtures as fx
from tests.ingest.kafka.helpers import CLI, cli_env, lake_count, run_loader

EVENTS = 100_000
CHUNK, CHUNK_S = 500, 0.1  # 5,000 events a second: the replay takes 20 s
SEED = 17


@pytest.mark.kafka
def test_kill_9_at_random_points_of_a_replay_loses_and_duplicates_nothing(settings, tmp_path):
    monitor, state = tmp_path / "cxl-monitor.log", tmp_path / "state"
    monitor.touch()
    command = [*CLI, "collect", "--cxl-monitor", str(monitor), "--state-dir", str(state), "--interval", "0.1"]
    command += ["--host", "host-k9"]
    replay = threading.Thread(target=_replay, args=(monitor,), daemon=True)
    replay.start()
    rng = random.Random(SEED)
    offsets = []
    while replay.is_alive():
        process = subprocess.Popen(command, env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None and json.loads(process.stdout.readline())  # its first poll is done
        time.sleep(rng.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        offsets.append(_offset(state))
    process = subprocess.Popen(command, env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and json.loads(process.stdout.readline())  # its first poll is done
    deadline = time.monotonic() + 300
    while _offset(state) < monitor.stat().st_size:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the last run did not reach the end of the file"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    run_loader(settings)

    rows = lake_count(settings, "SELECT count(*) FROM raw.errors WHERE host = 'host-k9'")
    distinct = lake_count(settings, "SELECT count(DISTINCT event_id) FROM raw.errors WHERE host = 'host-k9'")
    print(f"\n{len(offsets)} kills; position saved at each (bytes): {offsets}; rows {rows:,}, distinct {distinct:,}")
    assert distinct == EVENTS  # nothing lost
    assert rows == EVENTS  # nothing twice
    assert len(set(offsets)) > 2  # the kills came at different stages of the replay


def _replay(monitor) -> None:
    for start in range(0, EVENTS, CHUNK):
        fx.write_lines(monitor, [fx.line(fx.POISON, dpa=64 * number) for number in range(start, start + CHUNK)])
        time.sleep(CHUNK_S)


def _offset(state) -> int:
    try:
        return json.loads((state / CXL_MONITOR_STATE).read_text())["offset"]
    except FileNotFoundError:
        return 0
