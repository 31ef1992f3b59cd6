"""Benchmark of the fleet simulator: controller-intervals/s, rows/s and peak RSS at 1k, 10k and 100k controllers.

    .venv/bin/python -m bench.simulate            # generation at 1k/10k/100k + end-to-end Parquet at 10k
    .venv/bin/python -m bench.simulate --quick    # smaller spans

One controller-interval = a read and a write latency histogram row plus the link snapshot due. Each size runs
in its own process so its peak RSS is its own. The ceiling is numpy copying the same number of bytes the
simulator produced, measured in the same process: generation rate / copy rate says how far from "as fast as
memory" generation is. Figures vary with machine load: the best of the repeats is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

TARGET_RATE = 1_000_000  # controller-intervals/s at 10k controllers (issue 2 acceptance)
# (controllers, hours): each generation run takes seconds, not minutes.
SIZES = ((1_000, 24.0), (10_000, 3.0), (100_000, 0.25))
QUICK_SIZES = ((1_000, 6.0), (10_000, 1.0), (100_000, 0.1))


def measure(controllers: int, hours: float, repeats: int, end_to_end: bool) -> dict:
    """Run inside a child process: generation (best of `repeats`), copy ceiling, optional Parquet write."""
    from ingest.sim.config import SimConfig
    from ingest.sim.parquet_sink import write_run
    from ingest.sim.simulator import Simulation

    config = SimConfig(controllers=controllers, hours=hours, seed=1)
    started = time.perf_counter()
    sim = Simulation(config)
    construct_s = time.perf_counter() - started
    best_s = best_cpu_s = float("inf")
    rows = nbytes = 0
    for _ in range(repeats):
        rows = nbytes = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for chunk in sim.chunks():
            for table in (chunk.errors, chunk.link, chunk.latency, chunk.truth):
                rows += table.num_rows
                nbytes += table.nbytes
        best_s = min(best_s, time.perf_counter() - started)
        best_cpu_s = min(best_cpu_s, time.process_time() - cpu_started)
    controller_intervals = controllers * config.n_intervals
    result = {
        "controllers": controllers,
        "hours": hours,
        "controller_intervals": controller_intervals,
        "construct_s": construct_s,
        "generate_s": best_s,
        "generate_cpu_s": best_cpu_s,
        "rows": rows,
        "bytes": nbytes,
        "copy_s": copy_seconds(nbytes, chunk_bytes=nbytes // sim.n_chunks),
    }
    if end_to_end:
        with tempfile.TemporaryDirectory() as out:
            summary = write_run(Simulation(config), Path(out), progress=False)
            result["write_s"] = summary.seconds
            result["written_mb"] = sum(p.stat().st_size for p in Path(out).iterdir()) / 1e6
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def copy_seconds(total_bytes: int, chunk_bytes: int) -> float:
    """Seconds numpy needs to copy `total_bytes` in chunk-sized blocks (best of three)."""
    source = np.ones(max(chunk_bytes, 1), np.uint8)
    target = np.empty_like(source)
    blocks = max(1, round(total_bytes / source.size))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(blocks):
            np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return best


def run_child(controllers: int, hours: float, repeats: int, end_to_end: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(controllers), str(hours), str(repeats)]
    if end_to_end:
        command.append("--end-to-end")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(results: list[dict], console: Console) -> None:
    table = Table(title="leo-fleet simulator, generation only (best of repeats; wall clock unless marked CPU time)")
    columns = (
        "controllers",
        "hours",
        "ctrl-intervals/s",
        "(CPU time)",
        "rows/s",
        "MB/s",
        "vs numpy copy",
        "peak RSS MiB",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        rate = r["controller_intervals"] / r["generate_s"]
        table.add_row(
            f"{r['controllers']:,}",
            f"{r['hours']:g}",
            f"{rate:,.0f}",
            f"{r['controller_intervals'] / r['generate_cpu_s']:,.0f}",
            f"{r['rows'] / r['generate_s']:,.0f}",
            f"{r['bytes'] / r['generate_s'] / 1e6:,.0f}",
            f"{r['copy_s'] / r['generate_s']:.3f}",
            f"{r['peak_rss_mib']:,.0f}",
        )
    console.print(table)
    for clock, key in (("wall clock", "generate_s"), ("CPU time", "generate_cpu_s")):
        rates = {r["controllers"]: r["controller_intervals"] / r[key] for r in results}
        smallest, largest = min(rates), max(rates)
        console.print(
            f"{clock}: rate at {largest:,} / rate at {smallest:,} controllers = {rates[largest] / rates[smallest]:.2f}"
        )
        if 10_000 in rates:
            verdict = "met" if rates[10_000] >= TARGET_RATE else "NOT met"
            console.print(
                f"{clock}: 10k controllers {rates[10_000]:,.0f} controller-intervals/s, "
                f"target {TARGET_RATE:,}: {verdict}"
            )
    for r in results:
        if "write_s" in r:
            console.print(
                f"end to end (generate + zstd Parquet) at {r['controllers']:,} controllers x {r['hours']:g} h: "
                f"{r['controller_intervals'] / r['write_s']:,.0f} controller-intervals/s, "
                f"{r['rows'] / r['write_s']:,.0f} rows/s, {r['written_mb']:,.0f} MB written, "
                f"peak RSS {r['peak_rss_mib']:,.0f} MiB"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller spans")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--end-to-end", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        controllers, hours, repeats = int(args.child[0]), float(args.child[1]), int(args.child[2])
        print(json.dumps(measure(controllers, hours, repeats, args.end_to_end)))
        return 0
    console = Console(width=140)
    results = []
    for controllers, hours in QUICK_SIZES if args.quick else SIZES:
        console.print(f"measuring {controllers:,} controllers x {hours:g} h ...")
        results.append(run_child(controllers, hours, args.repeats, end_to_end=controllers == 10_000))
    report(results, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
