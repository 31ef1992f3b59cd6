"""Benchmark of the Dagster assets: every hourly partition of one day, for 1,000 controllers, against a bare scan.

    .venv/bin/python bench/assets.py                               # 1,000 controllers x 24 h
    .venv/bin/python bench/assets.py --controllers 200 --hours 6   # a quick run

A seeded fleet is simulated to Parquet and loaded into a fresh DuckLake through the loader's bulk path (the
Kafka path has its own benchmark, bench/pipeline.py). Then, in the same run:
  ceiling   a bare DuckDB scan of the same raw rows: every column of raw.errors, raw.link and raw.latency over
            the span, read into Arrow (the least any asset must do to see the telemetry once)
  assets    every asset materialized in-process over the span, stage by stage, as `leo-fleet demo` does
            (single-run backfills of the hourly marts, the fitted models, the scores, the daily assets)
Prints seconds per stage, asset-partitions per second and the ratio to the ceiling. The acceptance target is a
fleet-day (1,000 controllers x every hourly partition of one day) in under five minutes on a 2-core machine.
Figures vary with machine load; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.contract import TIME_COLUMNS  # noqa: E402
from ingest.lake import connect  # noqa: E402
from ingest.lake.loader import load_run_directory  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.sim.config import SimConfig  # noqa: E402
from ingest.sim.parquet_sink import write_run  # noqa: E402
from ingest.sim.simulator import Simulation  # noqa: E402
from pipelines.definitions import defs  # noqa: E402
from pipelines.lib.partitions import Window  # noqa: E402
from pipelines.lib.resources import LakeResource  # noqa: E402
from pipelines.lib.telemetry import raw_table  # noqa: E402
from pipelines.materialize import StageRun, materialize_span  # noqa: E402

TARGET_S = 300.0


def build_lake(data_dir: Path, config: SimConfig, console: Console) -> int:
    started = time.perf_counter()
    run_dir = data_dir / "run"
    write_run(Simulation(config), run_dir, progress=False)
    result = load_run_directory(Settings().with_data_dir(data_dir), run_dir)
    console.print(f"lake: {result.rows:,} raw rows loaded in {time.perf_counter() - started:.0f} s (not timed below)")
    return result.rows


def bare_scan(data_dir: Path, span: Window) -> tuple[int, float]:
    """Every column of the three telemetry tables over the span, into Arrow: rows and seconds."""
    con = connect(Settings().with_data_dir(data_dir), read_only=True)
    try:
        started = time.perf_counter()
        rows = 0
        for topic, column in TIME_COLUMNS.items():
            sql = f"SELECT * FROM {raw_table(topic)} WHERE {column} >= $start AND {column} < $end"
            rows += con.execute(sql, {"start": span.start, "end": span.end}).to_arrow_table().num_rows
        return rows, time.perf_counter() - started
    finally:
        con.close()


def materialize(data_dir: Path, span: Window, console: Console) -> tuple[list[StageRun], float]:
    started = time.perf_counter()
    runs = materialize_span(
        defs(),
        LakeResource(data_dir=str(data_dir)),
        span,
        dg.DagsterInstance.ephemeral(),
        on_done=lambda run: console.print(f"  {run.stage.label}: {run.seconds:.1f} s"),
    )
    return runs, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controllers", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console()
    config = SimConfig(controllers=args.controllers, hours=args.hours, seed=args.seed)
    span = Window(config.start, config.start + timedelta(hours=args.hours))
    with tempfile.TemporaryDirectory(prefix="bench-assets-") as tmp:
        data_dir = Path(tmp)
        build_lake(data_dir, config, console)
        scanned, scan_s = bare_scan(data_dir, span)
        console.print(f"ceiling: bare scan of {scanned:,} raw rows in {scan_s:.1f} s")
        runs, total_s = materialize(data_dir, span, console)
    asset_partitions = sum(len(run.stage.keys) * max(run.partitions, 1) for run in runs)
    table = Table(title=f"Dagster assets: {args.controllers:,} controllers x {args.hours} h ({span})")
    for name in ("figure", "value"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    table.add_row("raw rows scanned (errors, link, latency)", f"{scanned:,}")
    table.add_row("ceiling: bare DuckDB scan (s)", f"{scan_s:.1f}")
    table.add_row("every asset over the span (s)", f"{total_s:.1f}")
    table.add_row("asset-partitions materialized", f"{asset_partitions:,}")
    table.add_row("asset-partitions per second", f"{asset_partitions / total_s:.2f}")
    table.add_row("assets / bare scan", f"{total_s / scan_s:.1f}x")
    table.add_row(f"target: under {TARGET_S:.0f} s for a fleet-day", "met" if total_s < TARGET_S else "NOT met")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
