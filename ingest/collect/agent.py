"""The host collector's loop: poll every source → map to contract rows → write the poll to the on-disk spool →
save positions → send the spool, oldest poll first, each deleted once Kafka acknowledged all of its messages.

A poll is on disk (ingest.collect.spool) before anything of it is sent and positions move only after that, so a
crash or a broker outage never skips a record; while the broker is unreachable polls simply stay in the spool. A
poll's first send records where its partitions ended, and a poll sent again after a crash or a failure first
drops what the cut-short attempt delivered (ingest.collect.reconcile): nothing twice. A poll larger than the whole
spool is sent directly and its positions saved after the acknowledgement (a crash mid-send then sends it again).

When a poll fits neither the broker nor the spool, a followed file and rasdaemon keep their positions (read again
later), a sysfs snapshot is skipped (its counters are cumulative), and a pipe's lines are dropped and counted; the
counts travel to raw.quarantine as a `spool_full` reject with the next poll that is spooled or sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from ingest import contract
from ingest.collect import DEFAULT_SPOOL_MAX_BYTES, rasdaemon, reconcile, sysfs
from ingest.collect.cxl_monitor import HostIdentity, Reject, map_lines
from ingest.collect.follow import StdinLines, read_new_lines
from ingest.collect.position import load_position, load_state, save_state
from ingest.collect.spool import Publication, Spool
from ingest.kafka.producer import DeliveryError, TelemetryProducer
from ingest.settings import Settings, bootstrap_addresses

STDIN = Path("-")
CXL_MONITOR_STATE = "cxl_monitor.position.json"
SYSFS_STATE = "sysfs.state.json"
RASDAEMON_STATE = "rasdaemon.position.json"
DROPS_STATE = "spool_drops.json"
SPOOL_DIR = "spool"
READ_BACK_REQUEST_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 2.0  # a broker that accepts no TCP connection is down: spool without waiting for the client


@dataclass(frozen=True)
class CollectOptions:
    state_dir: Path
    identity: HostIdentity
    cxl_monitor: Path | None = None  # a file to follow, STDIN, or None to skip the source
    sysfs_root: Path | None = None
    rasdaemon: Path | None = None  # rasdaemon's SQLite database
    interval_s: float = 10.0
    once: bool = False
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES


@dataclass(frozen=True)
class PollSummary:
    errors: int
    link: int
    inventory: int
    rejected: int
    reasons: tuple[str, ...]
    skipped: int  # rasdaemon aer_event rows of devices that are not CXL memory devices
    delivery: str  # "sent", "spooled" (broker unreachable) or "spool_full" (neither: see the module docstring)
    replayed_segments: int  # spooled polls delivered during this poll
    spool_segments: int
    spool_bytes: int
    dropped_lines: int  # pipe lines dropped while the spool was full, not yet in a delivered or spooled reject
    skipped_sysfs_polls: int  # sysfs snapshots skipped while the spool was full, likewise


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
        self._clients: tuple[TelemetryProducer, KafkaConsumer] | None = None
        self.spool = Spool(options.state_dir / SPOOL_DIR, options.spool_max_bytes)
        for name, state in self.spool.newest_states().items():  # a crash after spooling, before saving them
            if name != DROPS_STATE:  # drops counted after that segment must stay counted
                save_state(self._state(name), state)

    def stop(self) -> None:
        self._stopped.set()

    def run(self, on_poll: Callable[[PollSummary], None] = lambda _: None) -> None:
        try:
            while not self._stopped.is_set():
                on_poll(self.poll())
                if self.options.once or (self._stdin is not None and self._stdin.closed):
                    return
                self._stopped.wait(self.options.interval_s)
        finally:
            self._drop_clients()

    def poll(self) -> PollSummary:
        """One round over every source; returns once the round is acknowledged or spooled and its states saved."""
        replayed = self._replay()
        now = self.clock()
        publication, lines, counts = self._read_sources(now)
        rejects = [reject for _, reject in publication.rejects]
        drops = load_state(self._state(DROPS_STATE))
        if drops:
            publication.rejects.append((contract.TOPIC_ERRORS, _drop_reject(self.options.identity.host, drops)))
            publication.states[DROPS_STATE] = {}
        if not publication.has_records():
            safe, delivery = True, "sent"
        elif self.spool.append(publication):  # on disk before anything of it is sent: see the module docstring
            safe, delivery = True, ""
        elif not self.spool.segments() and self._deliver(publication, None):  # larger than the whole spool
            safe, delivery = True, "sent"
        else:
            safe, delivery = False, "spool_full"
        if safe:
            for name, state in publication.states.items():
                save_state(self._state(name), state)
            drops = {}
        else:
            dropped_lines = lines if self._stdin is not None else 0
            if dropped_lines or self.options.sysfs_root is not None:
                drops = _count_drops(drops, dropped_lines, self.options.sysfs_root is not None, now)
                save_state(self._state(DROPS_STATE), drops)
        if not delivery:  # spooled: send it now, behind any older polls
            delivery = "sent" if self._replay() and not self.spool.segments() else "spooled"
        return PollSummary(
            errors=counts[contract.TOPIC_ERRORS],
            link=counts[contract.TOPIC_LINK],
            inventory=counts[contract.TOPIC_INVENTORY],
            rejected=len(rejects),
            reasons=tuple(reject.reason for reject in rejects),
            skipped=counts["skipped"],
            delivery=delivery,
            replayed_segments=replayed,
            spool_segments=len(self.spool.segments()),
            spool_bytes=self.spool.size(),
            dropped_lines=drops.get("dropped_lines", 0),
            skipped_sysfs_polls=drops.get("skipped_sysfs_polls", 0),
        )

    def _read_sources(self, now: int) -> tuple[Publication, int, dict[str, int]]:
        """Every source's new records as one publication; also the pipe lines read and the rows per topic."""
        identity, publication = self.options.identity, Publication()
        lines = self._read_cxl_monitor(publication)
        errors, rejects = map_lines(lines, identity, now)
        publication.tables.append((contract.TOPIC_ERRORS, errors))
        publication.rejects += [(contract.TOPIC_ERRORS, reject) for reject in rejects]
        counts = {
            contract.TOPIC_ERRORS: errors.num_rows,
            contract.TOPIC_LINK: 0,
            contract.TOPIC_INVENTORY: 0,
            "skipped": 0,
        }
        root = self.options.sysfs_root
        if self.options.rasdaemon is not None:
            devices = sysfs.devices_by_function(root) if root is not None else {}
            state = load_state(self._state(RASDAEMON_STATE))
            batch = rasdaemon.read_new(self.options.rasdaemon, state, identity, devices)
            publication.tables.append((contract.TOPIC_ERRORS, batch.rows))
            publication.rejects += [(contract.TOPIC_ERRORS, reject) for reject in batch.rejects]
            publication.states[RASDAEMON_STATE] = batch.state
            counts[contract.TOPIC_ERRORS] += batch.rows.num_rows
            counts["skipped"] = batch.skipped
        if root is not None:
            snapshot = sysfs.snapshot(root, identity, now, load_state(self._state(SYSFS_STATE)))
            publication.tables += [(contract.TOPIC_LINK, snapshot.link), (contract.TOPIC_INVENTORY, snapshot.inventory)]
            publication.rejects += [(contract.TOPIC_LINK, reject) for reject in snapshot.rejects]
            publication.states[SYSFS_STATE] = snapshot.state
            counts[contract.TOPIC_LINK], counts[contract.TOPIC_INVENTORY] = (
                snapshot.link.num_rows,
                snapshot.inventory.num_rows,
            )
        return publication, len(lines), counts

    def _read_cxl_monitor(self, publication: Publication) -> list[bytes]:
        """New lines; for a followed file, the position after them goes into the publication's states."""
        source = self.options.cxl_monitor
        if source is None:
            return []
        if self._stdin is not None:
            return self._stdin.read(wait=self.options.once)
        lines, position = read_new_lines(source, load_position(self._state(CXL_MONITOR_STATE)))
        publication.states[CXL_MONITOR_STATE] = asdict(position)
        return lines

    def _replay(self) -> int:
        """Deliver spooled polls oldest first, deleting each once acknowledged; stops at the first that fails."""
        replayed = 0
        for segment in self.spool.segments():
            if not self._deliver(self.spool.read(segment), segment):
                break
            self.spool.remove(segment)
            replayed += 1
        return replayed

    def _deliver(self, publication: Publication, segment: Path | None) -> bool:
        """Publish and wait for Kafka's acknowledgement of every message; False when the broker could not take it.

        A spooled poll's first attempt records where its partitions ended; a later attempt first takes out what the
        earlier one delivered (ingest.collect.reconcile), so a poll cut short is not sent twice.
        """
        try:
            clients = self._connect()
            if clients is None:
                return False
            producer, consumer = clients
            if segment is not None:
                ends = self.spool.attempt(segment)
                if ends is None:
                    self.spool.record_attempt(
                        segment, reconcile.end_offsets(consumer, reconcile.topics_of(publication))
                    )
                else:
                    publication = reconcile.remove_delivered(consumer, publication, ends)
            key = self.options.identity.host.encode()
            for topic, table in publication.tables:
                producer.send(topic, table)
            for topic, reject in publication.rejects:
                producer.send_rejected(topic, reject.raw, reject.reason, key)
            producer.flush()
        except (DeliveryError, KafkaError):
            self._drop_clients()
            return False
        return True

    def _connect(self) -> tuple[TelemetryProducer, KafkaConsumer] | None:
        """The producer and a group-less consumer (to read back), created when a bootstrap server accepts a TCP
        connection; None while none does."""
        if self._clients is None:
            servers = bootstrap_addresses(self.settings.kafka.bootstrap_servers)
            if not any(_accepts(host, port) for host, port in servers):
                return None
            timeout_ms = (self.producer_config or {}).get("request_timeout_ms", READ_BACK_REQUEST_TIMEOUT_MS)
            consumer = KafkaConsumer(
                **self.settings.kafka.client_config(),
                enable_auto_commit=False,
                request_timeout_ms=timeout_ms,
                allow_auto_create_topics=False,
            )
            try:
                producer = TelemetryProducer(self.settings, config=self.producer_config)
            except BaseException:
                consumer.close()
                raise
            self._clients = (producer, consumer)
        return self._clients

    def _drop_clients(self) -> None:
        """Close the clients without flushing: after a failure the producer's buffers belong to a poll that is sent
        again whole (less what reached Kafka)."""
        clients, self._clients = self._clients, None
        if clients is not None:
            producer, consumer = clients
            with contextlib.suppress(Exception):
                producer.__exit__(DeliveryError, None, None)
            with contextlib.suppress(Exception):
                consumer.close()

    def _state(self, name: str) -> Path:
        return self.options.state_dir / name


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def _count_drops(drops: dict, lines: int, sysfs_skipped: bool, now: int) -> dict:
    """Add this poll's losses to the pending drop counts (saved, so a restart still reports them)."""
    return {
        "dropped_lines": drops.get("dropped_lines", 0) + lines,
        "skipped_sysfs_polls": drops.get("skipped_sysfs_polls", 0) + sysfs_skipped,
        "first_ns": drops.get("first_ns", now),
        "last_ns": now,
    }


def _drop_reject(host: str, drops: dict) -> Reject:
    """The pending drop counts as a reject: raw.quarantine keeps them (reason `spool_full: …`, the JSON as bytes)."""
    reason = (
        f"spool_full: dropped {drops['dropped_lines']} pipe line(s) and skipped "
        f"{drops['skipped_sysfs_polls']} sysfs poll(s) while the broker was unreachable and the spool full"
    )
    return Reject(json.dumps({"host": host, **drops}, sort_keys=True).encode(), reason)
