"""`simulate --to-kafka`: stream a simulation to the telemetry topics, as fast as possible or at wall-clock pace.

The inventory goes first on its own topic, then the declared maintenance windows on theirs. Ground truth never
travels on a topic: each chunk's injected faults are written straight to `raw.truth_faults` in the lake. In live
mode (`speed`) every chunk is cut into ticks of simulated time and each tick is sent when the wall clock reaches it
(speed 60 = one simulated hour per minute), so a loader in --follow mode sees telemetry arrive as it would from a
fleet. A delivery plan (ingest/kafka/delivery_faults.py) holds some hosts' batches back or sends them twice; its
truth rows go to `raw.truth_faults` before any telemetry.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest import contract, lake
from ingest.kafka.delivery_faults import Delivery, DeliveryFaults, HeldBatch, plan, truth
from ingest.kafka.producer import TelemetryProducer
from ingest.lake.raw_tables import TRUTH_TABLE, Batch, Rows, commit_batch, ensure_tables
from ingest.settings import Settings
from ingest.sim.simulator import SimChunk, Simulation

# Live mode sends at most this often (wall seconds), so high speeds still produce sizeable messages.
MIN_TICK_WALL_S = 1.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PublishSummary:
    rows: int
    messages: int
    bytes: int
    truth_rows: int
    seconds: float


def delivery_plan(simulation: Simulation, faults: DeliveryFaults) -> list[HeldBatch]:
    """The late and re-sent batches of `simulation` at the rates of `faults`, from the run's seed."""
    config = simulation.config
    hosts = pc.unique(simulation.inventory.column("host").cast(pa.string())).to_pylist()
    return plan(faults, sorted(hosts), config.start, config.span_s, config.seed)


def publish_simulation(
    settings: Settings,
    simulation: Simulation,
    speed: float | None = None,
    on_chunk: Callable[[SimChunk], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
    producer_config: dict[str, object] | None = None,
    delivery: Sequence[HeldBatch] = (),
) -> PublishSummary:
    """Publish every chunk; raises DeliveryError (with the acknowledged row count) if Kafka loses a message.

    `delivery` (`delivery_plan`): batches sent late or twice. A batch goes out with the first chunk (fast) or tick
    (live) that ends at or after its release time, and whatever is still held at the end goes out last."""
    started = time.perf_counter()
    con = lake.connect(settings)
    ensure_tables(con)
    truth_rows = 0
    held = Delivery(delivery)
    try:
        if delivery:
            faults = truth(delivery, simulation.inventory)
            commit_batch(con, Batch(rows=[Rows(TRUTH_TABLE, faults)]))
            truth_rows += faults.num_rows
        with TelemetryProducer(settings, config=producer_config) as producer:
            producer.send(contract.TOPIC_INVENTORY, simulation.inventory)
            producer.send(contract.TOPIC_MAINTENANCE, simulation.maintenance)
            producer.flush()

            def send(moment: datetime | None, tables: dict[str, pa.Table]) -> None:
                for topic, table in tables.items():
                    producer.send(topic, held.split(topic, table))
                for topic, table in held.due(moment):
                    producer.send(topic, table)

            clock = _LiveClock(simulation.config.start, speed, sleep, now) if speed else None
            for chunk in simulation.chunks():
                if chunk.truth.num_rows:
                    commit_batch(con, Batch(rows=[Rows(TRUTH_TABLE, chunk.truth)]))
                    truth_rows += chunk.truth.num_rows
                if clock is None:
                    streams = {topic: getattr(chunk, contract.TABLE_NAMES[topic]) for topic in contract.TIME_COLUMNS}
                    send(chunk.window_end, streams)
                else:
                    tick = timedelta(seconds=max(simulation.config.interval_s, speed * MIN_TICK_WALL_S))
                    for tick_end, tables in _ticks(chunk, tick):
                        clock.wait_until(tick_end)
                        send(tick_end, tables)
                        producer.flush()
                if on_chunk:
                    on_chunk(chunk)
            send(None, {})
        return PublishSummary(
            producer.rows, producer.messages, producer.bytes, truth_rows, time.perf_counter() - started
        )
    finally:
        con.close()


class _LiveClock:
    """Maps simulated time to wall time at `speed` simulated seconds per wall second."""

    def __init__(
        self, sim_start: datetime, speed: float, sleep: Callable[[float], None], now: Callable[[], float]
    ) -> None:
        self.sim_start, self.speed, self.sleep, self.now = sim_start, speed, sleep, now
        self.wall_start = now()

    def wait_until(self, sim_time: datetime) -> None:
        due = self.wall_start + (sim_time - self.sim_start).total_seconds() / self.speed
        delay = due - self.now()
        if delay > 0:
            self.sleep(delay)


def _ticks(chunk: SimChunk, tick: timedelta) -> Iterator[tuple[datetime, dict[str, pa.Table]]]:
    """The chunk's rows cut into consecutive slices of `tick` simulated time, each stream time-sorted.

    The first and last slices are open-ended, so a row stamped outside the chunk's window is still sent.
    """
    edges = []
    moment = chunk.window_start + tick
    while moment < chunk.window_end:
        edges.append(moment)
        moment += tick
    edge_ns = [(edge - EPOCH) // timedelta(microseconds=1) * 1000 for edge in edges]
    slices = {}
    for topic, column in contract.TIME_COLUMNS.items():
        table = getattr(chunk, contract.TABLE_NAMES[topic])
        times = table.column(column).cast(pa.int64()).to_numpy()
        order = np.argsort(times, kind="stable")
        cuts = [0, *np.searchsorted(times[order], edge_ns).tolist(), table.num_rows]
        ordered = table.take(pa.array(order))
        slices[topic] = [ordered.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    for index, end in enumerate([*edges, chunk.window_end]):
        yield end, {topic: parts[index] for topic, parts in slices.items()}
