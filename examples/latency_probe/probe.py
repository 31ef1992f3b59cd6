"""A memory-latency probe that publishes leo.latency histograms as JSON lines (docs/collect.md, "Latency from outside").

Real hosts expose no CXL latency histogram, so something must measure one. This probe times dependent loads
(pointer chasing: each load's address is the value of the previous one, so loads cannot overlap) over a buffer
in a random cyclic order of cache lines, buckets the samples in the contract's base-2 exponential histogram and,
once per window, publishes one `leo.latency` row in the README's JSON-lines interop format. Pin it to the memory
you want to measure with numactl; unpinned it measures whatever node the kernel gives it (local DRAM here):

    numactl --membind=2 --cpunodebind=0 python probe.py --tier cxl --controller-id 0x1d9a00003a7f12c4
    python probe.py --tier local_dram --print            # JSON lines on stdout instead of Kafka

It is independent of leo-fleet on purpose (any language can publish): it needs numpy and, to publish,
kafka-python, and reads KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092). Python adds tens of ns to every load,
so a sample is the mean time of --hops dependent loads minus the same loop's time over an L1-resident chain:
the tier's load-to-use latency less an L1 hit, averaged over the hops, not one access. For single-access
resolution time loads in C (e.g. lmbench's lat_mem_rd) and reuse `histogram_row` for the bucketing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

import numpy as np

TOPIC = "leo.latency"
SCALE = 4  # the contract's HISTOGRAM_SCALE: one scale fleet-wide, so histograms merge by adding counts
SLO_THRESHOLD_NS = 1024  # the contract's default: on a bucket boundary at every scale >= 0
HEADERS = [("content-type", b"application/x-ndjson"), ("leo-schema", TOPIC.encode()), ("leo-schema-version", b"1")]
LINE_WORDS = 8  # 8-byte words per 64-byte cache line: one hop per line
L1_CHAIN_LINES = 64  # 4 KiB: stays in L1, so its loop time is the interpreter's cost per hop


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def bucket_index(value_ns: float) -> int:
    """The contract's bucket of a sample: bucket i covers (base**i, base**(i+1)], base = 2**(2**-SCALE)."""
    return math.ceil(math.log2(value_ns) * 2**SCALE) - 1


def random_chain(lines: int, rng: np.random.Generator) -> memoryview:
    """A buffer whose lines form one random cycle through every line (so a chase may start at word 0): the first
    word of each line holds the word index of the next line's first word.

    Random order defeats the prefetchers; a memoryview returns plain ints, the cheapest load Python has.
    """
    chain = np.zeros(lines * LINE_WORDS, np.uint64)
    order = rng.permutation(lines).astype(np.uint64) * LINE_WORDS
    chain[order] = np.roll(order, -1)
    return memoryview(chain)


def chase_ns(chain: memoryview, start: int, hops: int) -> tuple[float, int]:
    """Nanoseconds per hop over `hops` dependent loads, and where the chase stopped (the next batch resumes)."""
    at = start
    began = time.perf_counter_ns()
    for _ in range(hops):
        at = chain[at]
    return (time.perf_counter_ns() - began) / hops, at


