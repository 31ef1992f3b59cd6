"""`leo-fleet load` killed in the middle of a file (ingest/lake/fault_injection.py, LOAD_STAGE: `os._exit`, as a
SIGKILL would), then run again: each file is in the lake whole or not at all, and after the rerun every row of the
run directory is there exactly once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest import contract
from ingest.lake.fault_injection import ENV, EXIT_CODE, LOAD_STAGE
from ingest.lake.raw_tables import ROW_SCHEMAS
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from tests.ingest.kafka.helpers import CLI, NATURAL_KEYS, cli_env, duplicates, lake_count


def _load(settings: Settings, run_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "load", str(run_dir)],
        env={**cli_env(settings), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _row_groups(path: Path) -> int:
    return pq.ParquetFile(path).num_row_groups


def _counts(settings: Settings) -> dict[str, int]:
    return {name: lake_count(settings, f"SELECT count(*) FROM raw.{name}") for name in ROW_SCHEMAS}


def test_a_load_killed_mid_file_keeps_whole_files_and_a_rerun_loads_the_rest_once(lake_settings, tmp_path) -> None:
    run_dir = tmp_path / "run"
    # A chunk per 10 minutes: the simulator writes a row group per chunk, the loader reads one at a time.
    fleet = Simulation(SimConfig(controllers=30, hours=2, seed=5, chunk_intervals=10))
    produced = write_run(fleet, run_dir, progress=False).rows
    order = list(ROW_SCHEMAS)  # the order the loader takes the files in
    killed = order.index("latency")
    groups = {name: _row_groups(contract.run_table_file(run_dir, name)) for name in order}
    # Past the row groups of the files before latency, half way through latency's: those are committed, latency not.
    crash_at = sum(groups[name] for name in order[:killed]) + groups["latency"] // 2
    assert groups["latency"] >= 4 and produced["errors"] and produced["link"]

    crashed = _load(lake_settings, run_dir, {ENV: f"{LOAD_STAGE}:{crash_at}"})
    at_crash = _counts(lake_settings)
    rerun = _load(lake_settings, run_dir)

    assert crashed.returncode == EXIT_CODE, crashed.stderr[-2000:]
    assert {name: at_crash[name] for name in order[:killed]} == {name: produced[name] for name in order[:killed]}
    assert all(at_crash[name] == 0 for name in order[killed:])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _counts(lake_settings) == {name: produced[name] for name in ROW_SCHEMAS}
    assert duplicates(lake_settings) == dict.fromkeys(NATURAL_KEYS, 0)
    files = lake_count(lake_settings, "SELECT count(*) - count(DISTINCT sha256) FROM raw.ingest_files")
    assert files == 0


def test_a_file_that_breaks_the_contract_after_its_first_row_group_is_refused_in_one_line_and_not_loaded(
    lake_settings, tmp_path
) -> None:
    run_dir = tmp_path / "run"
    write_run(Simulation(SimConfig(controllers=5, hours=1, seed=5)), run_dir, progress=False)
    path = contract.run_table_file(run_dir, "latency")
    latency = pq.read_table(path)
    # The schema fits the contract; the second row group has a null where the contract allows none.
    broken = latency.set_column(
        latency.schema.get_field_index("window_s"),
        pa.field("window_s", latency.schema.field("window_s").type),  # nullable in the file, so it can hold one
        pa.chunked_array([pa.array([None], latency["window_s"].type), latency["window_s"].slice(1)]),
    )
    with pq.ParquetWriter(path, broken.schema) as writer:
        writer.write_table(latency.slice(1, 10).cast(broken.schema))
        writer.write_table(broken)

    refused = _load(lake_settings, run_dir)

    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "window_s" in refused.stderr and "not nullable" in refused.stderr
    assert lake_count(lake_settings, "SELECT count(*) FROM raw.latency") == 0
