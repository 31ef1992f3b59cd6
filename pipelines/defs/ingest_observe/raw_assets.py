"""The raw lake tables as external assets: written by the standalone loader, observed (never materialized) here.

Kafka consumption stays out of Dagster (pipeline_patterns.md §1.6); the loader reports to the lake, and the
observation sensor turns its reports into observations and runless materializations of these assets. The
freshness policy turns a stalled loader into a red asset in the UI.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from ingest.contract import (
    TABLE_NAMES,
    TELEMETRY_SCHEMAS,
    TOPIC_ERRORS,
    TOPIC_INVENTORY,
    TOPIC_JOBS,
    TOPIC_LATENCY,
    TOPIC_LINK,
    TOPIC_MAINTENANCE,
    TRUTH_FAULTS_SCHEMA,
)
from ingest.lake.raw_tables import STATUS_SCHEMA, STATUS_TABLE
from pipelines.lib.metadata import column_schema
from pipelines.lib.telemetry import RAW, TRUTH_TABLE, raw_key

INGEST_GROUP = "ingest"
INGEST_OWNERS = ["team:fleet-telemetry"]
# The loader flushes every few seconds while data flows; ten quiet minutes is a warning, half an hour a failure.
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=10))

_DESCRIPTIONS = {
    TOPIC_ERRORS: "RAS events and periodic health snapshots per controller (topic leo.errors).",
    TOPIC_LINK: "CXL/PCIe link state changes and counter snapshots per port (topic leo.link).",
    TOPIC_LATENCY: "Per-window base-2 exponential latency histograms with exact SLO counters (topic leo.latency).",
    TOPIC_INVENTORY: "Fleet inventory: region, rack, host, SKU, firmware per controller (topic leo.inventory).",
    TOPIC_JOBS: "The pilot's jobs on CXL-expanded and baseline hosts, one row when each ends (topic leo.jobs).",
}


def _spec(name: str, description: str, schema, freshness: dg.FreshnessPolicy | None) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=raw_key(name),
        description=description,
        group_name=INGEST_GROUP,
        owners=INGEST_OWNERS,
        kinds={"kafka", "duckdb"} if freshness else {"duckdb"},
        freshness_policy=freshness,
        metadata={
            "dagster/table_name": f"lake.{RAW}.{name}",
            "dagster/column_schema": column_schema(schema),
        },
    )


raw_tables = [
    *(
        _spec(TABLE_NAMES[topic], _DESCRIPTIONS[topic], TELEMETRY_SCHEMAS[topic], RAW_FRESHNESS)
        for topic in TELEMETRY_SCHEMAS
        if topic != TOPIC_MAINTENANCE
    ),
    # A change calendar stays quiet for days: no freshness policy.
    _spec(
        TABLE_NAMES[TOPIC_MAINTENANCE],
        "Declared maintenance windows, one row per controller of the host (topic leo.maintenance): a reset inside "
        "one is planned, and its downtime does not count against the availability SLO.",
        TELEMETRY_SCHEMAS[TOPIC_MAINTENANCE],
        None,
    ),
    _spec(
        TRUTH_TABLE,
        "Ground truth of the faults the simulator injected; read only by detection-quality evaluation.",
        TRUTH_FAULTS_SCHEMA,
        None,
    ),
    _spec(
        STATUS_TABLE,
        "The loaders' status rows: one per lake commit and at least every 30 s, with rows/s, lag per partition and "
        "the running totals of each loader (rows, quarantined, skipped, lake commits retried after a conflict).",
        STATUS_SCHEMA,
        None,
    ),
]
