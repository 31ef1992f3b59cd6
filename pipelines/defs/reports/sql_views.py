"""The SREs' SQL: views and macros persisted in the lake (pipelines/sql/views.sql), refreshed after the marts.

Views are live queries, so they need re-creating only when views.sql changes or a mart they read appears for the
first time; the asset is cheap and idempotent; `materialize_span` (the demo, the tests) runs it after the marts.
"""

from __future__ import annotations

import dagster as dg

from pipelines.lib.marts import mart_key
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key
from pipelines.sql import SCHEMA, VIEWS_FILE, install_views

VIEWS_KEY = dg.AssetKey([SCHEMA, "views"])
MARTS_READ = (
    "latency_rollups",
    "latency_rollups_daily",
    "health_scores",
    "slo_compliance",
    "slo_breaches",
    "slo_overview",
    "link_events",
    "resets",
    "event_anomalies",
    "early_warning",
    "latency_anomalies",
)


@dg.asset(
    key=VIEWS_KEY,
    group_name="reports",
    owners=["team:fleet-sre"],
    kinds={"duckdb", "sql"},
    deps=[raw_key("inventory"), *(mart_key(name) for name in MARTS_READ)],
    description=f"Views and table macros in schema `{SCHEMA}` of the lake ({VIEWS_FILE.name}: fleet_health, "
    "slo_overview, slo_burn_pairs, slo_burning_groups, slo_status, slo_budget, slo_breaches, link_events, "
    "controller_resets, anomalies, early_warning, latency_anomalies, ...) plus the leo_* histogram macros, for any "
    "DuckDB client that attaches the lake; docs/sql.md.",
)
def sre_views(lake: LakeResource) -> dg.MaterializeResult:
    with lake.connection() as con:
        installed = install_views(con)
    return dg.MaterializeResult(
        metadata={
            "views": ", ".join(installed.views),
            "macros": ", ".join(installed.macros),
            "skipped": ", ".join(f"{name} (needs {', '.join(tables)})" for name, tables in installed.skipped.items())
            or "none",
        }
    )
