"""Declared maintenance windows through the real broker, loader, lake and Dagster instance: a reset inside one is
planned in the marts and in `sre`, raises no incident and spends no availability budget; the same reset with the
window declared elsewhere is a failure that does.

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

from ingest.contract import MAINTENANCE_SCHEMA
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
from pipelines.lib.partitions import HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import Stage, run_stage
from pipelines.sql import install_views
from tests.ingest.kafka.helpers import run_loader

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


def _published(settings: Settings, root: Path, name: str, simulation: Simulation, definitions: dg.Definitions):
    """Publish, load and compute the detections and SLI marts of the run's hours; the lake's resets (from `sre`),
    incidents and availability SLI totals (events, bad events)."""
    kafka = replace(settings.kafka, consumer_group=f"{settings.kafka.consumer_group}-{name}")
    settings = replace(settings, kafka=kafka).with_data_dir(root / name / "data")
    reset_topics(settings)
    publish_simulation(settings, simulation)
    assert run_loader(settings)["quarantined_total"] == 0
    lake = LakeResource(data_dir=str(settings.data_dir))
    instance = dg.DagsterInstance.from_config(str(install_instance_config(root / name / "dagster")))
    run = run_stage(definitions, lake, STAGE, SPAN, instance)
    assert run.result is not None and run.result.success
    with lake.connection() as con:
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
    resets, found, (events, bad) = _published(settings, tmp_path, "declared", declared, definitions)
    moved, moved_found, (moved_events, moved_bad) = _published(
        settings, tmp_path, "elsewhere", _simulation(timedelta(days=1)), definitions
    )

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
