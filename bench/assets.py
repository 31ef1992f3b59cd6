"""Benchmark of the Dagster assets: every asset over a fleet-day, against a bare scan of the same rows.

    .venv/bin/python -m bench.assets                               # 1,000 controllers x 24 h
    .venv/bin/python -m bench.assets --controllers 1000 5000       # and a 5,000-controller day: linear growth
    .venv/bin/python -m bench.assets --controllers 200 --hours 6   # a quick run

For each fleet size a seeded fleet is simulated to Parquet and loaded into a fresh DuckLake through the loader's
bulk path (the Kafka path has its own benchmark, bench/pipeline.py). Then, in the same run:
  bare scan  a DuckDB scan of the same raw rows: every column of raw.errors, raw.link and raw.latency over the
             span, read into Arrow (the least any asset must do to see the telemetry once)
  assets     every asset materialized in-process over the span, stage by stage, as `leo-fleet demo` does
             (backfills of the hourly marts in runs of HOURS_PER_RUN hours, the fitted models, the scores, the
             daily assets); the definitions are loaded once beforehand, as a code location is (the scan's lake
             attach is likewise made before its clock starts)
Prints the seconds of every asset step (where the time goes) and one row per fleet size: raw rows, bare scan,
assets, their ratio and the 1-minute load average before and after. The acceptance target is every asset over a
1,000-controller fleet-day within 8x the bare scan. Figures vary with machine load: compare the ratio, and read
the load averages beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from ingest.contract import TIME_COLUMNS
from ingest.lake import connect
from ingest.lake.loader import load_run_directory
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from pipelines.definitions import defs
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_table
from pipelines.materialize import StageRun, materialize_span

TARGET_RATIO = 8.0


@dataclass(frozen=True)
class Measurement:
    controllers: int
    rows: int  # raw telemetry rows in the span
    scan_s: float
    assets_s: float
    load_before: float  # 1-minute load average
    load_after: float
    step_s: dict[str, float]  # seconds of each asset step (op name)

    @property
    def ratio(self) -> float:
        return self.assets_s / self.scan_s


def build_lake(data_dir: Path, config: SimConfig, console: Console) -> None:
    started = time.perf_counter()
    run_dir = data_dir / "run"
    write_run(Simulation(config), run_dir, progress=False)
    result = load_run_directory(Settings().with_data_dir(data_dir), run_dir)
    console.print(f"lake: {result.rows:,} raw rows loaded in {time.perf_counter() - started:.0f} s (not timed below)")


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


def materialize(
    definitions: dg.Definitions, data_dir: Path, span: Window, console: Console
) -> tuple[list[StageRun], float]:
    started = time.perf_counter()
    runs = materialize_span(
        definitions,
        LakeResource(data_dir=str(data_dir)),
        span,
        dg.DagsterInstance.ephemeral(),
        on_done=lambda run: console.print(f"  {run.stage.label}: {run.seconds:.1f} s"),
    )
    return runs, time.perf_counter() - started


def step_seconds(runs: list[StageRun]) -> dict[str, float]:
    """Seconds each asset step took over all its runs (Dagster's own step timing; a step may write several marts)."""
    seconds: dict[str, float] = {}
    for run in runs:
        for result in run.results:
            for event in result.get_step_success_events():
                seconds[event.step_key] = (
                    seconds.get(event.step_key, 0.0) + event.event_specific_data.duration_ms / 1000
                )
    return seconds


def measure(definitions: dg.Definitions, controllers: int, hours: int, seed: int, console: Console) -> Measurement:
    config = SimConfig(controllers=controllers, hours=hours, seed=seed)
    span = Window(config.start, config.start + timedelta(hours=hours))
    console.rule(f"{controllers:,} controllers x {hours} h ({span})")
    with tempfile.TemporaryDirectory(prefix="bench-assets-") as tmp:
        data_dir = Path(tmp)
        build_lake(data_dir, config, console)
        load_before = os.getloadavg()[0]
        rows, scan_s = bare_scan(data_dir, span)
        console.print(f"bare scan of {rows:,} raw rows in {scan_s:.1f} s")
        runs, assets_s = materialize(definitions, data_dir, span, console)
        load_after = os.getloadavg()[0]
    return Measurement(controllers, rows, scan_s, assets_s, load_before, load_after, step_seconds(runs))


def steps_table(measurement: Measurement) -> Table:
    table = Table(title=f"Asset steps, {measurement.controllers:,} controllers")
    for name in ("step", "s", "share"):
        table.add_column(name, justify="left" if name == "step" else "right")
    for step, seconds in sorted(measurement.step_s.items(), key=lambda item: -item[1]):
        table.add_row(step, f"{seconds:.1f}", f"{seconds / measurement.assets_s:.0%}")
    return table


def summary_table(measurements: list[Measurement], hours: int) -> Table:
    table = Table(title=f"Every asset over {hours} h against a bare scan of the same rows (target ≤ {TARGET_RATIO:g}x)")
    for name in ("controllers", "raw rows", "bare scan s", "assets s", "ratio", "assets s per 1k controllers", "load"):
        table.add_column(name, justify="right")
    for m in measurements:
        table.add_row(
            f"{m.controllers:,}",
            f"{m.rows:,}",
            f"{m.scan_s:.1f}",
            f"{m.assets_s:.1f}",
            f"{m.ratio:.1f}x",
            f"{m.assets_s / m.controllers * 1000:.1f}",
            f"{m.load_before:.1f} → {m.load_after:.1f}",
        )
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controllers", type=int, nargs="+", default=[1000], help="fleet sizes (default 1000)")
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console(width=120)
    started = time.perf_counter()
    definitions = defs()
    console.print(
        f"definitions loaded in {time.perf_counter() - started:.1f} s: once per process, as a code location loads "
        "once and the bare scan's lake attach is made once (neither is timed below)"
    )
    measurements = [measure(definitions, n, args.hours, args.seed, console) for n in args.controllers]
    for measurement in measurements:
        console.print(steps_table(measurement))
    console.print(summary_table(measurements, args.hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
