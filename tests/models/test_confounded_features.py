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
from ingest.sim.confounders import confounder_knobs
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.early_warning import observed_failures
from models.features import Detections, Telemetry, WindowFeatures, build_features, planned_resets
from models.link_events import INCIDENTS_SCHEMA
from models.series import NS_PER_HOUR, NS_PER_S, equals, timestamps_ns

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


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Telemetry:
    out: Path = tmp_path_factory.mktemp("clean")
    write_run(Simulation(replace(CONFIG, confounders=confounder_knobs("off"))), out, progress=False)
    return Telemetry.from_run_dir(out)


def _features(telemetry: Telemetry) -> WindowFeatures:
    controllers = telemetry.controllers()
    start, end = telemetry.span_ns()
    start -= start % NS_PER_HOUR
    detections = Detections.of(telemetry, controllers)
    return build_features(telemetry, detections, controllers, start_ns=start, end_ns=end + 1)


def test_a_collector_outage_reads_as_the_rate_it_hid_not_as_a_burst(clean: Telemetry) -> None:
    """No health snapshot for hours 7-10 (the collector down, the counters running on): the first snapshot after
    it holds four hours of corrected errors, which are the rate of those hours, not a burst in the one it arrived
    in (that would read log(4) higher), and no rise of the last 6 h over the 18 h before."""
    before = _features(clean)
    start = before.window_ends[0] - NS_PER_HOUR
    ts = timestamps_ns(clean.errors.column("ts"))
    gap = equals(clean.errors.column("record_type"), "health_snapshot") & (ts >= start + 7 * NS_PER_HOUR)
    gap &= ts < start + 10 * NS_PER_HOUR + 30 * NS_PER_S  # the first snapshot after it lands past hour 10
    after = _features(replace(clean, errors=clean.errors.filter(pa.array(~gap))))
    hour = int(np.searchsorted(before.window_ends, start + 11 * NS_PER_HOUR))  # the hour the outage ends in
    hidden = np.expm1(before.column("ce_1h")[:, hour - 3 : hour + 1]).mean(axis=1)  # per hour of hours 7-10
    busy = hidden >= 5
    assert busy.sum() >= 5
    # The median: a controller that reset inside the gap restarted its counter, and its lost increments are lost.
    assert np.median(np.abs(after.column("ce_1h")[busy, hour] - np.log1p(hidden[busy]))) < 0.1
    assert np.median(np.abs(after.column("ce_trend")[busy, hour] - before.column("ce_trend")[busy, hour])) < 0.1


def test_a_missing_history_is_no_rise(clean: Telemetry) -> None:
    """In a lake's first hours the 18 h before are not quiet but unobserved: no trend until an hour is observed."""
    features = _features(clean)
    assert (np.expm1(features.column("ce_1h")[:, 0]) > 0).sum() >= 5  # errors from the first hour on
    np.testing.assert_array_equal(features.column("ce_trend")[:, :7], 0.0)  # nothing before the last 6 h
    assert (features.column("ce_trend")[:, 8:] != 0).any()
