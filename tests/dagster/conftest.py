"""A real lake built from sample_data/ (the loader's bulk path) and a Dagster instance in which every asset has
been materialized over the sample's six hours: built once per session, shared by the content, metadata and UI
tests (the build is the expensive part)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ingest.loader import load_run_directory
from ingest.settings import Settings
from pipelines.definitions import defs
from pipelines.materialize import StageRun, materialize_span
from pipelines.partitions import Window
from pipelines.resources import LakeResource

REPO = Path(__file__).resolve().parents[2]
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


def instance_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", path / "dagster.yaml")
    return path


@pytest.fixture(scope="session")
def definitions() -> dg.Definitions:
    return defs()


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory, definitions: dg.Definitions) -> Materialized:
    root = tmp_path_factory.mktemp("materialized")
    lake = sample_lake(root / "data")
    home = instance_home(root / "dagster")
    runs = materialize_span(definitions, lake, SAMPLE_SPAN, dg.DagsterInstance.from_config(str(home)))
    return Materialized(root / "data", home, lake, runs)
