"""Sustained ingest against a real loader process: rows flow at the producer's top rate while the loader's RSS is
sampled, then a steady trickle with a burst of ten times its rate, timing how long the loader's lag takes to
return to 0. Shared by the CI version and the 10-minute soak (test_soak.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import psutil
import pyarrow as pa

from ingest import contract
from ingest.kafka.producer import TelemetryProducer
from ingest.settings import Settings
from tests.ingest.kafka.helpers import CLI, STREAMS, cli_env, lake_count, simulated_streams, simulation

RSS_EVERY_S = 1.0


@dataclass
class SoakResult:
    produced_rows: int = 0
    produced_messages: int = 0
    soak_rows: int = 0
    soak_s: float = 0.0
    rss_mib: list[float] = field(default_factory=list)  # the loader's RSS, one sample per second of the soak
    burst_rows: int = 0
    lag_zero_after_burst_s: float | None = None

    @property
    def rows_per_s(self) -> float:
        """The producer's top rate, as measured during the soak."""
        return self.soak_rows / self.soak_s

    def rss_growth(self, warmup_s: float) -> tuple[float, float]:
        """(last third ÷ first third of the RSS samples after `warmup_s`, while the loader fills its buffers;
        least-squares slope over the same samples in MiB/min)."""
        samples = np.array(self.rss_mib[int(warmup_s / RSS_EVERY_S) :])
        third = max(1, len(samples) // 3)
        slope = np.polyfit(np.arange(len(samples)) * RSS_EVERY_S / 60, samples, 1)[0] if len(samples) > 1 else 0.0
        return float(samples[-third:].mean() / samples[:third].mean()), float(slope)


class _LoaderProcess:
    """`leo-fleet ingest --follow --json` in a subprocess: its last status line and its RSS over time."""

    def __init__(self, settings: Settings) -> None:
        self.process = subprocess.Popen(
            [*CLI, "ingest", "--follow", "--json", "--flush-seconds", "1"],
            env=cli_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.status: dict = {}
        self.status_at = 0.0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.status, self.status_at = json.loads(line), time.monotonic()

    def wait_until_running(self, timeout_s: float = 120) -> None:
        """Until the first status line: the process has started, joined the group and is polling."""
        deadline = time.monotonic() + timeout_s
        while not self.status:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise TimeoutError("the loader did not start")
            time.sleep(0.1)

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def wait_for_lag_zero(self, since: float, timeout_s: float) -> float:
        """Seconds from `since` until a status line written after `since` reports lag 0."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.status_at > since and self.status.get("lag_total") == 0:
                return self.status_at - since
            time.sleep(0.1)
        raise TimeoutError(f"loader lag still {self.status.get('lag_total')} after {timeout_s} s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def _send_all(producer: TelemetryProducer, streams: dict[str, pa.Table]) -> None:
    for topic in STREAMS:
        producer.send(topic, streams[topic])


def run_soak(settings: Settings, soak_s: float, steady_s: float, burst_s: float) -> SoakResult:
    """Top-rate ingest for `soak_s`, then a trickle at a tenth of that rate with `burst_s` at the full rate."""
    streams = simulated_streams(simulation(controllers=200, hours=1, seed=9))
    round_rows = sum(streams[topic].num_rows for topic in STREAMS)
    result = SoakResult()
    loader = _LoaderProcess(settings)
    try:
        loader.wait_until_running()
        with TelemetryProducer(settings) as producer:
            started = next_sample = time.monotonic()
            while (now := time.monotonic()) - started < soak_s:
                _send_all(producer, streams)
                producer.flush()
                if now >= next_sample:
                    result.rss_mib.append(loader.rss_mib())
                    next_sample += RSS_EVERY_S
            result.soak_s, result.soak_rows = time.monotonic() - started, producer.rows
            loader.wait_for_lag_zero(time.monotonic(), timeout_s=600)

            # A tenth of the top rate, one round at a time, with a burst at the full rate in the middle.
            pause = round_rows / (result.rows_per_s / 10)
            for _ in range(max(1, int(steady_s / pause))):
                _send_all(producer, streams)
                producer.flush()
                time.sleep(pause)
            rows_before = producer.rows
            burst_started = time.monotonic()
            while time.monotonic() - burst_started < burst_s:
                _send_all(producer, streams)
                producer.flush()
            result.burst_rows = producer.rows - rows_before
            burst_ended = time.monotonic()
            result.lag_zero_after_burst_s = loader.wait_for_lag_zero(burst_ended, timeout_s=600)
            producer.flush()
        result.produced_rows, result.produced_messages = producer.rows, producer.messages
    finally:
        loader.stop()
    return result


def stored_messages(settings: Settings) -> int:
    """Distinct Kafka messages (topic, partition, offset) the telemetry tables hold rows from."""
    union = " UNION ".join(
        f"SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM raw.{contract.TABLE_NAMES[topic]}"
        for topic in STREAMS
    )
    return lake_count(settings, f"SELECT count(*) FROM ({union})")
