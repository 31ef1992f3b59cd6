"""The code location loads (as `dagster definitions validate` does from the repository root), the instance config
does what the docs claim, and every asset carries its catalog information."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pipelines.lib.instance import install_instance_config
from pipelines.lib.marts import MARTS
from pipelines.lib.partitions import DAILY, HOURLY
from pipelines.materialize import stages
from tests.sample_lake import REPO

GROUPS = {
    "ingest",
    "latency",
    "slo",
    "links",
    "resets",
    "features",
    "health",
    "anomaly",
    "quality",
    "reports",
    "early_warning",
}


def test_definitions_validate_from_the_repository_root(tmp_path: Path) -> None:
    install_instance_config(tmp_path)
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Validation successful for code location leo_fleet" in completed.stdout


def test_instance_config_limits_runs_and_lake_writers(tmp_path: Path) -> None:
    install_instance_config(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1  # the lake_write pool runs one step at a time
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert instance.get_settings("retention")["schedule"]["purge_after_days"] == 90
    assert instance.freshness_enabled and not instance.get_settings("telemetry")["enabled"]


def test_every_asset_is_catalogued(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    groups = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        spec = node.to_asset_spec()
        groups.add(node.group_name)
        assert spec.description and spec.owners, key
        if key.has_prefix([MARTS]) or key.has_prefix(["raw"]):
            assert spec.metadata["dagster/table_name"].startswith("lake."), key
            assert spec.metadata["dagster/column_schema"].columns, key
    assert groups == GROUPS


def test_lake_writers_share_one_pool_and_backfill_in_bounded_runs(definitions: dg.Definitions) -> None:
    """Hourly marts backfill half a day per run (memory bounded whatever the span), daily ones in one run."""
    graph = definitions.resolve_asset_graph()
    policies = {HOURLY: dg.BackfillPolicy.multi_run(12), DAILY: dg.BackfillPolicy.single_run(), None: None}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.has_prefix([MARTS]):
            assets_def = definitions.get_assets_def(key)
            assert assets_def.op.pool == "lake_write", key
            assert assets_def.backfill_policy == policies[node.partitions_def], key


def test_blocking_checks_guard_what_would_be_wrong(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    blocking = {
        (key.asset_key.path[-1], key.name) for key in graph.asset_check_keys if graph.get_check_spec(key).blocking
    }
    assert blocking == {
        ("latency_rollups", "histogram_counts_consistent"),
        ("slo_sli", "histogram_counts_consistent"),
        ("link_events", "link_counters_monotonic"),
        ("resets", "error_counters_monotonic"),
    }
    names = {key.name for key in graph.asset_check_keys}
    assert {"telemetry_gaps", "quarantine_rate", "schema_matches_contract", "column_schema_change"} <= names


def test_raw_tables_have_a_freshness_policy(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    for name in ("errors", "link", "latency", "inventory"):
        node = graph.get(dg.AssetKey(["raw", name]))
        assert not node.is_materializable and node.freshness_policy_or_from_metadata is not None, name


def test_stages_run_parents_first(definitions: dg.Definitions) -> None:
    graph = definitions.resolve_asset_graph()
    seen: set[dg.AssetKey] = set()
    for stage in stages(definitions):
        for key in stage.keys:
            for parent in graph.get(key).parent_keys:
                if graph.get(parent).is_materializable and parent not in seen:
                    # A parent may share the stage only when it shares the partitioning: one run covers both.
                    assert parent in stage.keys and graph.get(parent).partitions_def == stage.partitions_def
        seen.update(stage.keys)
    assert stages(definitions)[0].partitions_def == HOURLY


def test_every_stage_has_its_named_job(definitions: dg.Definitions) -> None:
    """The demo runs each stage as its own job, so the run list names what ran (no __ephemeral_asset_job__)."""
    names = [stage.job_name for stage in stages(definitions)]
    assert len(set(names)) == len(names)
    for stage in stages(definitions):
        job = definitions.resolve_job_def(stage.job_name)
        assert job.asset_layer.selected_asset_keys == set(stage.keys), stage.job_name
        assert job.partitions_def == stage.partitions_def, stage.job_name


def test_every_job_schedule_and_sensor_says_what_it_does_and_runs_from_the_start(definitions: dg.Definitions) -> None:
    repository = definitions.get_repository_def()
    jobs = [job for job in repository.get_all_jobs() if not job.name.startswith("__")]
    assert jobs and all(job.description for job in jobs), [job.name for job in jobs if not job.description]
    automations = [*repository.schedule_defs, *repository.sensor_defs]
    assert len(automations) == 7 and all(automation.description for automation in automations)
    running = (dg.DefaultScheduleStatus.RUNNING, dg.DefaultSensorStatus.RUNNING)
    assert all(automation.default_status in running for automation in automations)
    # The UI shows a sensor's target as its selection string; a key-prefix selection would show as a Python repr.
    assert str(definitions.resolve_sensor_def("marts_automation").asset_selection) == 'key:"marts/*"'


def test_health_scores_columns_say_what_they_hold(definitions: dg.Definitions) -> None:
    """Column descriptions come from the schema's owner (models.health) to the catalog, every column described."""
    spec = definitions.resolve_asset_graph().get(dg.AssetKey([MARTS, "health_scores"])).to_asset_spec()
    columns = spec.metadata["dagster/column_schema"].columns
    assert columns and all(column.description for column in columns), [c.name for c in columns if not c.description]
