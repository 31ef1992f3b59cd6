"""Declared maintenance windows through the real broker, loader, lake and Dagster instance: a reset inside one is
planned in the marts and in `sre`, raises no incident and spends no availability budget; the same reset with the
window declared elsewhere is a failure that does; a window declared after its hours were computed revises them.

The same seeded simulation is published twice, each time into a lake and instance of its own: once with its
calendar, once with every window moved a day later (declared, but around none of the resets).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ingest.contract import MAINTENANCE_SCHEMA, TOPIC_MAINTENANCE
from ingest.kafka.producer import TelemetryProducer
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import reset_topics
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from models.incidents import RESET, incidents
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from pipelines.defs.detections.detections import LINK_EVENTS, RESETS
from pipelines.defs.slo.slo_assets import SLI
from pipelines.lib.instance import install_instance_config
from pipelines.lib.marts import mart_key
from pipelines.lib.partitions import HOUR_FORMAT, HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import Stage, run_stage
from pipelines.sql import install_views
from tests.ingest.kafka.helpers import run_loader
from tests.sensor_runs import execute, tick_late_data

pytestmark = pytest.mark.kafka

AVAILABILITY = "link-availability-per-rack"
# About one declared window per host in the run, so that some resets fall inside one and others do not.
WINDOWS_PER_HOST_DAY = 8.0
CONFIG = SimConfig(controllers=24, hours=3, seed=21)
SPAN = Window(CONFIG.start, CONFIG.start + timedelta(hours=CONFIG.hours))
STAGE = Stage((mart_key(RESETS), mart_key(LINK_EVENTS), mart_key(SLI)), HOURLY, ("resets", "links", "slo"))


def _simulation(shift: timedelta = timedelta(0)) -> Simulation:
    knobs = replace(CONFIG.confounders, maintenance_per_host_day=WINDOWS_PER_HOST_DAY)
    simulation = Simulation(replace(CONFIG, confounders=knobs))
    calendar = simulation.maintenance
    for column in ("start_ts", "end_ts"):
        moved = pc.add(calendar[column], pa.scalar(shift, pa.duration("ns")))
        calendar = calendar.set_column(calendar.schema.get_field_index(column), MAINTENANCE_SCHEMA.field(column), moved)
    simulation.maintenance = calendar
    return simulation


class _Lake:
    """One publication of a simulation into a lake and Dagster instance of its own, loaded, with the detections
    and SLI marts of the run's hours computed."""

    def __init__(self, settings: Settings, root: Path, name: str, simulation: Simulation, definitions: dg.Definitions):
        kafka = replace(settings.kafka, consumer_group=f"{settings.kafka.consumer_group}-{name}")
        self.settings = replace(settings, kafka=kafka).with_data_dir(root / name / "data")
        self.definitions = definitions
        reset_topics(self.settings)
        publish_simulation(self.settings, simulation)
        assert run_loader(self.settings)["quarantined_total"] == 0
        self.lake = LakeResource(data_dir=str(self.settings.data_dir))
        self.instance = dg.DagsterInstance.from_config(str(install_instance_config(root / name / "dagster")))
        run = run_stage(definitions, self.lake, STAGE, SPAN, self.instance)
        assert run.results and run.success

    def declare_late(self, windows: pa.Table) -> list[dg.RunRequest]:
        """Publish and load `windows` after the hours were computed; the revisions the late-data sensor asks."""
        with TelemetryProducer(self.settings) as producer:
            producer.send(TOPIC_MAINTENANCE, windows)
            producer.flush()
        assert run_loader(self.settings)["quarantined_total"] == 0
        return tick_late_data(self.definitions, self.instance, self.lake)

    def answers(self):
        """The lake's resets (from `sre`), incidents and availability SLI totals (events, bad events)."""
        with self.lake.connection() as con:
            install_views(con)
            resets = con.execute(
                f"SELECT {', '.join(RESETS_SCHEMA.names)} FROM sre.controller_resets ORDER BY controller_id, reset_ts"
            ).to_arrow_table()
            links = con.execute("SELECT * FROM marts.link_events").to_arrow_table()
            events, good = con.execute(
                f"SELECT sum(total), sum(good) FROM marts.{SLI} WHERE slo = ?", [AVAILABILITY]
            ).fetchone()
        found = incidents(resets.cast(RESETS_SCHEMA), links.select(INCIDENTS_SCHEMA.names).cast(INCIDENTS_SCHEMA))
        return resets, found, (events, events - good)


