"""The host collector's loop: poll every source → map to contract rows → publish → flush (acknowledged) → save
positions. Positions move only after Kafka acknowledged every message of the poll, rejects included, so a crash
or a broker outage never skips a record: the next run reads again from the last saved position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest import contract
from ingest.collect import sysfs
from ingest.collect.cxl_monitor import HostIdentity, Reject, map_lines
from ingest.collect.follow import StdinLines, read_new_lines
from ingest.collect.position import FilePosition, load_position, load_state, save_position, save_state
from ingest.kafka.producer import TelemetryProducer
from ingest.settings import Settings

STDIN = Path("-")
CXL_MONITOR_STATE = "cxl_monitor.position.json"
SYSFS_STATE = "sysfs.state.json"


@dataclass(frozen=True)
class CollectOptions:
    state_dir: Path
    identity: HostIdentity
    cxl_monitor: Path | None = None  # a file to follow, STDIN, or None to skip the source
    sysfs_root: Path | None = None
    interval_s: float = 10.0
    once: bool = False


@dataclass(frozen=True)
class PollSummary:
    errors: int
    link: int
    inventory: int
    rejected: int
    reasons: tuple[str, ...]


class Agent:
    """Run with `run()`; `stop()` (e.g. from a signal handler) ends it after the current poll."""

    def __init__(
        self,
        settings: Settings,
        options: CollectOptions,
        stdin_fd: int = 0,
        clock: Callable[[], int] = time.time_ns,
        producer_config: dict[str, object] | None = None,
    ) -> None:
        self.settings, self.options, self.clock, self.producer_config = settings, options, clock, producer_config
        self._stdin = StdinLines(stdin_fd) if options.cxl_monitor == STDIN else None
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self, on_poll: Callable[[PollSummary], None] = lambda _: None) -> None:
        with TelemetryProducer(self.settings, config=self.producer_config) as producer:
            while not self._stopped.is_set():
                on_poll(self.poll(producer))
                if self.options.once or (self._stdin is not None and self._stdin.closed):
                    return
                self._stopped.wait(self.options.interval_s)

    def poll(self, producer: TelemetryProducer) -> PollSummary:
        """One round over every source; returns after the broker acknowledged it and its positions are saved."""
        now = self.clock()
        identity = self.options.identity
        lines, position = self._read_cxl_monitor()
        errors, rejects = map_lines(lines, identity, now)
        producer.send(contract.TOPIC_ERRORS, errors)
        for reject in rejects:
            producer.send_rejected(contract.TOPIC_ERRORS, reject.raw, reject.reason, identity.host.encode())
        snapshot = None
        if self.options.sysfs_root is not None:
            snapshot = sysfs.snapshot(self.options.sysfs_root, identity, now, load_state(self._state(SYSFS_STATE)))
            producer.send(contract.TOPIC_LINK, snapshot.link)
            producer.send(contract.TOPIC_INVENTORY, snapshot.inventory)
            for reject in snapshot.rejects:
                producer.send_rejected(contract.TOPIC_LINK, reject.raw, reject.reason, identity.host.encode())
        producer.flush()  # raises DeliveryError before any position moves
        if position is not None:
            save_position(self._state(CXL_MONITOR_STATE), position)
        if snapshot is not None:
            save_state(self._state(SYSFS_STATE), snapshot.state)
        return _summary(errors.num_rows, snapshot, rejects)

    def _read_cxl_monitor(self) -> tuple[list[bytes], FilePosition | None]:
        """New lines and, for a followed file, the position after them (a pipe has none)."""
        source = self.options.cxl_monitor
        if source is None:
            return [], None
        if self._stdin is not None:
            return self._stdin.read(wait=self.options.once), None
        return read_new_lines(source, load_position(self._state(CXL_MONITOR_STATE)))

    def _state(self, name: str) -> Path:
        return self.options.state_dir / name


def _summary(errors: int, snapshot: sysfs.Snapshot | None, rejects: list[Reject]) -> PollSummary:
    rejects = rejects + (snapshot.rejects if snapshot else [])
    return PollSummary(
        errors=errors,
        link=snapshot.link.num_rows if snapshot else 0,
        inventory=snapshot.inventory.num_rows if snapshot else 0,
        rejected=len(rejects),
        reasons=tuple(reject.reason for reject in rejects),
    )
