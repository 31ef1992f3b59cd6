"""The on-disk spool and the agent through a broker outage.

Unit: a publication survives the disk byte for byte, segments come back oldest first, the bound refuses what does
not fit. Outage: a broker of the test's own is stopped while two agents poll every 0.2 s, one following a file and
one reading a pipe, each with a small spool; both fill it. Then the broker comes back (the local broker
keeps topics in memory, so its restart also empties them: what it had was loaded into the lake first). Every file
line reaches the lake exactly once; every pipe line reaches it once or is counted as dropped in raw.quarantine; no
poll ever saw a spool above its bound.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ingest import contract
from ingest.collect.agent import CXL_MONITOR_STATE, STDIN, Agent, CollectOptions, PollSummary
from ingest.collect.cxl_monitor import HostIdentity, Reject, map_lines
from ingest.collect.spool import Publication, Spool
from ingest.kafka import broker
from ingest.settings import Settings
from tests.ingest.collect import fixtures as fx
from tests.ingest.kafka.helpers import lake_count, lake_rows, run_loader
from tests.reliability.test_broker_outage import own_broker  # a broker the test may stop

# Short enough that a poll gives up on a broker that went away within seconds.
PRODUCER_TIMEOUTS = {"request_timeout_ms": 1500, "delivery_timeout_ms": 3000, "max_block_ms": 3000}
POLL_S = 0.2
LINES_PER_TICK, TICK_S = 5, 0.05  # 100 lines/s into each source
FILE_SPOOL_BYTES = 96 * 1024  # fills in the long outage: the file's position then waits
PIPE_SPOOL_BYTES = 48 * 1024  # fills within seconds: the pipe's lines are then dropped and counted


def publication() -> Publication:
    errors, _ = map_lines([fx.line(event) for event in fx.EVENTS], HostIdentity("h", "r", "g"), 1)
    return Publication(
        tables=[(contract.TOPIC_ERRORS, errors), (contract.TOPIC_LINK, contract.LINK_SCHEMA.empty_table())],
        rejects=[(contract.TOPIC_ERRORS, Reject(fx.MALFORMED, "bad_json: cut short"))],
        states={"a.json": {"offset": 7}},
    )


def test_a_segment_holds_the_publication_and_segments_come_back_oldest_first(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    first, second = publication(), Publication(states={"a.json": {"offset": 9}})

    assert spool.append(first) and spool.append(second)
    again = [spool.read(segment) for segment in spool.segments()]

    assert again[0].tables[0][1].equals(first.tables[0][1]) and len(again[0].tables) == 1  # empty tables not kept
    assert again[0].rejects == first.rejects and again[0].states == first.states
    assert again[1].states == {"a.json": {"offset": 9}} and spool.newest_states() == {"a.json": {"offset": 9}}
    spool.remove(spool.segments()[0])
    assert [spool.read(segment).states for segment in spool.segments()] == [second.states]


def test_the_bound_refuses_a_segment_that_does_not_fit_and_a_crash_leftover_is_removed(tmp_path):
    size = len(publication().encode())
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / ".segment.half-written").write_bytes(b"x" * 100)
    spool = Spool(tmp_path / "spool", max_bytes=2 * size)

    accepted = [spool.append(publication()) for _ in range(3)]

    assert accepted == [True, True, False]
    assert spool.size() == 2 * size and sorted(p.name for p in (tmp_path / "spool").iterdir())[0][0] != "."


def test_a_crash_after_spooling_and_before_saving_the_positions_is_repaired_at_start_up(tmp_path):
    """The newest segment's states are saved again, so the poll it holds is not read a second time."""
    monitor = tmp_path / "cxl-monitor.log"
    fx.write_lines(monitor, [fx.line(fx.AER_CE)])
    spooled = publication()
    spooled.states = {CXL_MONITOR_STATE: {"inode": monitor.stat().st_ino, "offset": monitor.stat().st_size}}
    Spool(tmp_path / "state" / "spool", max_bytes=1 << 20).append(spooled)  # and then the crash

    agent = _agent(Settings(), tmp_path, "state", monitor, 1 << 20)

    assert json.loads((tmp_path / "state" / CXL_MONITOR_STATE).read_text()) == spooled.states[CXL_MONITOR_STATE]
    assert len(agent.spool.segments()) == 1  # still to be sent


class Writer(threading.Thread):
    """Appends numbered cxl_poison lines (dpa = 64 × number) to a file or a pipe at a steady rate until stopped."""

    def __init__(self, write) -> None:
        super().__init__(daemon=True)
        self.write, self.written = write, 0
        self.running, self.stopped = threading.Event(), threading.Event()
        self.running.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            if self.running.wait(TICK_S) and not self.stopped.is_set():
                lines = [fx.line(fx.POISON, dpa=64 * (self.written + i)) + b"\n" for i in range(LINES_PER_TICK)]
                self.write(b"".join(lines))
                self.written += LINES_PER_TICK
                time.sleep(TICK_S)


