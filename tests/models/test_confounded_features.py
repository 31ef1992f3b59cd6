"""Features and early-warning labels on a fleet whose hosts are serviced: a reset inside a declared maintenance
window resets every controller of the host and is no sign of a failing controller, so it moves no feature and
labels no hour (the truth label leaves maintenance out too, models.evaluation.failure_events)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ingest.sim.config import SimConfig
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.early_warning import observed_failures
from models.features import Detections, Telemetry, build_features, planned_resets
from models.link_events import INCIDENTS_SCHEMA
from models.series import NS_PER_HOUR, equals, timestamps_ns

# About two declared windows per host in the run, with the default confounders' other faults around them.
CONFIG = SimConfig(controllers=60, hours=12, seed=23)
WINDOWS_PER_HOST_DAY = 4.0


@pytest.fixture(scope="module")
def serviced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Telemetry, Detections]:
    knobs = replace(CONFIG.confounders, maintenance_per_host_day=WINDOWS_PER_HOST_DAY)
    out: Path = tmp_path_factory.mktemp("serviced")
    write_run(Simulation(replace(CONFIG, confounders=knobs)), out, progress=False)
    telemetry = Telemetry.from_run_dir(out)
    return telemetry, Detections.of(telemetry, telemetry.controllers())


def test_a_reset_in_a_declared_window_moves_no_feature(serviced: tuple[Telemetry, Detections]) -> None:
    telemetry, detections = serviced
    planned = planned_resets(detections.resets)
    assert planned.sum() >= 10 and (~planned).sum() >= 1  # both kinds are there
    controllers = telemetry.controllers()
    start, end = telemetry.span_ns()
    start -= start % NS_PER_HOUR

    def features(found: Detections) -> np.ndarray:
        return build_features(telemetry, found, controllers, start_ns=start, end_ns=end + 1).values

    unplanned = Detections(detections.resets.filter(pa.array(~planned)), detections.incidents)
    np.testing.assert_array_equal(features(detections), features(unplanned))
    # Counted, the planned resets would have moved them: the comparison above can fail.
    counted = detections.resets.set_column(
        detections.resets.schema.get_field_index("planned"), "planned", pa.array(np.zeros(len(planned), bool))
    )
    assert not np.array_equal(features(detections), features(Detections(counted, detections.incidents)))


def test_a_reset_in_a_declared_window_is_no_observed_failure(serviced: tuple[Telemetry, Detections]) -> None:
    telemetry, detections = serviced
    resets = detections.resets
    no_rows = telemetry.errors.slice(0, 0)
    _, times = observed_failures(no_rows, resets, INCIDENTS_SCHEMA.empty_table(), telemetry.controllers())
    failed = ~planned_resets(resets) & ~equals(resets.column("reset_kind"), "fw_activate")
    assert sorted(times.tolist()) == sorted(timestamps_ns(resets.column("reset_ts"))[failed].tolist())
    assert len(times) < resets.num_rows
