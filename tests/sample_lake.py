"""A real lake built from sample_data/ (the loader's bulk path) and a Dagster instance in which every asset has
been materialized over the sample's six hours. tests/conftest.py builds it once per session for the Dagster, SQL
and report tests (the build is the expensive part); they only read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ingest.lake import LAKE_ALIAS, connect
from ingest.lake.loader import load_run_directory
from ingest.settings import Settings
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import StageRun

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "sample_data"
# sample_data/README.md: 200 controllers x 6 h from the simulator's default start.
SAMPLE_SPAN = Window(datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 5, 6, tzinfo=UTC))


@dataclass(frozen=True)
class Materialized:
    data_dir: Path
    dagster_home: Path
    lake: LakeResource
    runs: list[StageRun]

    @property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))


def sample_lake(data_dir: Path) -> LakeResource:
    load_run_directory(Settings().with_data_dir(data_dir), SAMPLE_DIR)
    return LakeResource(data_dir=str(data_dir))


def copy_lake(source_dir: Path, target_dir: Path) -> Path:
    """A private, writable copy of the lake under `source_dir` (tables, views, macros), for a test that writes:
    the shared lake stays exactly as built for every reader."""
    source, target = Settings().with_data_dir(source_dir), Settings().with_data_dir(target_dir)
    con = connect(target)
    try:
        con.execute(f"ATTACH 'ducklake:{source.catalog}' AS source (DATA_PATH '{source.data_path}', READ_ONLY)")
        con.execute(f"COPY FROM DATABASE source TO {LAKE_ALIAS}")
    finally:
        con.close()
    return target_dir
