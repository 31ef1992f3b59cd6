"""Write a simulated run to a directory of Parquet files, streaming chunk by chunk.

One zstd Parquet file per table (inventory, maintenance, errors, link, latency, truth_faults, and latency_samples
in raw mode) plus run.json (config, schema version, row counts). Files are written under a temporary name and renamed
when complete, so a reader never sees half a run; the same seed always yields byte-identical files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ingest.contract import (
    ERRORS_SCHEMA,
    INVENTORY_SCHEMA,
    JOBS_SCHEMA,
    LATENCY_SAMPLES_SCHEMA,
    LATENCY_SCHEMA,
    LINK_SCHEMA,
    MAINTENANCE_SCHEMA,
    RUN_DESCRIPTION,
    SCHEMA_VERSION,
    TRUTH_FAULTS_SCHEMA,
    run_table_file,
)
from ingest.sim.simulator import SimChunk, Simulation

# File stem → (schema, SimChunk attribute).
CHUNK_TABLES: dict[str, tuple[pa.Schema, str]] = {
    "errors": (ERRORS_SCHEMA, "errors"),
    "link": (LINK_SCHEMA, "link"),
    "latency": (LATENCY_SCHEMA, "latency"),
    "truth_faults": (TRUTH_FAULTS_SCHEMA, "truth"),
    "jobs": (JOBS_SCHEMA, "jobs"),
}
SAMPLES_TABLE = "latency_samples"
MAINTENANCE_TABLE = "maintenance"  # declared maintenance windows, written whole like the inventory
_PARTIAL = ".partial"


@dataclass(frozen=True)
class RunSummary:
    out_dir: Path
    rows: dict[str, int]
    chunks: int
    controller_intervals: int
    seconds: float

    def one_line(self) -> str:
        counts = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        return f"wrote {counts} rows in {self.seconds:.1f} s to {self.out_dir}"


def write_run(sim: Simulation, out_dir: Path, progress: bool = True) -> RunSummary:
    """Stream every chunk of `sim` into out_dir/{table}.parquet and describe the run in out_dir/run.json."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = dict(CHUNK_TABLES)
    if sim.config.raw_samples:
        tables[SAMPLES_TABLE] = (LATENCY_SAMPLES_SCHEMA, "samples")
    rows = {
        "inventory": sim.inventory.num_rows,
        MAINTENANCE_TABLE: sim.maintenance.num_rows,
        **dict.fromkeys(tables, 0),
    }
    _write_whole(run_table_file(out_dir, "inventory"), sim.inventory, INVENTORY_SCHEMA)
    _write_whole(run_table_file(out_dir, MAINTENANCE_TABLE), sim.maintenance, MAINTENANCE_SCHEMA)
    writers = {name: _writer(run_table_file(out_dir, name), schema) for name, (schema, _) in tables.items()}
    try:
        with _progress(progress) as bar:
            task = bar.add_task("simulating", total=sim.n_chunks)
            for chunk in sim.chunks():
                for name, (_, attribute) in tables.items():
                    table = getattr(chunk, attribute)
                    writers[name].write_table(table)
                    rows[name] += table.num_rows
                bar.update(task, advance=1, description=_describe(chunk))
    finally:
        for writer in writers.values():
            writer.close()
    for name in tables:
        _publish(run_table_file(out_dir, name))
    controller_intervals = sim.config.controllers * sim.config.n_intervals
    run = {
        "schema_version": SCHEMA_VERSION,
        "config": sim.config.to_json_dict(),
        "chunks": sim.n_chunks,
        "controller_intervals": controller_intervals,
        "rows": rows,
        "files": {name: run_table_file(out_dir, name).name for name in rows},
    }
    (out_dir / RUN_DESCRIPTION).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    return RunSummary(out_dir, rows, sim.n_chunks, controller_intervals, time.perf_counter() - started)


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path.with_name(path.name + _PARTIAL), schema, compression="zstd")


def _write_whole(path: Path, table: pa.Table, schema: pa.Schema) -> None:
    with _writer(path, schema) as writer:
        writer.write_table(table)
    _publish(path)


def _publish(path: Path) -> None:
    path.with_name(path.name + _PARTIAL).replace(path)


def _describe(chunk: SimChunk) -> str:
    return f"simulated to {chunk.window_end:%Y-%m-%d %H:%M}"


def _progress(enabled: bool) -> Progress:
    """A rich progress bar; rich leaves it out when the output is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
