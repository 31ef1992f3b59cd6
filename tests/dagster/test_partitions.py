"""The partitions span what the lake holds: they start on the first day of telemetry in the lake unless the settings
say otherwise, and a demo's span pins both ends, so the Catalog lists no partition that could never have data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ingest.lake.loader import load_run_directory
from ingest.settings import ENV_PREFIX, PARTITIONS_END_ENV, PARTITIONS_START_ENV, Settings
from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from pipelines.lib.demo_span import partition_settings, recorded_span, write_marker
from pipelines.lib.partitions import first_data_day
from tests.sample_lake import REPO

# What a fresh process builds from its settings: the partition keys Dagster shows in the Catalog.
PRINT_KEYS = (
    "import json; from pipelines.lib.partitions import DAILY, HOURLY; "
    "print(json.dumps([HOURLY.get_partition_keys(), DAILY.get_partition_keys()]))"
)


def partition_keys(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """The hourly and daily partition keys of a process with this environment (the partitions are fixed at load)."""
    clean = {
        name: value for name, value in os.environ.items() if name not in (PARTITIONS_START_ENV, PARTITIONS_END_ENV)
    }
    completed = subprocess.run(
        [sys.executable, "-c", PRINT_KEYS], env={**clean, **env}, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    hourly, daily = json.loads(completed.stdout)
    return hourly, daily


def test_the_start_defaults_to_the_lakes_first_day(tmp_path: Path) -> None:
    """A lake whose telemetry begins on 2026-03-02 (not the default start): the partitions begin that day."""
    start = datetime(2026, 3, 2, 22, tzinfo=UTC)
    write_run(Simulation(SimConfig(controllers=3, hours=1, seed=3, start=start)), tmp_path / "run", progress=False)
    settings = Settings().with_data_dir(tmp_path / "data")
    assert first_data_day(settings) is None  # no lake yet
    load_run_directory(settings, tmp_path / "run")
    assert first_data_day(settings) == date(2026, 3, 2)
    hourly, daily = partition_keys({f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir)})
    assert hourly[0] == "2026-03-02-00:00" and daily[0] == "2026-03-02"
    # An explicit start wins over the lake's.
    hourly, _ = partition_keys({f"{ENV_PREFIX}DATA_DIR": str(settings.data_dir), PARTITIONS_START_ENV: "2026-03-01"})
    assert hourly[0] == "2026-03-01-00:00"


def test_a_demo_span_gives_exactly_its_hours_and_complete_days() -> None:
    day = datetime(2026, 3, 2, tzinfo=UTC)
    hourly, daily = partition_keys({**partition_settings(day, day + timedelta(hours=24))})
    assert hourly == [f"2026-03-02-{hour:02d}:00" for hour in range(24)] and daily == ["2026-03-02"]
    # A partial last hour still gets its partition, and a partial day its own: the day holds the span's data.
    hourly, daily = partition_keys({**partition_settings(day, day + timedelta(hours=1.5))})
    assert hourly == ["2026-03-02-00:00", "2026-03-02-01:00"] and daily == ["2026-03-02"]


def test_the_demo_records_its_span_for_the_ui(tmp_path: Path) -> None:
    span = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert recorded_span(tmp_path) is None
    write_marker(tmp_path)
    assert recorded_span(tmp_path) is None  # marked, span not known yet
    write_marker(tmp_path, span)
    assert recorded_span(tmp_path) == span
