"""The `lake_commit_retries` warning on `raw/loader_status`, run by the `raw_checks` job on a real Dagster instance
over a real lake whose status rows were written by the loader's write path: it passes while one writer commits
alone (and ignores conflicts older than its window) and warns when writers storing one partition together run
their commits again often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from ingest import lake
from ingest.lake.raw_tables import Batch, write_batch
from ingest.settings import Settings
from pipelines.defs.ingest_observe.raw_checks import MAX_CONFLICTS_PER_1000_COMMITS, RETRIES_CHECK, RETRIES_WINDOW
from pipelines.lib.resources import LakeResource
from tests.lake_writers import commit_concurrently

COMMITS = 40
RACING_WRITERS = 4
RACING_COMMITS = 60


def retries_check(definitions: dg.Definitions, data_dir: Path) -> dg.AssetCheckEvaluation:
    result = definitions.resolve_job_def("raw_checks").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), resources={"lake": LakeResource(data_dir=str(data_dir))}
    )
    (evaluation,) = (e for e in result.get_asset_check_evaluations() if e.check_name == RETRIES_CHECK)
    assert evaluation.asset_key == dg.AssetKey(["raw", "loader_status"])
    return evaluation


def test_one_writer_passes_and_old_retries_are_ignored(definitions: dg.Definitions, tmp_path: Path) -> None:
    settings = Settings().with_data_dir(tmp_path / "data")
    commit_concurrently(settings, writers=1, commits=COMMITS)
    # A loader that ran every commit again, but before the window: its rows must not count.
    earlier = datetime.now(UTC) - RETRIES_WINDOW - timedelta(minutes=30)
    con = lake.connect(settings)
    try:
        for total in range(0, 50, 10):
            counts = {"commit_retries_total": total, "commit_conflicts_total": total}
            status = {"loader_id": "earlier:1", "state": "running", **counts}
            write_batch(con, Batch(status=status), earlier + timedelta(seconds=total))
    finally:
        con.close()

    check = retries_check(definitions, settings.data_dir)
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert (metadata["loaders"], metadata["commits"], metadata["conflicts"]) == (1, COMMITS, 0)
    assert "earlier:1" not in metadata["by_loader"]


def test_writers_storing_one_partition_together_warn(definitions: dg.Definitions, tmp_path: Path) -> None:
    settings = Settings().with_data_dir(tmp_path / "data")
    writers = commit_concurrently(settings, writers=RACING_WRITERS, commits=RACING_COMMITS, same_messages=True)

    check = retries_check(definitions, settings.data_dir)
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert (metadata["loaders"], metadata["commits"]) == (RACING_WRITERS, RACING_WRITERS * RACING_COMMITS)
    # A status row counts the conflicts before its own commit: the last commit's are not in the lake yet.
    assert 0 < metadata["conflicts"] <= sum(writer.conflicts for writer in writers)
    assert metadata["worst_conflicts_per_1000_commits"] > MAX_CONFLICTS_PER_1000_COMMITS
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert all(writer.loader_id in metadata["by_loader"] for writer in writers)
