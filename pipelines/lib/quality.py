"""Data-quality checks on the raw tables, as SQL over the lake: each returns what it checked and what failed.

These are validations of the input, not analytics: a histogram whose buckets do not add up to its count, a
cumulative counter that goes backwards inside one counter epoch (telemetry.md §4), a hole in a controller's
health snapshots, a raw table whose columns drifted from the contract. Mart assets run them in their own step
on the window they read; where a wrong input would make the mart wrong, the check is blocking.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import (
    TELEMETRY_SCHEMAS,
    TOPIC_ERRORS,
    TOPIC_INVENTORY,
    TOPIC_LATENCY,
    TOPIC_LINK,
)
from ingest.lake.raw_tables import MESSAGES_TABLE, PROVENANCE_COLUMNS, QUARANTINE_TABLE, RAW
from models.series import COUNTER_32_BIT
from pipelines.lib.metadata import markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.telemetry import raw_table

SAMPLE_ROWS = 10
HISTOGRAM_CHECK = "histogram_counts_consistent"
HISTOGRAM_CHECK_DESCRIPTION = (
    "Every raw histogram's buckets add up to its count and its slow-sample counter does not exceed it; otherwise "
    "quantiles, SLIs and everything downstream would be wrong (blocking)."
)
# Cumulative counters, per stream, that may only grow within one counter epoch (per port for the link).
COUNTERS = {
    TOPIC_ERRORS: ("dirty_shutdown_cnt", "cor_vol_err_cnt", "cor_per_err_cnt"),
    TOPIC_LINK: (
        "aer_cor_total",
        "rx_err",
        "bad_tlp",
        "bad_dllp",
        "replay_rollover",
        "replay_timeout",
        "cxl_crc_thresh_hits",
        "cxl_retry_thresh_hits",
        "reinit_thresh_hits",
        "link_down_count",
        "recovery_entries",
    ),
}
_SERIES = {TOPIC_ERRORS: ("controller_id",), TOPIC_LINK: ("controller_id", "port")}
_ROWS = {TOPIC_ERRORS: "record_type = 'health_snapshot'", TOPIC_LINK: "true"}
# A hole longer than this many typical snapshot intervals is a gap (jitter stays well below it).
GAP_INTERVALS = 2.5


@dataclass(frozen=True)
class Finding:
    """Rows (or series) a check examined, how many failed, and a few failing examples."""

    checked: int
    failing: int
    sample: pa.Table

    def result(
        self,
        check: str,
        *,
        severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
        tolerance: float = 0.0,
        asset_key: dg.AssetKey | None = None,
    ) -> dg.AssetCheckResult:
        """Passed when at most `tolerance` (a fraction) of what was checked failed; `asset_key` names the asset
        when one step checks several."""
        return dg.AssetCheckResult(
            check_name=check,
            asset_key=asset_key,
            passed=self.failing <= tolerance * self.checked,
            severity=severity,
            metadata={
                "checked": self.checked,
                "failing": self.failing,
                "failing_share": self.failing / self.checked if self.checked else 0.0,
                "examples": markdown_table(self.sample, empty="_none_"),
            },
        )


def _finding(con: duckdb.DuckDBPyConnection, rows_sql: str, params: dict) -> Finding:
    """`rows_sql` yields the checked rows with a boolean `failing` column. One streaming aggregate counts them and
    keeps any SAMPLE_ROWS failing rows (as structs; `max_depth := 2` unnests the list and the struct but not a list
    column of the rows): the rows, which scan raw telemetry, are never materialized (a materialized CTE of a
    fleet-day's latency rows cost 3x the scan)."""
    result = con.execute(
        f"""WITH totals AS (
                SELECT count(*) AS _checked, count(*) FILTER (WHERE checked.failing) AS _failing,
                       min_by(checked, 0, {SAMPLE_ROWS}) FILTER (WHERE checked.failing) AS _sample
                FROM ({rows_sql}) AS checked)
            SELECT _checked, _failing, sample.* EXCLUDE (failing) FROM totals
            LEFT JOIN (SELECT true AS _sampled, unnest(_sample, max_depth := 2) FROM totals) AS sample ON true""",
        params,
    ).to_arrow_table()
    checked, failing = result["_checked"][0].as_py(), result["_failing"][0].as_py()
    sample = result.filter(pc.is_valid(result["_sampled"])).drop_columns(["_checked", "_failing", "_sampled"])
    return Finding(int(checked), int(failing), sample)


def _bounds(window: Window) -> dict:
    return {"start": window.start, "end": window.end}


def histogram_consistency(con: duckdb.DuckDBPyConnection, window: Window) -> Finding:
    """Latency rows whose bucket counts do not add up to `count`, or that count more slow samples than samples."""
    rows = f"""
        SELECT controller_id, window_start, memory_tier, op, count, list_sum(bucket_counts) AS bucket_total,
               over_slo,
               coalesce(list_sum(bucket_counts), 0) <> count OR over_slo > count AS failing
        FROM {raw_table(TOPIC_LATENCY)}
        WHERE window_start >= $start AND window_start < $end"""
    return _finding(con, rows, _bounds(window))


def counters_monotonic(con: duckdb.DuckDBPyConnection, topic: str, window: Window, lookback: Window) -> Finding:
    """Rows in `window` where a cumulative counter is below the series' previous value in the same epoch.

    `lookback` supplies the previous value of each series at the window's start.
    """
    series = ", ".join((*_SERIES[topic], "counter_epoch"))
    previous = ", ".join(f"lag({c}) OVER (PARTITION BY {series} ORDER BY ts) AS previous_{c}" for c in COUNTERS[topic])
    # A 32-bit counter rolling over (models.series.epoch_deltas reads it as a wrap) is no decrease.
    half, full = f"{COUNTER_32_BIT / 2:.0f}", f"{COUNTER_32_BIT:.0f}"
    wrap = f"previous_{{c}} >= {half} AND {{c}}::HUGEINT + {full} - previous_{{c}} < {half}"
    decreased = ", ".join(
        f"CASE WHEN {c} < previous_{c} AND NOT ({wrap.format(c=c)}) THEN '{c}' END" for c in COUNTERS[topic]
    )
    rows = f"""
        SELECT {series}, ts, list_filter([{decreased}], name -> name IS NOT NULL) AS decreased,
               len(list_filter([{decreased}], name -> name IS NOT NULL)) > 0 AS failing
        FROM (SELECT *, {previous} FROM {raw_table(topic)}
              WHERE {_ROWS[topic]} AND ts >= $lookback AND ts < $end)
        WHERE ts >= $start"""
    return _finding(con, rows, {**_bounds(window), "lookback": lookback.start})


def telemetry_gaps(con: duckdb.DuckDBPyConnection, window: Window, lookback: Window) -> Finding:
    """Controllers of the inventory whose health snapshots stop for longer than GAP_INTERVALS typical intervals
    inside `window`, or that sent none at all."""
    rows = f"""
        WITH snaps AS (
            SELECT controller_id, ts, ts - lag(ts) OVER (PARTITION BY controller_id ORDER BY ts) AS gap
            FROM {raw_table(TOPIC_ERRORS)}
            WHERE record_type = 'health_snapshot' AND ts >= $lookback AND ts < $end),
        typical AS (SELECT median(epoch(gap)) AS interval_s FROM snaps WHERE ts >= $start),
        holes AS (
            SELECT controller_id, max(epoch(gap)) AS longest_gap_s, count(*) AS snapshots
            FROM snaps WHERE ts >= $start GROUP BY controller_id)
        SELECT i.controller_id, coalesce(h.snapshots, 0) AS snapshots, h.longest_gap_s, t.interval_s,
               h.snapshots IS NULL OR h.longest_gap_s > {GAP_INTERVALS} * t.interval_s AS failing
        FROM (SELECT DISTINCT controller_id FROM {raw_table(TOPIC_INVENTORY)}) i
        LEFT JOIN holes h USING (controller_id), typical t"""
    return _finding(con, rows, {**_bounds(window), "lookback": lookback.start})


def quarantine_share(con: duckdb.DuckDBPyConnection, topic: str) -> Finding:
    """Messages of `topic` the loader consumed, and how many of them it quarantined (with their reasons).

    Consumed messages are the loader's ledger of stored messages (rows or quarantine), which counts each message
    once across topic incarnations and replays; rows loaded from Parquet files bypass Kafka and are not counted.
    """
    (consumed,) = con.execute(
        f"SELECT count(*) FROM {RAW}.{MESSAGES_TABLE} WHERE kafka_topic = $topic", {"topic": topic}
    ).fetchone()
    reasons = con.execute(
        f"""SELECT reason_code, count(*) AS messages, any_value(reason) AS example
            FROM {RAW}.{QUARANTINE_TABLE} WHERE kafka_topic = $topic GROUP BY ALL ORDER BY messages DESC""",
        {"topic": topic},
    ).to_arrow_table()
    quarantined = int(sum(reasons["messages"].to_pylist()))
    return Finding(int(consumed), quarantined, reasons.slice(0, SAMPLE_ROWS))


def schema_drift(con: duckdb.DuckDBPyConnection, topic: str) -> Finding:
    """Columns of `raw.<stream>` that are missing, extra (beyond Kafka provenance) or of another type than the
    contract's schema maps to in DuckDB."""
    con.register("contract_rows", TELEMETRY_SCHEMAS[topic].empty_table())
    try:
        expected = {name: kind for name, kind, *_ in con.execute("DESCRIBE SELECT * FROM contract_rows").fetchall()}
    finally:
        con.unregister("contract_rows")
    actual = {
        name: kind
        for name, kind, *_ in con.execute(f"DESCRIBE {raw_table(topic)}").fetchall()
        if name not in PROVENANCE_COLUMNS
    }
    columns = sorted(set(expected) | set(actual))
    report = pa.table(
        {
            "column": columns,
            "contract_type": [expected.get(c) for c in columns],
            "lake_type": [actual.get(c) for c in columns],
        }
    )
    drifted = report.filter(pa.array([expected.get(c) != actual.get(c) for c in columns], pa.bool_()))
    return Finding(len(columns), drifted.num_rows, drifted.slice(0, SAMPLE_ROWS))
