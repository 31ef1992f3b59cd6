"""Delivery confounders of `simulate --to-kafka`: a host's batch of telemetry held back and sent late (out of
order), and a batch sent twice, as an agent that retries after a lost ack does.

The telemetry itself is the simulator's; only when and how often its rows reach Kafka changes. A batch is the rows
of one host (every controller on it, every stream) whose time falls in one of the agent's flush periods. The plan
is drawn up front from the run's seed on a stream of its own, so a run with these faults sends exactly the rows of
the same run without them, plus the re-sent copies. Each planned batch is one `raw.truth_faults` row per
controller of its host (kind `late_delivery` or `duplicate_delivery`, onset and end the batch's period), so an
evaluation can tell which false alarm a delivery fault caused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract
from ingest.sim.confounders import CONFOUNDER_PROFILES
from ingest.sim.seeding import rng_for

LATE, DUPLICATE = contract.DELIVERY_FAULT_KINDS
DAY_S = 86_400.0


@dataclass(frozen=True)
class DeliveryFaults:
    """Rates of the delivery faults, per host and simulated day; 0 turns a fault off."""

    late_per_host_day: float = 0.0
    # How long a late batch is held back past its period's end, uniform between the two (seconds).
    late_delay_s: tuple[float, float] = (120.0, 3600.0)  # ASSUMPTION: "minutes to an hour" (issue 14)
    duplicate_per_host_day: float = 0.0
    # A re-sent batch goes out this long after its period ends: the agent's ack timeout before it retries.
    resend_after_s: float = 30.0  # ASSUMPTION: kafka-python's request_timeout_ms default is 30 s
    # The agent's flush period: a batch holds this much of one host's telemetry.
    batch_s: float = 300.0  # ASSUMPTION: a collector that ships every 5 minutes

    @classmethod
    def profile(cls, name: str) -> DeliveryFaults:
        """The knobs of `--confounders off|default|heavy` (the simulator's profiles, ingest.sim.confounders)."""
        if name == "off":
            return cls()
        if name == "default":
            # ASSUMPTION: a late batch per host about every 5 days, a re-sent one about every 10 days.
            return cls(late_per_host_day=0.2, duplicate_per_host_day=0.1)
        if name == "heavy":
            # ASSUMPTION: ten times the default, for a fleet with a flaky collector path.
            return cls(late_per_host_day=2.0, duplicate_per_host_day=1.0)
        raise ValueError(f"unknown delivery fault profile {name!r}: one of {', '.join(CONFOUNDER_PROFILES)}")

    @property
    def off(self) -> bool:
        return not (self.late_per_host_day or self.duplicate_per_host_day)


@dataclass(frozen=True)
class HeldBatch:
    """One host's rows with time in [start, end), sent at `release` (late) or sent on time and again then."""

    kind: str  # LATE or DUPLICATE
    host: str
    start: datetime
    end: datetime
    release: datetime


def plan(faults: DeliveryFaults, hosts: Sequence[str], start: datetime, span_s: float, seed: int) -> list[HeldBatch]:
    """The run's faulty batches: per host, Poisson counts at the rates, each in a flush period drawn uniformly."""
    rng = rng_for(seed, "delivery_faults")
    periods = max(1, int(span_s // faults.batch_s))
    batches = []
    for kind, rate in ((LATE, faults.late_per_host_day), (DUPLICATE, faults.duplicate_per_host_day)):
        counts = rng.poisson(rate * span_s / DAY_S, len(hosts)) if rate else np.zeros(len(hosts), np.int64)
        for host, count in zip(hosts, counts.tolist(), strict=True):
            for period in np.unique(rng.integers(0, periods, count)).tolist():
                begin = start + timedelta(seconds=period * faults.batch_s)
                end = begin + timedelta(seconds=faults.batch_s)
                after = rng.uniform(*faults.late_delay_s) if kind == LATE else faults.resend_after_s
                batches.append(HeldBatch(kind, host, begin, end, end + timedelta(seconds=after)))
    return sorted(batches, key=lambda batch: (batch.release, batch.host, batch.kind))


def truth(batches: Sequence[HeldBatch], inventory: pa.Table) -> pa.Table:
    """One TRUTH_FAULTS_SCHEMA row per controller of each batch's host."""
    controllers = defaultdict(list)
    for controller, host in zip(
        inventory.column("controller_id").to_pylist(), inventory.column("host").to_pylist(), strict=True
    ):
        controllers[host].append(controller)
    rows = [
        {
            "controller_id": controller,
            "kind": batch.kind,
            "onset_ts": batch.start,
            "end_ts": batch.end,
            "precursor_onset_ts": None,
            "details": json.dumps(
                {"host": batch.host, "sent_after_s": (batch.release - batch.end).total_seconds()}, sort_keys=True
            ),
        }
        for batch in batches
        for controller in controllers[batch.host]
    ]
    return contract.conform(pa.Table.from_pylist(rows, schema=_PLAIN_TRUTH), contract.TRUTH_FAULTS_SCHEMA)


_PLAIN_TRUTH = pa.schema(
    [field.with_type(pa.string()) if field.type == contract.DICT else field for field in contract.TRUTH_FAULTS_SCHEMA]
)


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, as the contract's timestamps hold them."""
    return pa.scalar(moment, contract.TS).cast(pa.int64()).as_py()


class Delivery:
    """Applies a plan to the tables on their way to the producer: `split` takes out the rows of late batches (and
    copies the rows of re-sent ones), `due` hands back the batches whose release time has come."""

    def __init__(self, batches: Sequence[HeldBatch]) -> None:
        self._batches = list(batches)
        self._periods = [(_ns(batch.start), _ns(batch.end)) for batch in self._batches]
        self._held: dict[int, dict[str, list[pa.Table]]] = {i: defaultdict(list) for i in range(len(self._batches))}
        self._released: set[int] = set()

    def split(self, topic: str, table: pa.Table) -> pa.Table:
        """The rows of `table` to send now; rows of a planned batch are kept for its release. Rows are grouped by
        host once, so each batch looks only at its own host's rows (a heavy plan has thousands of batches)."""
        if not self._batches or not table.num_rows:
            return table
        times = pc.cast(table.column(contract.TIME_COLUMNS[topic]), pa.int64()).to_numpy()
        first, last = int(times.min()), int(times.max())
        pending = [
            index
            for index, (start, end) in enumerate(self._periods)
            if index not in self._released and end > first and start <= last
        ]
        hosts = {host: code for code, host in enumerate(sorted({self._batches[index].host for index in pending}))}
        if not hosts:
            return table
        codes = pc.index_in(table.column("host").cast(pa.string()), value_set=pa.array(list(hosts)))
        codes = codes.fill_null(-1).to_numpy()
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(hosts) + 1))
        late = np.zeros(table.num_rows, bool)
        held: dict[int, np.ndarray] = {}
        for index in pending:
            batch, (start, end) = self._batches[index], self._periods[index]
            code = hosts[batch.host]
            rows = order[bounds[code] : bounds[code + 1]]
            rows = np.sort(rows[(times[rows] >= start) & (times[rows] < end)])
            if rows.size:
                held[index] = rows
                late[rows] |= batch.kind == LATE
        if held:  # one take for every batch: each take of a many-chunk table costs milliseconds
            taken = table.take(pa.array(np.concatenate(list(held.values()))))
            offset = 0
            for index, rows in held.items():
                self._held[index][topic].append(taken.slice(offset, rows.size))
                offset += rows.size
        return table.filter(pa.array(~late)) if late.any() else table

    def due(self, now: datetime | None) -> Iterator[tuple[str, pa.Table]]:
        """The held rows of every batch released by `now` (all that remain when `now` is None), per topic."""
        for index, batch in enumerate(self._batches):
            if index in self._released or (now is not None and batch.release > now):
                continue
            self._released.add(index)
            for topic, parts in self._held.pop(index).items():
                yield topic, pa.concat_tables(parts)
