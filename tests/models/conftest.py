"""A small simulated fleet shared by the detector tests: one simulation and one load per test session.

Fault acceleration 50 keeps "fails within 24 h" a minority label (about 10 % of controller-hours); the default
1000 makes nearly every controller-hour positive, which no ranking metric can score (docs/detector_quality.md).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.evaluation import score_detections
from models.holdout import Protocol, Run, controller_latency_slo
from models.series import equals
from pipelines.lib import slos as spec

FLEET = SimConfig(controllers=400, hours=96, seed=5, fault_acceleration=50)
# Train before hour 60 (its labels included), test after it, on disjoint controllers.
FLEET_PROTOCOL = Protocol(split_h=60, slo=controller_latency_slo(spec.load()), health=spec.load_health_policy())


@pytest.fixture(scope="session")
def fleet_protocol() -> Protocol:
    return FLEET_PROTOCOL


@pytest.fixture(scope="session")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet")
    write_run(Simulation(FLEET), out, progress=False)
    return out


@pytest.fixture(scope="session")
def fleet_run(fleet_dir: Path) -> Run:
    return Run.load(fleet_dir, FLEET_PROTOCOL)


@pytest.fixture(scope="session")
def detector_score(fleet_run: Run):
    """Score a detector's output table (resets, or link incidents: their drops) against one truth kind over the
    whole run, with the evaluation protocol's event windows."""

    def score(table: pa.Table, truth_kind: str, *, silent: bool | None = None):
        if "kind" in table.column_names:
            table = table.filter(pa.array(equals(table.column("kind"), "drop")))
        return score_detections(
            fleet_run.truth,
            fleet_run.controllers,
            truth_kind,
            table,
            period=(fleet_run.start_ns, fleet_run.end_ns),
            silent=silent,
            detection_budget_s=FLEET_PROTOCOL.detection_budget_s,
            cooldown_s=FLEET_PROTOCOL.detection_cooldown_s,
        )

    return score
