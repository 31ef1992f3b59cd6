"""Benchmark of the Kafka path: simulate → produce → broker → loader → DuckLake, against ceilings from the same run.

    .venv/bin/python -m bench.pipeline                              # 1,000 controllers x 6 h (~1.3M rows)
    .venv/bin/python -m bench.pipeline --controllers 4000 --hours 6 # ~5M rows

All in one run, on a broker of its own (free port) and a temporary lake:
  (a) broker ceiling: opaque payloads of our average message size, produced with our producer settings, then
      consumed with our consumer settings; bytes / (produce time + consume time).
  (b) pipeline: simulate and publish everything, then drain it with the loader (produce-then-consume, like (a));
      rows and wire bytes / (publish time + loader time from partition assignment to its last row commit).
  (c) DuckDB's bare Arrow insert: the same simulated tables, one INSERT per table in one transaction, into a
      fresh DuckLake; compared with the loader's own time inside its lake transactions.
The stage rows show where the CPU goes: simulation alone, Arrow IPC zstd encoding, decoding with the contract
checks. Figures vary with machine load; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from ingest import contract, lake
from ingest.kafka import broker, codec
from ingest.kafka.producer import PRODUCER_CONFIG
from ingest.kafka.publish import publish_simulation
from ingest.lake.loader import FETCH_CONFIG, Loader, LoaderOptions
from ingest.lake.raw_tables import RAW, duckdb_safe, ensure_tables
from ingest.settings import KafkaSettings, Settings, restrict_new_files
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation

STREAMS = (contract.TOPIC_ERRORS, contract.TOPIC_LINK, contract.TOPIC_LATENCY)
RAW_TOPIC = "bench.opaque"
MIN_RAW_BYTES = 64 * 1024 * 1024
console = Console(stderr=True)


def main() -> int:
    restrict_new_files()  # an entry point: the lake and files it writes are its user's alone
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controllers", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = SimConfig(controllers=args.controllers, hours=args.hours, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="leo-bench-") as scratch:
        home = Path(scratch)
        settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}", consumer_group="bench")
        ).with_data_dir(home / "pipeline")
        broker.start(settings)
        try:
            figures = _run(settings, config, home)
        finally:
            broker.stop(settings)
    _print(figures, config)
    return 0


def _run(settings: Settings, config: SimConfig, home: Path) -> dict:
    figures = {}
    console.print("[b](b)[/b] pipeline: simulate → produce → broker → loader → lake")
    figures["pipeline"] = _pipeline(settings, Simulation(config))
    message_bytes = figures["pipeline"]["bytes"] / figures["pipeline"]["messages"]
    console.print(f"[b](a)[/b] broker ceiling: opaque {message_bytes / 1024:.0f} KB payloads")
    figures["broker"] = _broker_ceiling(settings, int(message_bytes), max(figures["pipeline"]["bytes"], MIN_RAW_BYTES))
    console.print("[b](c)[/b] DuckDB bare Arrow insert of the same tables, and the CPU stages")
    tables = _simulated_tables(Simulation(config), figures)
    figures["bare_insert"] = _bare_insert(settings.with_data_dir(home / "bare"), tables)
    figures["stages"] = _stages(tables)
    return figures


def _pipeline(settings: Settings, simulation: Simulation) -> dict:
    """Publish everything, then drain it with the loader: produce-then-consume, like the broker ceiling."""
    published = publish_simulation(settings, simulation)
    loader = Loader(settings, LoaderOptions(idle_s=1.0))
    final = loader.run()
    ingest_s = loader.last_rows_committed_at - loader.assigned_at
    return {
        "rows": published.rows,
        "bytes": published.bytes,
        "messages": published.messages,
        "publish_s": published.seconds,
        "ingest_s": ingest_s,
        "seconds": published.seconds + ingest_s,
        "loader_rows": final["rows_total"],
        "lake_write_s": final["lake_write_s"],
        "replayed": final["replayed_messages_skipped"],
        "duplicates": final["duplicate_messages_skipped"],
    }


def _broker_ceiling(settings: Settings, message_bytes: int, total_bytes: int) -> dict:
    admin = KafkaAdminClient(**settings.kafka.client_config())
    admin.create_topics([NewTopic(RAW_TOPIC, num_partitions=settings.kafka.partitions, replication_factor=-1)])
    admin.close()
    count = max(1, total_bytes // message_bytes)
    payloads = [os.urandom(message_bytes) for _ in range(16)]
    producer = KafkaProducer(**settings.kafka.client_config(), **PRODUCER_CONFIG)
    started = time.perf_counter()
    for i in range(count):
        producer.send(RAW_TOPIC, payloads[i % len(payloads)], partition=i % settings.kafka.partitions)
    producer.flush()
    produce_s = time.perf_counter() - started
    producer.close()
    consumer = KafkaConsumer(**settings.kafka.client_config(), **FETCH_CONFIG, enable_auto_commit=False)
    partitions = [TopicPartition(RAW_TOPIC, p) for p in range(settings.kafka.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    received, started = 0, time.perf_counter()
    while received < count:
        received += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
    consume_s = time.perf_counter() - started
    consumer.close()
    moved = count * message_bytes
    return {"bytes": moved, "produce_s": produce_s, "consume_s": consume_s, "seconds": produce_s + consume_s}


def _simulated_tables(simulation: Simulation, figures: dict) -> dict[str, pa.Table]:
    started = time.perf_counter()
    chunks = list(simulation.chunks())
    figures["simulate_s"] = time.perf_counter() - started
    tables = {t: pa.concat_tables([getattr(c, contract.TABLE_NAMES[t]) for c in chunks]) for t in STREAMS}
    return {**tables, contract.TOPIC_INVENTORY: simulation.inventory}


def _bare_insert(settings: Settings, tables: dict[str, pa.Table]) -> dict:
    con = lake.connect(settings)
    ensure_tables(con)
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    for topic, table in tables.items():
        con.register("incoming", duckdb_safe(table))
        con.execute(f"INSERT INTO {RAW}.{contract.TABLE_NAMES[topic]} BY NAME SELECT * FROM incoming")
        con.unregister("incoming")
    con.execute("COMMIT")
    seconds = time.perf_counter() - started
    con.close()
    return {"rows": sum(t.num_rows for t in tables.values()), "seconds": seconds}


def _stages(tables: dict[str, pa.Table]) -> dict:
    rows = sum(t.num_rows for t in tables.values())
    started = time.perf_counter()
    messages = [
        (topic, codec.encode_arrow(table.slice(start, 10_000)))
        for topic, table in tables.items()
        for start in range(0, table.num_rows, 10_000)
    ]
    encode_s = time.perf_counter() - started
    headers = {topic: codec.message_headers(contract.TELEMETRY_SCHEMAS[topic]) for topic in tables}
    started = time.perf_counter()
    for topic, payload in messages:
        codec.decode(topic, payload, headers[topic])
    decode_s = time.perf_counter() - started
    return {"rows": rows, "encode_s": encode_s, "decode_s": decode_s}


def _print(f: dict, config: SimConfig) -> None:
    p, b, bare, s = f["pipeline"], f["broker"], f["bare_insert"], f["stages"]
    broker_rate = b["bytes"] / b["seconds"]
    pipeline_bytes = p["bytes"] / p["seconds"]
    lake_rows = p["loader_rows"] / p["lake_write_s"]
    bare_rows = bare["rows"] / bare["seconds"]
    bytes_per_row = p["bytes"] / p["rows"]
    table = Table(title=f"Kafka pipeline, {config.controllers} controllers x {config.hours:g} h, {p['rows']:,} rows")
    for column in ("measure", "rows/s", "MB/s", "note"):
        table.add_column(column, justify="left" if column in ("measure", "note") else "right")
    table.add_row(
        "(a) broker produce→consume",
        f"{broker_rate / bytes_per_row:,.0f}",
        f"{broker_rate / 1e6:.1f}",
        f"{b['bytes'] / 1e6:.0f} MB opaque; produce {b['produce_s']:.1f} s + consume {b['consume_s']:.1f} s; "
        f"rows/s at our {bytes_per_row:.1f} B/row",
    )
    table.add_row(
        "(b) simulate→produce→ingest",
        f"{p['rows'] / p['seconds']:,.0f}",
        f"{pipeline_bytes / 1e6:.1f}",
        f"{p['messages']:,} messages, avg {p['bytes'] / p['messages'] / 1024:.0f} KB; publish {p['publish_s']:.1f} s "
        f"+ ingest {p['ingest_s']:.1f} s (group join excluded)",
    )
    table.add_row(
        "    loader lake writes",
        f"{lake_rows:,.0f}",
        "",
        f"{p['lake_write_s']:.1f} s in lake transactions (watermark, ledger check, rows, ledger, offsets); "
        f"skipped {p['replayed']:,} replayed and {p['duplicates']:,} duplicate messages",
    )
    table.add_row("(c) DuckDB bare Arrow insert", f"{bare_rows:,.0f}", "", "one INSERT per table, one transaction")
    table.add_row("    stage: simulate", f"{s['rows'] / f['simulate_s']:,.0f}", "", "in memory, no output")
    table.add_row("    stage: IPC zstd encode", f"{s['rows'] / s['encode_s']:,.0f}", "", "10,000-row messages")
    table.add_row("    stage: decode + contract", f"{s['rows'] / s['decode_s']:,.0f}", "", "")
    Console().print(table)
    print(f"ratio pipeline / broker bytes/s: {pipeline_bytes / broker_rate:.1%} (acceptance: >= 80%)")
    print(f"ratio loader lake writes / DuckDB bare insert rows/s: {lake_rows / bare_rows:.1%} (acceptance: >= 60%)")
    print(f"messages skipped: {p['replayed']:,} at or below the watermark, {p['duplicates']:,} already in the ledger")


if __name__ == "__main__":
    sys.exit(main())
