"""Checks on the raw tables themselves: their columns still match the contract, few messages are quarantined, and
loaders seldom have to run a lake commit again.

They are not tied to a partition: a job runs them every ten minutes (a checks-only schedule), and `leo-fleet
demo` runs them once after loading. One step runs the per-table checks, on one lake connection (each table can
also be checked on its own from the UI); the loaders' commit conflicts are a step of their own.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from ingest.contract import TABLE_NAMES, TELEMETRY_SCHEMAS
from ingest.lake.raw_tables import STATUS_TABLE
from pipelines.lib.assets import SCHEDULES_DEFAULT
from pipelines.lib.commit_retries import commit_retries
from pipelines.lib.quality import quarantine_share, schema_drift
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key

SCHEMA_CHECK = "schema_matches_contract"
QUARANTINE_CHECK = "quarantine_rate"
# Above this share of quarantined messages the producer side is likely broken, not just noisy.
MAX_QUARANTINE_SHARE = 0.001
RETRIES_CHECK = "lake_commit_retries"
# A conflict writes the batch again: above one commit in ten, loaders spend a real share of their time on them.
MAX_CONFLICTS_PER_1000_COMMITS = 100
RETRIES_WINDOW = timedelta(hours=1)


def _specs(topic: str) -> list[dg.AssetCheckSpec]:
    name = TABLE_NAMES[topic]
    return [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=raw_key(name),
            description=f"raw.{name} has exactly the contract's columns and types (plus provenance).",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=raw_key(name),
            description=f"At most {MAX_QUARANTINE_SHARE:.1%} of the {topic} messages consumed were quarantined "
            "(warning): undecodable input is kept in raw.quarantine, never dropped.",
        ),
    ]


@dg.multi_asset_check(specs=[spec for topic in TELEMETRY_SCHEMAS for spec in _specs(topic)], can_subset=True)
def raw_table_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> Iterator[dg.AssetCheckResult]:
    with lake.connection(read_only=True) as con:
        for topic in TELEMETRY_SCHEMAS:
            key = raw_key(TABLE_NAMES[topic])
            if dg.AssetCheckKey(key, SCHEMA_CHECK) in context.selected_asset_check_keys:
                yield schema_drift(con, topic).result(SCHEMA_CHECK, asset_key=key)
            if dg.AssetCheckKey(key, QUARANTINE_CHECK) in context.selected_asset_check_keys:
                yield quarantine_share(con, topic).result(
                    QUARANTINE_CHECK, severity=dg.AssetCheckSeverity.WARN, tolerance=MAX_QUARANTINE_SHARE, asset_key=key
                )


@dg.asset_check(
    asset=raw_key(STATUS_TABLE),
    name=RETRIES_CHECK,
    description=f"Warns when a loader ran more than {MAX_CONFLICTS_PER_1000_COMMITS} of every 1,000 lake commits "
    f"again whole in the last {RETRIES_WINDOW.total_seconds() / 3600:g} h. Each loader commit writes a status row "
    "with the loader's running counts of commits retried because another writer committed first (DuckLake retries "
    "those in the catalog, writing nothing again) and of commits run again whole after a conflict (two loaders "
    "storing one partition at once, SQLite's lock): those write the batch again, so climbing conflicts mean "
    "loaders fight over partitions or the catalog (docs/scale-out.md). Passes when no loader committed in the "
    "window (the raw tables' freshness policy covers a stalled loader).",
)
def lake_commit_retries(lake: LakeResource) -> dg.AssetCheckResult:
    with lake.connection(read_only=True) as con:
        loaders = commit_retries(con, datetime.now(UTC) - RETRIES_WINDOW)
    worst = max((loader.conflicts_per_1000_commits for loader in loaders), default=0.0)
    lines = [
        "| loader | commits | retried | run again whole | per 1,000 commits | last status |",
        "|---|---:|---:|---:|---:|---|",
        *(
            f"| {x.loader_id} | {x.commits:,} | {x.retries:,} | {x.conflicts:,} | "
            f"{x.conflicts_per_1000_commits:,.1f} | {x.last_status:%H:%M:%S} |"
            for x in loaders
        ),
    ]
    return dg.AssetCheckResult(
        passed=worst <= MAX_CONFLICTS_PER_1000_COMMITS,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "loaders": len(loaders),
            "commits": sum(loader.commits for loader in loaders),
            "retries": sum(loader.retries for loader in loaders),
            "conflicts": sum(loader.conflicts for loader in loaders),
            "worst_conflicts_per_1000_commits": round(worst, 1),
            "threshold_per_1000_commits": MAX_CONFLICTS_PER_1000_COMMITS,
            "by_loader": dg.MetadataValue.md("\n".join(lines) if loaders else "_no loader committed in the window_"),
        },
    )


raw_checks_job = dg.define_asset_job(
    "raw_checks",
    selection=dg.AssetSelection.checks(raw_table_checks, lake_commit_retries),
    description="Every check on the raw tables: columns and types against the contract, the share of messages "
    "quarantined, and the loaders' lake-commit retries.",
)
raw_checks_schedule = dg.ScheduleDefinition(
    name="raw_checks_every_10_minutes",
    job=raw_checks_job,
    cron_schedule="*/10 * * * *",
    default_status=SCHEDULES_DEFAULT,
    description="Every ten minutes: the raw tables' contract, quarantine and commit-retry checks (raw_checks).",
)
