"""Late and re-sent telemetry (ingest/kafka/delivery_faults.py) through the real broker, loader, lake and Dagster
instance: a batch delivered 30 minutes late revises its hour's marts to exactly what an on-time delivery gives, and
a batch sent twice is stored twice but counted once.

Each run publishes the same seeded simulation in live mode on a simulated clock (time is the one thing mocked).
At ten past the hour that holds the faulty batches, as `AFTER_LOAD` would, the loader drains and the hourly marts
of the hours so far are computed. The rest is then published, loaded, and the `late_data` sensor is ticked; the
runs it requests are executed in the same instance.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from ingest.kafka.delivery_faults import DUPLICATE, LATE, HeldBatch
from ingest.kafka.publish import publish_simulation
from ingest.kafka.topics import reset_topics
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from pipelines.lib.instance import install_instance_config
from pipelines.lib.marts import MARTS
from pipelines.lib.partitions import HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import run_stage, stages
from tests.ingest.kafka.helpers import lake_count, run_loader
from tests.sensor_runs import execute, tick_late_data

START = SimConfig.start
HOUR = START + timedelta(hours=1)  # the hour the faulty batches belong to
CRON = HOUR + timedelta(hours=1, minutes=10)  # when its marts are first computed
SPEED = 600.0  # simulated seconds per (simulated) wall second: 10-minute ticks


class _Run:
    """One publication of the simulation into a lake and Dagster instance of its own."""

    def __init__(self, settings: Settings, root: Path, name: str, definitions: dg.Definitions) -> None:
        kafka = replace(settings.kafka, consumer_group=f"{settings.kafka.consumer_group}-{name}")
        self.settings = replace(settings, kafka=kafka).with_data_dir(root / name / "data")
        self.lake = LakeResource(data_dir=str(self.settings.data_dir))
        self.instance = dg.DagsterInstance.from_config(str(install_instance_config(root / name / "dagster")))
        self.definitions = definitions
        # The hourly marts over raw telemetry and over each other: the stage before the fitted models.
        self.stage = next(stage for stage in stages(definitions) if stage.partitions_def == HOURLY)

    def publish(self, simulation: Simulation, delivery: list[HeldBatch]) -> None:
        reset_topics(self.settings)
        clock = {"wall": 0.0, "computed": False}

        def sleep(seconds: float) -> None:
            clock["wall"] += seconds
            if not clock["computed"] and START + timedelta(seconds=clock["wall"] * SPEED) >= CRON:
                clock["computed"] = True
                self.compute_hours_so_far()

        publish_simulation(
            self.settings, simulation, speed=SPEED, sleep=sleep, now=lambda: clock["wall"], delivery=delivery
        )
        assert clock["computed"]
        run_loader(self.settings)

    def compute_hours_so_far(self) -> None:
        """The hourly marts of each hour so far, one run per hour as `AFTER_LOAD` requests them."""
        run_loader(self.settings)
        for hour in Window(START, HOUR + timedelta(hours=1)).chunks(timedelta(hours=1)):
            run = run_stage(self.definitions, self.lake, self.stage, hour, self.instance)
            assert run.results and run.success

    def tick_late_data(self) -> list[dg.RunRequest]:
        return tick_late_data(self.definitions, self.instance, self.lake)

    def execute(self, request: dg.RunRequest) -> None:
        execute(self.definitions, self.instance, self.lake, request)

    def marts(self) -> dict[str, pa.Table]:
        """Every hourly mart of the stage, whole (only the hours computed so far are in it), in a fixed order."""
        with self.lake.connection(read_only=True) as con:
            return {
                key.path[-1]: con.execute(f"SELECT * FROM {MARTS}.{key.path[-1]} ORDER BY ALL").to_arrow_table()
                for key in self.stage.keys
            }


@pytest.mark.timeout(600)
def test_a_batch_delivered_30_minutes_late_revises_its_hour_to_what_on_time_delivery_gives(
    settings: Settings, tmp_path: Path, definitions: dg.Definitions
) -> None:
    simulation = Simulation(SimConfig(controllers=6, hours=3, seed=14))
    hosts = sorted(set(simulation.inventory.column("host").cast(pa.string()).to_pylist()))
    assert len(hosts) > 1
    last_ten = HOUR + timedelta(minutes=50)
    delivery = [
        HeldBatch(LATE, hosts[0], last_ten, HOUR + timedelta(hours=1), HOUR + timedelta(hours=1, minutes=30)),
        HeldBatch(DUPLICATE, hosts[-1], HOUR, HOUR + timedelta(minutes=5), HOUR + timedelta(minutes=5, seconds=30)),
    ]

    on_time = _Run(settings, tmp_path, "on-time", definitions)
    on_time.publish(simulation, [])
    # Nothing landed after its hour was computed: no revision asked.
    assert on_time.tick_late_data() == []
    expected = on_time.marts()

    late = _Run(settings, tmp_path, "late", definitions)
    late.publish(Simulation(simulation.config), delivery)
    before = late.marts()
    # The hour was computed without the late batch.
    assert _differences(before["latency_rollups"], expected["latency_rollups"]) > 0
    # The re-sent batch is stored twice (exactly-once is per Kafka message), the held one once.
    copies = lake_count(
        late.settings,
        f"SELECT count(*) FROM raw.latency WHERE host = '{hosts[-1]}' "
        f"AND window_start >= '{HOUR.isoformat()}' AND window_start < '{(HOUR + timedelta(minutes=5)).isoformat()}'",
    )
    assert lake_count(late.settings, "SELECT count(*) FROM raw.latency") == (
        lake_count(on_time.settings, "SELECT count(*) FROM raw.latency") + copies // 2
    )
    assert copies > 0 and copies % 2 == 0

    requests = late.tick_late_data()
    assert [request.partition_key for request in requests] == [HOUR.strftime("%Y-%m-%d-%H:%M")]
    assert set(requests[0].asset_selection) == set(late.stage.keys)
    for request in requests:
        late.execute(request)
    after = late.marts()
    assert after.keys() == expected.keys()
    assert {name: _differences(after[name], table) for name, table in expected.items()} == dict.fromkeys(expected, 0)
    # The revision is not asked again on the next tick.
    assert late.tick_late_data() == []


def test_the_late_data_sensor_is_part_of_the_location(definitions: dg.Definitions) -> None:
    sensor = definitions.resolve_sensor_def("late_data")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _differences(got: pa.Table, expected: pa.Table) -> int:
    """Rows in one table and not the other, counted with multiplicity (DuckDB compares NaN equal to NaN, which
    Arrow's `equals` does not)."""
    assert got.schema == expected.schema
    sql = "SELECT count(*) FROM ((FROM got EXCEPT ALL FROM expected) UNION ALL (FROM expected EXCEPT ALL FROM got))"
    return duckdb.sql(sql).fetchone()[0]
