"""Benchmark of models/: latency rollups, SLO computation and latency scoring over a simulated latency table.

    .venv/bin/python -m bench.models                 # 100 million rows (generated once, then cached)
    .venv/bin/python -m bench.models --rows 2000000  # a quick run

The table comes from the simulator and is streamed into a Parquet file under the data directory
(bench/latency-<rows>.parquet) the first time; every stage then streams that file in batches, so memory does
not grow with the row count. Each figure is printed beside ceilings measured in the same run on the same file:

  scan      pyarrow reading and decoding the columns the stages need, nothing else
  buckets   the scan plus a bare numpy sum over every bucket array (the least any merge must do)
  sort      for scoring: a bare numpy sort of every point's baseline window (the least a median must do)

Stages: rollup = merged histograms per controller-hour-op (models.rollup.rollup_stream); SLO = the latency SLOs
of slos.yaml: SLI series per minute, then burn rates, alert tiers, guards and budget (models.slo); scoring =
p99 per controller-hour from the rollup, then the univariate detector (models.latency_detector).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.contract import LATENCY_SCHEMA
from ingest.settings import Settings, restrict_new_files
from models.histogram import MERGED_COLUMNS, with_quantiles
from models.latency_detector import DetectorParams, score_table
from models.rollup import ROLLUP_KEYS, rollup_stream, with_inventory
from models.slo.burn import evaluate
from models.slo.sli import latency_series
from models.slo.spec import LatencySli, Slo
from pipelines.lib.slos import load

BATCH_ROWS = 1 << 18
CONTROLLERS = 1000
INTERVAL_S = 60
SEED = 42
# Hourly p99 points: a two-day baseline holds 48 of them.
SCORING = DetectorParams(baseline_s=2 * 86400.0, max_baseline_points=48, min_baseline_points=12, snooze_s=6 * 3600.0)
console = Console()


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def generate(path: Path, inventory_path: Path, rows: int) -> None:
    """Stream simulator chunks into `path` until it holds at least `rows` latency rows (via a temporary file),
    and the fleet's inventory (racks, for rack-grouped SLOs) into `inventory_path`."""
    from ingest.sim.config import SimConfig
    from ingest.sim.simulator import Simulation

    rows_per_hour = 2 * CONTROLLERS * 3600 // INTERVAL_S  # a lower bound: local-DRAM rows come on top
    config = SimConfig(controllers=CONTROLLERS, hours=-(-rows // rows_per_hour), interval_s=INTERVAL_S, seed=SEED)
    simulation = Simulation(config)
    pq.write_table(simulation.inventory, inventory_path)
    partial = path.with_suffix(".partial")
    written = 0
    with pq.ParquetWriter(partial, LATENCY_SCHEMA, compression="zstd") as writer, progress() as bar:
        task = bar.add_task(f"simulating {rows:,} latency rows", total=rows)
        # Whole chunks only, so that every controller's series ends at the same time (a cut chunk would
        # look like telemetry gone absent); the file holds up to one chunk more than asked for.
        for chunk in simulation.chunks():
            writer.write_table(chunk.latency, row_group_size=BATCH_ROWS)
            written += chunk.latency.num_rows
            bar.update(task, completed=min(written, rows))
            if written >= rows:
                break
    partial.rename(path)


def batches(path: Path, columns: list[str], label: str) -> Iterator[pa.RecordBatch]:
    source = pq.ParquetFile(path)
    with progress() as bar:
        task = bar.add_task(label, total=source.metadata.num_rows)
        for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield batch
            bar.advance(task, batch.num_rows)


def timed(work: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def scan(path: Path, columns: list[str]) -> int:
    return sum(batch.num_rows for batch in batches(path, columns, "ceiling: scan"))


def bucket_sum(path: Path, columns: list[str]) -> int:
    total = 0
    for batch in batches(path, columns, "ceiling: scan + numpy bucket sum"):
        total += int(pc.list_flatten(batch.column("bucket_counts")).to_numpy().sum(dtype=np.uint64))
    return total


def latency_slos() -> list[Slo]:
    return [slo for slo in load() if isinstance(slo.sli, LatencySli)]


def slo_pass(path: Path, columns: list[str], slos: list[Slo], inventory: pa.Table) -> list[object]:
    """One pass over the file builds every SLO's per-minute SLI series; then each SLO is evaluated."""
    series: dict[str, list[pa.Table]] = {slo.name: [] for slo in slos}
    fleet_columns = [c for slo in slos for c in slo.group_columns if c not in LATENCY_SCHEMA.names]
    for batch in batches(path, columns, "SLO: SLI series"):
        table = with_inventory(pa.Table.from_batches([batch]), inventory, fleet_columns)
        for slo in slos:
            series[slo.name].append(latency_series(table, slo))
    return [evaluate(pa.concat_tables(series[slo.name]), slo) for slo in slos]


def scoring(hourly: pa.Table) -> pa.Table:
    reads = hourly.filter(pc.and_(pc.equal(hourly["memory_tier"], "cxl"), pc.equal(hourly["op"], "read")))
    points = with_quantiles(reads, [0.99])
    return score_table(points, "p99_ns", "window_start", ["controller_id"], SCORING)


def sort_ceiling(points: pa.Table) -> float:
    """Bare numpy sort of a baseline-sized window per point: the floor under any rolling median."""
    values = points["p99_ns"].to_numpy(zero_copy_only=False)
    width = SCORING.max_baseline_points
    padded = np.concatenate([np.full(width, np.nan), values])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)[:-1]
    _, seconds = timed(lambda: [np.sort(windows[i : i + 65536], axis=1) for i in range(0, len(windows), 65536)])
    return seconds


def counts(column: pa.ChunkedArray) -> dict[str, int]:
    return {entry["values"]: entry["counts"] for entry in pc.value_counts(column).to_pylist()}


def main(argv: list[str] | None = None) -> int:
    restrict_new_files()  # an entry point: the lake and files it writes are its user's alone
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="latency rows (default 100 million)")
    parser.add_argument("--dir", type=Path, default=Settings.from_env().data_dir / "bench", help="cache directory")
    args = parser.parse_args(argv)
    if args.rows <= 0:
        parser.error("--rows must be positive")
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"latency-{args.rows}.parquet"
    inventory_path = args.dir / f"inventory-{args.rows}.parquet"
    if path.exists() and inventory_path.exists():
        console.print(f"using cached {path}")
    else:
        _, seconds = timed(lambda: generate(path, inventory_path, args.rows))
        console.print(f"generated {path} in {seconds:.0f} s ({args.rows / seconds:,.0f} rows/s)")
    rows = pq.ParquetFile(path).metadata.num_rows
    slos = latency_slos()
    columns = list(dict.fromkeys([*ROLLUP_KEYS, "window_start", "window_s", *MERGED_COLUMNS]))

    _, scan_s = timed(lambda: scan(path, columns))
    _, buckets_s = timed(lambda: bucket_sum(path, columns))
    hourly, rollup_s = timed(lambda: rollup_stream(batches(path, columns, "rollup"), every_s=3600))
    inventory = pq.read_table(inventory_path)
    evaluations, slo_s = timed(lambda: slo_pass(path, columns, slos, inventory))
    scored, scoring_s = timed(lambda: scoring(hourly))
    sort_s = sort_ceiling(scored)

    report = Table(title=f"models/ over {rows:,} latency rows ({path.stat().st_size / 1e9:.1f} GB Parquet)")
    for column in ("stage", "seconds", "rows/s", "vs scan", "vs buckets"):
        report.add_column(column, justify="right" if column != "stage" else "left")
    for stage, seconds in (
        ("ceiling: scan", scan_s),
        ("ceiling: scan + bucket sum", buckets_s),
        ("rollup (controller-hour-op)", rollup_s),
        (f"SLO ({len(slos)} latency SLOs)", slo_s),
    ):
        report.add_row(
            stage, f"{seconds:.1f}", f"{rows / seconds:,.0f}", f"{scan_s / seconds:.2f}", f"{buckets_s / seconds:.2f}"
        )
    console.print(report)
    points = scored.num_rows
    console.print(
        f"scoring: {points:,} hourly p99 points in {scoring_s:.2f} s = {points / scoring_s:,.0f} points/s "
        f"({rows / scoring_s:,.0f} latency rows/s); ceiling, a bare numpy sort of each point's window: "
        f"{points / sort_s:,.0f} points/s, ratio {sort_s / scoring_s:.2f}"
    )
    console.print(f"rollup rows: {hourly.num_rows:,}; alerts: {int(pc.sum(scored['alert']).as_py())} latency alerts")
    for slo, evaluation in zip(slos, evaluations, strict=True):
        console.print(
            f"SLO {slo.name}: {evaluation.status.num_rows} groups; final states {counts(evaluation.status['state'])}; "
            f"episodes {counts(evaluation.episodes['kind'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
