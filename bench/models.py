"""Benchmark of models/: latency rollups, SLO computation and latency scoring over a simulated latency table.

    .venv/bin/python -m bench.models                 # 100 million rows (generated once, then cached)
    .venv/bin/python -m bench.models --rows 2000000  # a quick run
    .venv/bin/python -m bench.models --detector-only # only the detector over a 10,000-controller day

The table comes from the simulator and is streamed into a Parquet file under the data directory
(bench/latency-<rows>.parquet) the first time; every stage then streams that file in batches, so memory does
not grow with the row count. Each figure is printed beside ceilings measured in the same run on the same file:

  scan      pyarrow reading and decoding the columns the stages need, nothing else
  buckets   the scan plus a bare numpy sum over every bucket array (the least any merge must do)
  sum       for scoring: a numpy running sum over the scored points (the least a causal running statistic must do)

Stages: rollup = merged histograms per controller-hour-op (models.rollup.rollup_stream); SLO = the latency SLOs
of slos.yaml: SLI series per minute, then burn rates, alert tiers, guards and budget (models.slo); scoring =
p99 per controller-hour from the rollup, then the univariate detector (models.latency_detector).

Detector throughput (issue 13: at least 500,000 points/s on one core): models.latency_detector.score_matrix over
the per-interval p99 series of a 10,000-controller day (10,000 x 1,440 one-minute points, the simulator's
default interval). The series are synthetic arrays of that shape, not simulator output: a 600 ns p99 with a
daily swing, log-normal noise, whole nanoseconds, missing intervals and injected spikes and level shifts.
Ceiling: one numpy running sum over the same matrix (the least any causal running statistic must do).
"""

from __future__ import annotations

import argparse
import os
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
from models.latency_detector import DetectorParams, score_matrix, score_table
from models.rollup import ROLLUP_KEYS, rollup_stream, with_inventory
from models.slo.burn import evaluate
from models.slo.sli import latency_series
from models.slo.spec import LatencySli, Slo
from pipelines.lib.slos import load

BATCH_ROWS = 1 << 18
CONTROLLERS = 1000
INTERVAL_S = 60
SEED = 42
# Hourly p99 points: half a day of them before a baseline counts; one alert per series in 6 h at most.
SCORING = DetectorParams(min_baseline_points=12, snooze_s=6 * 3600.0)
FLEET_DAY = (10_000, 24 * 3600 // INTERVAL_S)  # controllers x intervals: the detector throughput matrix
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


def sum_ceiling(points: pa.Table) -> float:
    """A bare numpy running sum over the scored points: the floor under any causal running statistic."""
    values = points["p99_ns"].to_numpy(zero_copy_only=False)
    _, seconds = timed(lambda: np.cumsum(values))
    return seconds


def fleet_day(seed: int = SEED) -> np.ndarray:
    """Synthetic per-interval p99 (ns) of a 10,000-controller day, with gaps, spikes and level shifts."""
    rng = np.random.default_rng(seed)
    controllers, intervals = FLEET_DAY
    swing = 1 + 0.15 * np.sin(2 * np.pi * np.arange(intervals) / intervals)
    p99 = np.round(600.0 * swing * np.exp(rng.normal(0, 0.05, (controllers, intervals))))
    rows = rng.integers(0, controllers, 2000)
    starts = rng.integers(0, intervals, 2000)
    p99[rows[:1000], starts[:1000]] *= 4  # storms: one-interval spikes
    for row, start in zip(rows[1000:], starts[1000:], strict=True):
        p99[row, start:] *= 1.5  # degradations: level shifts to the end of the day
    p99[rng.random(p99.shape) < 0.001] = np.nan  # missing intervals
    return p99


def detector_throughput() -> None:
    """Score the fleet-day matrix once and print points/s beside the running-sum ceiling."""
    p99 = fleet_day()
    points, load = p99.size, os.getloadavg()[0]
    _, ceiling_s = timed(lambda: np.cumsum(p99, axis=1))
    _, detector_s = timed(lambda: score_matrix(p99, (24 * 3600 // INTERVAL_S, 7 * 24 * 3600 // INTERVAL_S)))
    console.print(
        f"detector: {points:,} p99 points ({FLEET_DAY[0]:,} controllers x {FLEET_DAY[1]:,} intervals, synthetic) "
        f"in {detector_s:.2f} s = {points / detector_s:,.0f} points/s; ceiling, a numpy running sum over the same "
        f"matrix: {points / ceiling_s:,.0f} points/s, ratio {ceiling_s / detector_s:.4f}; load average "
        f"{load:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


def counts(column: pa.ChunkedArray) -> dict[str, int]:
    return {entry["values"]: entry["counts"] for entry in pc.value_counts(column).to_pylist()}


def main(argv: list[str] | None = None) -> int:
    restrict_new_files()  # an entry point: the lake and files it writes are its user's alone
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="latency rows (default 100 million)")
    parser.add_argument("--dir", type=Path, default=Settings.from_env().data_dir / "bench", help="cache directory")
    parser.add_argument("--detector-only", action="store_true", help="only the detector over a fleet day")
    args = parser.parse_args(argv)
    if args.detector_only:
        detector_throughput()
        return 0
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
    sum_s = sum_ceiling(scored)

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
        f"({rows / scoring_s:,.0f} latency rows/s); ceiling, a numpy running sum over the points: "
        f"{points / sum_s:,.0f} points/s, ratio {sum_s / scoring_s:.4f}"
    )
    console.print(f"rollup rows: {hourly.num_rows:,}; alerts: {int(pc.sum(scored['alert']).as_py())} latency alerts")
    detector_throughput()
    for slo, evaluation in zip(slos, evaluations, strict=True):
        console.print(
            f"SLO {slo.name}: {evaluation.status.num_rows} groups; final states {counts(evaluation.status['state'])}; "
            f"episodes {counts(evaluation.episodes['kind'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
