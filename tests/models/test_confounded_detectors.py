"""Detectors on a fleet whose telemetry misbehaves: no confounder alone is a reset or a drop, and a reset inside a
declared maintenance window is planned. Small seeded simulations written to disk and read back as a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.contract import CONFOUNDER_KINDS
from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.baselines import RESET_BASELINE
from models.evaluation import false_alarm_causes, score_detections
from models.features import Detections, Telemetry
from models.holdout import Protocol
from models.incidents import incidents
from models.resets import detect_resets
from models.series import COUNTER_32_BIT, Controllers, epoch_deltas, equals

# Heavy: every confounder several times (its clock steps of minutes can put a detection's host timestamp more
# than the tolerance before the device's event: the evaluation reports those, these tests leave them out).
TOLERANCE_S = Protocol.detection_clock_tolerance_s  # how far a host clock may lead the device's
HEAVY = SimConfig(controllers=160, hours=12.0, seed=41, confounders=confounder_knobs("heavy"))
DEFAULT = SimConfig(controllers=160, hours=12.0, seed=42)


class Scored:
    def __init__(self, run_dir: Path) -> None:
        self.telemetry = Telemetry.from_run_dir(run_dir)
        self.controllers = self.telemetry.controllers()
        self.truth = pa.parquet.read_table(run_dir / "truth_faults.parquet")
        self.detections = Detections.of(self.telemetry, self.controllers)
        self.period = self.telemetry.span_ns()

    def drops(self) -> pa.Table:
        found = self.detections.incidents
        return found.filter(pa.array(equals(found.column("kind"), "drop")))

    def causes(self, truth_kind: str, alarms: pa.Table) -> dict[str, int]:
        scope = np.ones(len(self.controllers), dtype=bool)
        return false_alarm_causes(
            self.truth,
            self.controllers,
            truth_kind,
            alarms,
            period=self.period,
            in_scope=scope,
            kinds=CONFOUNDER_KINDS,
            clock_tolerance_s=TOLERANCE_S,
        )


def _scored(tmp_path_factory: pytest.TempPathFactory, config: SimConfig) -> Scored:
    out = tmp_path_factory.mktemp("confounded")
    write_run(Simulation(config), out, progress=False)
    return Scored(out)


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    return _scored(tmp_path_factory, HEAVY)


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Scored:
    return _scored(tmp_path_factory, DEFAULT)


NOT_RESETS = ("collector_outage", "agent_restart", "counter_wrap", "counter_width_change", "partial_telemetry")


def test_gaps_restarts_wraps_and_missing_streams_are_neither_resets_nor_drops(heavy: Scored) -> None:
    resets = heavy.causes("controller_reset", heavy.detections.resets)
    drops = heavy.causes("link_drop", heavy.drops())
    assert all(resets[kind] == 0 for kind in NOT_RESETS), resets
    assert all(drops[kind] == 0 for kind in NOT_RESETS), drops
    # The heartbeat baseline does take collector outages for resets: the confounders are really there.
    baseline = detect_resets(heavy.telemetry.errors, heavy.telemetry.link, heavy.controllers, RESET_BASELINE)
    assert heavy.causes("controller_reset", baseline)["collector_outage"] > 0


def test_a_clock_step_of_seconds_is_not_a_reset(default: Scored) -> None:
    truth_kinds = set(default.truth.column("kind").cast(pa.string()).to_pylist())
    assert {"clock_step", "collector_outage", "counter_wrap"} <= truth_kinds
    causes = default.causes("controller_reset", default.detections.resets)
    assert sum(causes.values()) == 0, causes
    score = score_detections(
        default.truth,
        default.controllers,
        "controller_reset",
        default.detections.resets,
        period=default.period,
        clock_tolerance_s=TOLERANCE_S,
    )
    assert score.f1 >= 0.97, (score.recall, score.precision)


def test_maintenance_resets_are_planned_and_raise_no_incident(heavy: Scored) -> None:
    resets = heavy.detections.resets
    truth = heavy.truth.filter(pa.array(equals(heavy.truth.column("kind"), "controller_reset")))
    maintenance = np.array([json.loads(d)["cause"] == "maintenance" for d in truth.column("details").to_pylist()])
    planned_truth = truth.filter(pa.array(maintenance))
    assert planned_truth.num_rows > 0
    ids = resets.column("controller_id").to_pylist()
    moments = resets.column("reset_ts").cast(pa.int64()).to_numpy()
    planned = resets.column("planned").to_numpy(zero_copy_only=False)
    for cid, onset in zip(
        planned_truth.column("controller_id").to_pylist(),
        planned_truth.column("onset_ts").cast(pa.int64()).to_numpy().tolist(),
        strict=True,
    ):
        near = [i for i, c in enumerate(ids) if c == cid and abs(moments[i] - onset) <= 300 * 10**9]
        assert near and all(planned[i] for i in near), cid
    paged = incidents(resets, heavy.detections.incidents)
    paged_resets = paged.filter(pc.equal(paged["kind"], "reset")).num_rows
    assert paged_resets == resets.num_rows - int(planned.sum()) < resets.num_rows


def test_a_32_bit_wrap_and_a_widening_counter_are_small_increments() -> None:
    codes = np.zeros(4, np.int64)
    epochs = np.zeros(4, np.int64)
    values = np.array([COUNTER_32_BIT - 3, 4, COUNTER_32_BIT + 10, COUNTER_32_BIT + 12])
    deltas = epoch_deltas(codes, epochs, values)
    assert deltas.values.tolist() == [0, 7, 6, 2] and not deltas.decreased.any()
    # A genuine zeroing (from the bottom of the range) is still a decrease.
    zeroed = epoch_deltas(codes[:2], epochs[:2], np.array([1_000.0, 3.0]))
    assert zeroed.decreased.tolist() == [False, True]


def test_detections_without_a_calendar_plan_nothing(heavy: Scored) -> None:
    found = Detections.from_tables(heavy.telemetry.errors, heavy.telemetry.link, Controllers.of(heavy.controllers.ids))
    assert not pc.any(found.resets["planned"]).as_py()