@pytest.mark.timeout(600)
def test_a_reset_in_a_declared_window_is_planned_and_spends_no_availability_budget(
    settings: Settings, tmp_path: Path, definitions: dg.Definitions
) -> None:
    declared = _simulation()
    windows = declared.maintenance
    assert windows.num_rows > 0
    resets, found, (events, bad) = _Lake(settings, tmp_path, "declared", declared, definitions).answers()
    elsewhere = _Lake(settings, tmp_path, "elsewhere", _simulation(timedelta(days=1)), definitions)
    moved, moved_found, (moved_events, moved_bad) = elsewhere.answers()

    # The same telemetry gives the same resets; only whether each was planned differs.
    assert resets.drop(["planned"]).equals(moved.drop(["planned"]))
    inside = _inside(resets, windows)
    planned = resets["planned"].to_numpy(zero_copy_only=False)
    assert inside.any() and (~inside).any()
    assert (planned == inside).all()
    assert not moved["planned"].to_numpy(zero_copy_only=False).any()

    # A planned reset raises no incident; the same reset outside any window does.
    reset_incidents = found.filter(pc.equal(found["kind"], RESET)).num_rows
    assert reset_incidents == int((~inside).sum())
    assert moved_found.filter(pc.equal(moved_found["kind"], RESET)).num_rows == resets.num_rows

    # The availability SLI leaves out the snapshots inside the windows: fewer events, and the resets' down
    # snapshots in them are not bad events.
    assert events < moved_events
    assert bad < moved_bad


@pytest.mark.timeout(600)
def test_a_window_declared_after_its_hours_were_computed_revises_them_to_what_on_time_gives(
    settings: Settings, tmp_path: Path, definitions: dg.Definitions
) -> None:
    declared = _simulation()
    on_time = _Lake(settings, tmp_path, "on-time", declared, definitions).answers()
    undeclared = _simulation()
    undeclared.maintenance = declared.maintenance.slice(0, 0)
    late = _Lake(settings, tmp_path, "late", undeclared, definitions)
    before = late.answers()
    # Computed without the calendar: no reset planned, the windows' snapshots counted.
    assert not before[0]["planned"].to_numpy(zero_copy_only=False).any()
    assert before[2] != on_time[2]

    requests = late.declare_late(declared.maintenance)
    # Every hour of the run a window covers is asked again, and no other.
    covered = {
        hour.start.strftime(HOUR_FORMAT)
        for row in declared.maintenance.to_pylist()
        for hour in SPAN.chunks(timedelta(hours=1))
        if hour.start <= row["end_ts"] and row["start_ts"] < hour.end
    }
    assert covered and sorted(request.partition_key for request in requests) == sorted(covered)
    for request in requests:
        execute(definitions, late.instance, late.lake, request)
    revised = late.answers()
    assert revised[0].equals(on_time[0])
    assert revised[1].equals(on_time[1])
    assert revised[2] == on_time[2]
    assert late.declare_late(declared.maintenance.slice(0, 0)) == []


def _inside(resets: pa.Table, windows: pa.Table) -> pa.Array:
    """Whether each reset falls inside a declared window of its controller (read from the calendar itself)."""
    spans = {}
    for row in windows.to_pylist():
        spans.setdefault(row["controller_id"], []).append((row["start_ts"], row["end_ts"]))
    return pa.array(
        [
            any(start <= row["reset_ts"] <= end for start, end in spans.get(row["controller_id"], ()))
            for row in resets.to_pylist()
        ]
    ).to_numpy(zero_copy_only=False)
