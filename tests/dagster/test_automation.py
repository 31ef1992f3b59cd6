"""Automation: new raw data requests the hour's marts, the observation sensor turns the loader's reports into
asset events, and the daily schedule asks for yesterday's SLO report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ingest.lake.raw_tables import Batch, ensure_tables, write_batch
from pipelines.defs.ingest_observe.observe import loader_observer
from pipelines.lib.marts import mart_key
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key
from tests.sample_lake import Materialized

RAW_STREAMS = ("errors", "link", "latency", "inventory", "jobs")
FIRST_LEVEL = ("latency_rollups", "link_events", "resets", "slo_sli")
FOLLOWERS = ("slo_compliance", "slo_breaches", "features", "event_anomalies")


def requested(result: dg.EvaluateAutomationConditionsResult, definitions: dg.Definitions) -> dict[str, set[str]]:
    keys = definitions.resolve_asset_graph().get_all_asset_keys()
    return {key.path[-1]: set(result.get_requested_partitions(key)) for key in keys if result.get_num_requested(key)}


@pytest.mark.parametrize("loader_reported", [True, False])
def test_new_raw_data_materializes_the_hours_marts(definitions: dg.Definitions, loader_reported: bool) -> None:
    instance = dg.DagsterInstance.ephemeral()
    marts = dg.AssetSelection.key_prefixes("marts")
    before = dg.evaluate_automation_conditions(
        defs=definitions,
        instance=instance,
        asset_selection=marts,
        evaluation_time=datetime(2026, 1, 5, 3, 5, tzinfo=UTC),
    )
    if loader_reported:
        for name in RAW_STREAMS:
            instance.report_runless_asset_event(dg.AssetMaterialization(raw_key(name)))
    # Ten minutes past each hour, the hour that just closed (02:00–03:00) is computed, once its inputs updated.
    result = dg.evaluate_automation_conditions(
        defs=definitions,
        instance=instance,
        asset_selection=marts,
        evaluation_time=datetime(2026, 1, 5, 3, 16, tzinfo=UTC),
        cursor=before.cursor,
    )
    assert requested(before, definitions) == {}
    if not loader_reported:
        assert requested(result, definitions) == {}
        return
    got = requested(result, definitions)
    assert {name: got.get(name) for name in (*FIRST_LEVEL, *FOLLOWERS)} == {
        name: {"2026-01-05-02:00"} for name in (*FIRST_LEVEL, *FOLLOWERS)
    }
    # Scores wait for their fitted model, which nothing has trained yet.
    assert "health_scores" not in got


def test_the_slo_report_runs_every_morning_for_the_day_before(definitions: dg.Definitions) -> None:
    schedule = definitions.resolve_schedule_def("slo_report_daily_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 6, 6, tzinfo=UTC))
    (run_request,) = schedule.evaluate_tick(context).run_requests
    assert run_request.partition_key == "2026-01-05"


def test_observer_reports_what_the_loader_wrote(materialized: Materialized) -> None:
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources={"lake": materialized.lake})
    result = loader_observer(context)
    with materialized.lake.connection(read_only=True) as con:
        counts = {name: con.execute(f"SELECT count(*) FROM raw.{name}").fetchone()[0] for name in RAW_STREAMS}
    materializations = {e.asset_key.path[-1]: e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)}
    assert {name: e.metadata["dagster/row_count"].value for name, e in materializations.items()} == counts
    observations = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    latency = next(e for e in observations if e.asset_key == raw_key("latency"))
    assert latency.metadata["watermark"].value.startswith("2026-01-05T05:59")
    # Nothing new on the next tick: no events, no duplicate materializations.
    again = loader_observer(
        dg.build_sensor_context(instance=instance, cursor=context.cursor, resources={"lake": materialized.lake})
    )
    assert isinstance(again, dg.SkipReason)


def test_observer_records_loader_lag_and_throughput(tmp_path: Path) -> None:
    lake = LakeResource(data_dir=str(tmp_path))
    status = {
        "loader_id": "host:1",
        "state": "running",
        "rows_total": 10,
        "quarantined_total": 0,
        "rows_per_s": 1234.5,
        "bytes_per_s": 1.0,
        "lag_total": 42,
        "lag_by_partition": '{"leo.latency/0": 40, "leo.errors/3": 2}',
    }
    with lake.connection() as con:
        ensure_tables(con)
        write_batch(con, Batch(status=status), datetime.now(UTC))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake})
    result = loader_observer(context)
    (errors,) = [e for e in result.asset_events if e.asset_key == raw_key("errors")]
    assert isinstance(errors, dg.AssetObservation)  # no rows yet: observed, not materialized
    assert errors.metadata["lag_messages"].value == 42
    assert errors.metadata["rows_per_s"].value == pytest.approx(1234.5)
    assert "leo.latency/0 | 40" in errors.metadata["lag_by_partition"].value


def test_observer_waits_for_a_lake(tmp_path: Path) -> None:
    lake = LakeResource(data_dir=str(tmp_path / "nothing-here"))
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"lake": lake})
    assert isinstance(loader_observer(context), dg.SkipReason)


def test_marts_are_automated_by_their_own_sensor(definitions: dg.Definitions) -> None:
    sensor = definitions.resolve_sensor_def("marts_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    graph = definitions.resolve_asset_graph()
    automated = {key for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None}
    assert mart_key("health_scores") in automated and automated <= set(sensor.asset_selection.resolve(graph))