def measure(chain: memoryview, l1_chain: memoryview, samples: int, hops: int) -> list[int]:
    """`samples` latencies in whole ns (at least 1): each batch's ns per hop less the L1 loop's median."""
    at, l1_at, l1 = 0, 0, []
    for _ in range(max(16, samples // 8)):
        per_hop, l1_at = chase_ns(l1_chain, l1_at, hops)
        l1.append(per_hop)
    overhead = float(np.median(l1))
    values = []
    for _ in range(samples):
        per_hop, at = chase_ns(chain, at, hops)
        values.append(max(1, round(per_hop - overhead)))
    return values


def histogram_row(values: list[int], window_start: float, window_s: int, identity: dict[str, str]) -> dict:
    """One leo.latency row in the JSON-lines interop format: dense bucket counts from the lowest bucket used."""
    buckets = [bucket_index(v) for v in values]
    low = min(buckets)
    counts = [0] * (max(buckets) - low + 1)
    for bucket in buckets:
        counts[bucket - low] += 1
    start = datetime.fromtimestamp(window_start, UTC).isoformat().replace("+00:00", "Z")
    return {
        "window_start": start,
        "window_s": window_s,
        **identity,
        "head_or_ld": 0,
        "op": "read",
        "scale": SCALE,
        "bucket_offset": low,
        "bucket_counts": counts,
        "count": len(values),
        "sum_ns": float(sum(values)),
        "min_ns": min(values),
        "max_ns": max(values),
        "slo_threshold_ns": SLO_THRESHOLD_NS,
        "over_slo": sum(v > SLO_THRESHOLD_NS for v in values),
        # The probe cannot see the device's traffic or queues (CPMU, QoS telemetry): zero, not a guess.
        "rd_bytes": 0,
        "wr_bytes": 0,
        "backpressure_avg_pct": 0,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog="probe.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=("cxl", "local_dram"), default="local_dram", help="memory measured")
    parser.add_argument("--controller-id", help="the CXL device's id, 0x + its 16-hex-digit serial (--tier cxl)")
    parser.add_argument("--host", default=socket.gethostname(), help="host name on the row (default: this host)")
    parser.add_argument("--buffer-mib", type=int, default=1024, help="several times the last-level cache (lscpu)")
    parser.add_argument("--window-s", type=int, default=10, help="seconds per histogram (default 10)")
    parser.add_argument("--samples", type=int, default=1000, help="samples per window (default 1000)")
    parser.add_argument("--hops", type=int, default=256, help="dependent loads per sample (default 256)")
    parser.add_argument("--windows", type=int, default=0, help="stop after this many windows (default 0: never)")
    parser.add_argument("--print", action="store_true", help="write the JSON lines to stdout, not to Kafka")
    args = parser.parse_args(argv)
    bounds = {"buffer_mib": 1 << 20, "window_s": 3600, "samples": 10**6, "hops": 10**6, "windows": 10**9}
    for name, high in bounds.items():
        low = 0 if name == "windows" else 1
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be from {low} to {high}")
    if (args.tier == "cxl") != (args.controller_id is not None):
        parser.error("--controller-id is required with --tier cxl, and only then (local_dram rows carry the host)")
    if args.controller_id is not None and not re.fullmatch(r"0x[0-9a-f]{16}", args.controller_id):
        parser.error("--controller-id must be 0x and 16 lower-case hex digits, as the collector writes it")
    if not args.host.strip():
        parser.error("--host must not be empty")
    return args


def controller_of(args: argparse.Namespace) -> str:
    """The row's controller_id and Kafka key: the CXL device's, or for a local-DRAM baseline row the host name
    (the contract's convention)."""
    return args.controller_id or args.host


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print:
        return run(args, lambda line: print(line, end="", flush=True))
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    try:
        if not any(_accepts(server) for server in servers.split(",")):  # at once, not after the client's 30 s
            raise KafkaError("no server accepts a connection")
        producer = KafkaProducer(bootstrap_servers=servers.split(","), acks="all")
    except KafkaError as exc:
        print(f"probe.py: error: cannot reach KAFKA_BOOTSTRAP_SERVERS={servers}: {exc}", file=sys.stderr)
        return 2
    key = controller_of(args).encode()

    def send(line: str) -> None:
        """Keyed by controller with kafka-python's default partitioner (murmur2, as the loader expects); waits for
        the acknowledgement, so a window is either published or reported."""
        producer.send(TOPIC, key=key, value=line.encode(), headers=HEADERS).get(timeout=30)

    try:
        return run(args, send)
    except KafkaError as exc:
        print(f"probe.py: error: a window was not published: {exc}", file=sys.stderr)
        return 1
    finally:
        producer.close()


def _accepts(server: str) -> bool:
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return True
    except (OSError, ValueError):
        return False


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> int:
    """Measure and emit one row per window until --windows are done (or Ctrl-C: status 130)."""
    identity = {"host": args.host, "controller_id": controller_of(args), "memory_tier": args.tier}
    rng = np.random.default_rng()
    chain = random_chain(args.buffer_mib * 1024 * 1024 // 64, rng)
    l1_chain = random_chain(L1_CHAIN_LINES, rng)
    published = 0
    try:
        while args.windows == 0 or published < args.windows:
            window_start = time.time() // args.window_s * args.window_s
            values = measure(chain, l1_chain, args.samples, args.hops)
            emit(json.dumps(histogram_row(values, window_start, args.window_s, identity)) + "\n")
            published += 1
            if published != args.windows:
                time.sleep(max(0.0, window_start + args.window_s - time.time()))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
