"""The loader as a Dagster job for batch use, on a real broker, and what the observation sensor makes of the
status rows it wrote."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import dagster as dg
import pytest

from ingest.kafka import broker
from ingest.kafka.publish import publish_simulation
from ingest.settings import KafkaSettings, Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from pipelines.defs.ingest_observe.observe import loader_observer
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key

pytestmark = pytest.mark.kafka
MINUTE_S = 60


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("ingest-job")
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker.free_port()}"))
    settings = replace(settings.with_data_dir(root), kafka=replace(settings.kafka, consumer_group="dagster-job"))
    broker.start(settings)
    yield settings
    broker.stop(settings)


def test_ingest_until_idle_job_loads_and_reports(
    settings: Settings, definitions: dg.Definitions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.kafka.bootstrap_servers)
    monkeypatch.setenv("LEO_FLEET_CONSUMER_GROUP", settings.kafka.consumer_group)
    summary = publish_simulation(settings, Simulation(SimConfig(controllers=10, hours=0.5, seed=3)))
    lake = LakeResource(data_dir=str(settings.data_dir))
    result = definitions.resolve_job_def("ingest_until_idle").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake}
    )
    assert result.success
    materialized = {e.asset_key.path[-1]: e for e in result.get_asset_materialization_events()}
    assert set(materialized) == {"errors", "link", "latency", "inventory", "jobs"}
    loaded = sum(e.materialization.metadata["new_rows"].value for e in materialized.values())
    assert loaded == summary.rows  # every published row, exactly once

    # The observer finds the loader's final status row: stopped, nothing left behind.
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake})
    events = loader_observer(context).asset_events
    (latency,) = [e for e in events if isinstance(e, dg.AssetObservation) and e.asset_key == raw_key("latency")]
    assert latency.metadata["loader_state"].value == "stopped"
    assert latency.metadata["lag_messages"].value == 0
    assert 0 <= latency.metadata["loader_status_age_s"].value < MINUTE_S
