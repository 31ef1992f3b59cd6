"""Checks on the raw tables themselves: their columns still match the contract, and few messages are quarantined.

They are not tied to a partition: a job runs them every ten minutes (a checks-only schedule), and `leo-fleet
demo` runs them once after loading. One step runs them all, on one lake connection; each table can also be
checked on its own from the UI.
"""

from collections.abc import Iterator

import dagster as dg

from ingest.contract import TABLE_NAMES, TELEMETRY_SCHEMAS
from pipelines.lib.quality import quarantine_share, schema_drift
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key

SCHEMA_CHECK = "schema_matches_contract"
QUARANTINE_CHECK = "quarantine_rate"
# Above this share of quarantined messages the producer side is likely broken, not just noisy.
MAX_QUARANTINE_SHARE = 0.001


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


raw_checks_job = dg.define_asset_job(
    "raw_checks",
    selection=dg.AssetSelection.checks(raw_table_checks),
    description="Every check on the raw tables.",
)
raw_checks_schedule = dg.ScheduleDefinition(
    name="raw_checks_every_10_minutes", job=raw_checks_job, cron_schedule="*/10 * * * *"
)