def _until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.kafka
@pytest.mark.parametrize("outage_s", [pytest.param(8.0, id="8s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow)])
def test_a_broker_outage_loses_nothing_and_counts_what_a_full_spool_dropped(request, tmp_path, outage_s):
    settings: Settings = request.getfixturevalue(own_broker.__name__)
    monitor = tmp_path / "cxl-monitor.log"
    monitor.touch()
    read_end, write_end = os.pipe()
    agents = {
        "host-file": _agent(settings, tmp_path, "host-file", monitor, FILE_SPOOL_BYTES),
        "host-pipe": _agent(settings, tmp_path, "host-pipe", STDIN, PIPE_SPOOL_BYTES, stdin_fd=read_end),
    }
    polls: dict[str, list[PollSummary]] = {host: [] for host in agents}
    threads = [
        threading.Thread(target=agent.run, args=(polls[host].append,), daemon=True) for host, agent in agents.items()
    ]
    writers = {
        "host-file": Writer(lambda data: _append(monitor, data)),
        "host-pipe": Writer(lambda data: os.write(write_end, data)),
    }
    for thread in (*threads, *writers.values()):
        thread.start()

    time.sleep(2.0)  # the broker up: lines flow straight through
    for writer in writers.values():
        writer.running.clear()
    time.sleep(4 * POLL_S)  # every line written so far read and acknowledged: load it before the broker forgets it
    run_loader(settings)
    broker.stop(settings)
    for writer in writers.values():
        writer.running.set()
    time.sleep(outage_s)
    broker.start(settings, port=broker.configured_port(settings))  # empty: the local broker keeps topics in memory
    restarted = time.monotonic()
    for writer in writers.values():
        writer.stopped.set()
        writer.join(timeout=30)  # a pipe writer blocks while its agent is not reading, as `cxl monitor` would
        assert not writer.is_alive()
    os.close(write_end)  # the pipe's agent ends after its last poll
    position = agents["host-file"].options.state_dir / CXL_MONITOR_STATE
    _until(lambda: _caught_up(polls["host-file"], position, monitor), 60, "the file's agent to catch up")
    agents["host-file"].stop()
    for thread in threads:
        thread.join(timeout=60)
    caught_up_s = time.monotonic() - restarted
    run_loader(settings)

    for host, bound in (("host-file", FILE_SPOOL_BYTES), ("host-pipe", PIPE_SPOOL_BYTES)):
        assert not any(thread.is_alive() for thread in threads)
        assert max(poll.spool_bytes for poll in polls[host]) <= bound
        assert {"spooled", "spool_full"} <= {poll.delivery for poll in polls[host]}, host  # both states were seen
        assert agents[host].spool.segments() == []
    file_rows = lake_count(settings, "SELECT count(*) FROM raw.errors WHERE host = 'host-file'")
    file_distinct = lake_count(settings, "SELECT count(DISTINCT event_id) FROM raw.errors WHERE host = 'host-file'")
    assert file_rows == file_distinct == writers["host-file"].written  # nothing lost, nothing twice
    pipe_rows = lake_count(settings, "SELECT count(*) FROM raw.errors WHERE host = 'host-pipe'")
    pipe_distinct = lake_count(settings, "SELECT count(DISTINCT event_id) FROM raw.errors WHERE host = 'host-pipe'")
    reports = lake_rows(settings, "quarantine", ["reason", "raw_bytes"]).to_pylist()
    drops = [json.loads(report["raw_bytes"]) for report in reports if "spool_full" in report["reason"]]
    dropped = sum(drop["dropped_lines"] for drop in drops if drop["host"] == "host-pipe")
    assert dropped > 0 and pipe_rows == pipe_distinct
    assert pipe_rows + dropped == writers["host-pipe"].written  # every line stored or counted as dropped
    assert all(drop["host"] == "host-pipe" or drop["dropped_lines"] == 0 for drop in drops)
    counted = "SELECT sum(json_extract(decode(raw_bytes), '$.dropped_lines')::INT) FROM raw.quarantine"
    assert lake_count(settings, f"{counted} WHERE reason LIKE '%spool_full%'") == dropped  # the SQL of collect.md
    print(
        f"\noutage {outage_s:.0f} s: file {writers['host-file'].written:,} lines, all stored once; pipe "
        f"{writers['host-pipe'].written:,} lines, {pipe_rows:,} stored, {dropped:,} dropped and counted; largest "
        f"spool seen {max(p.spool_bytes for p in polls['host-file']):,} / {FILE_SPOOL_BYTES:,} B (file), "
        f"{max(p.spool_bytes for p in polls['host-pipe']):,} / {PIPE_SPOOL_BYTES:,} B (pipe); caught up "
        f"{caught_up_s:.1f} s after the broker restart"
    )


def _agent(
    settings: Settings,
    tmp_path: Path,
    host: str,
    source: Path,
    spool_bytes: int,
    sysfs: bool = False,
    stdin_fd: int = 0,
) -> Agent:
    collect = CollectOptions(
        state_dir=tmp_path / host,
        identity=HostIdentity(host, "r", "g"),
        cxl_monitor=source,
        interval_s=POLL_S,
        spool_max_bytes=spool_bytes,
    )
    return Agent(settings, collect, stdin_fd=stdin_fd, producer_config=PRODUCER_TIMEOUTS)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def _caught_up(polls: list[PollSummary], position: Path, monitor: Path) -> bool:
    """The spool is empty and the saved position is the file's end."""
    if not polls or polls[-1].spool_segments or polls[-1].delivery != "sent" or not position.exists():
        return False
    return json.loads(position.read_text())["offset"] == monitor.stat().st_size
