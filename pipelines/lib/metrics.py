"""The lake's current state as Prometheus metric families: what `leo-fleet exporter` serves on every scrape.

Every value is read from the `sre` views and the loader's status rows at scrape time, so a Prometheus that scrapes
the exporter sees the same figures as `leo-fleet sql` and the SLO report (the exporter computes nothing of its
own). The SLO figures are as of the latest hour the marts hold: the hourly marts are the system of record, and
`leo_fleet_slo_as_of_timestamp_seconds` says how old that is.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import duckdb
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ingest.lake.raw_tables import STATUS_TABLE
from models.slo.spec import BURN_WINDOWS, Slo  # sre.slo_status has a burn_<window> column for each
from pipelines.lib.slos import load
from pipelines.lib.stream_status import read_streams
from pipelines.lib.telemetry import RAW

PREFIX = "leo_fleet"
HEALTH_LABELS = ("controller_id", "region", "rack", "host", "firmware_version")


def lake_metrics(con: duckdb.DuckDBPyConnection) -> Iterator[Metric]:
    """Every metric family, read from the lake behind `con` (the `sre` views installed)."""
    yield from _raw_tables(con)
    yield from _loaders(con)
    yield _controller_health(con)
    yield from _slos(con, load())
    yield _open_link_incidents(con)


def _raw_tables(con: duckdb.DuckDBPyConnection) -> Iterator[Metric]:
    rows = GaugeMetricFamily(f"{PREFIX}_raw_rows", "Rows stored in each raw lake table.", labels=["table"])
    watermark = GaugeMetricFamily(
        f"{PREFIX}_raw_watermark_timestamp_seconds",
        "Latest event time stored in each raw lake table (Unix seconds).",
        labels=["table"],
    )
    for stream in read_streams(con):
        rows.add_metric([stream.name], stream.rows)
        if stream.watermark is not None:
            watermark.add_metric([stream.name], stream.watermark.timestamp())
    yield rows
    yield watermark


def _loaders(con: duckdb.DuckDBPyConnection) -> Iterator[Metric]:
    """Each loader's latest status row: lag, throughput, quarantined messages, commit retries and conflicts, when it
    spoke."""
    latest = con.execute(
        f"""SELECT loader_id, epoch(ts), lag_total, rows_per_s, quarantined_total, commit_retries_total,
                   commit_conflicts_total
            FROM {RAW}.{STATUS_TABLE} QUALIFY row_number() OVER (PARTITION BY loader_id ORDER BY ts DESC) = 1
            ORDER BY loader_id"""
    ).fetchall()
    families = (
        GaugeMetricFamily(
            f"{PREFIX}_loader_status_timestamp_seconds", "When the loader last wrote a status row.", labels=["loader"]
        ),
        GaugeMetricFamily(f"{PREFIX}_loader_lag_messages", "Messages the loader has yet to read.", labels=["loader"]),
        GaugeMetricFamily(f"{PREFIX}_loader_rows_per_second", "The loader's recent throughput.", labels=["loader"]),
        CounterMetricFamily(
            f"{PREFIX}_loader_quarantined_messages", "Messages the loader put in quarantine.", labels=["loader"]
        ),
        CounterMetricFamily(
            f"{PREFIX}_loader_commit_retries",
            "Lake commits the loader retried because another writer committed first (docs/scale-out.md).",
            labels=["loader"],
        ),
        CounterMetricFamily(
            f"{PREFIX}_loader_commit_conflicts",
            "Of those, the commits run again whole after a conflict, batch written again.",
            labels=["loader"],
        ),
    )
    for loader_id, *values in latest:
        for family, value in zip(families, values, strict=True):
            family.add_metric([loader_id], float(value or 0))
    yield from families


def _controller_health(con: duckdb.DuckDBPyConnection) -> Metric:
    health = GaugeMetricFamily(
        f"{PREFIX}_controller_health",
        "Latest health score of each controller (0-100, higher is healthier; sre.fleet_health).",
        labels=list(HEALTH_LABELS),
    )
    rows = con.execute(f"SELECT {', '.join(HEALTH_LABELS)}, health FROM sre.fleet_health ORDER BY controller_id")
    for *labels, score in rows.fetchall():
        health.add_metric([label or "" for label in labels], score)
    return health


def _slos(con: duckdb.DuckDBPyConnection, slos: tuple[Slo, ...]) -> Iterator[Metric]:
    """Burn rates of the standard windows and the alert state at the latest hour, and the error budget left over
    each SLO's own period ending with that hour (sre.slo_budget, as the report computes it)."""
    labels = ["slo", "group"]
    as_of = GaugeMetricFamily(
        f"{PREFIX}_slo_as_of_timestamp_seconds", "Start of the latest hour the SLO marts hold.", labels=["slo"]
    )
    burn = GaugeMetricFamily(
        f"{PREFIX}_slo_burn_rate",
        "Error ratio over the window divided by the error budget (1 = spending exactly the budget).",
        labels=[*labels, "window"],
    )
    state = GaugeMetricFamily(
        f"{PREFIX}_slo_alert_state", "1 for the SLO group's alert state at the latest hour.", labels=[*labels, "state"]
    )
    remaining = GaugeMetricFamily(
        f"{PREFIX}_slo_error_budget_remaining",
        "Share of the error budget left over the SLO's period (1 = untouched, 0 = spent, below 0 = overspent).",
        labels=labels,
    )
    burn_columns = ", ".join(f"burn_{window}" for window in BURN_WINDOWS)
    for slo in slos:
        latest = con.execute("SELECT max(hour) FROM sre.slo_status WHERE slo = $slo", {"slo": slo.name}).fetchone()[0]
        if latest is None:
            continue
        as_of.add_metric([slo.name], latest.timestamp())
        rows = con.execute(
            f"SELECT group_key, state, {burn_columns} FROM sre.slo_status WHERE slo = $slo AND hour = $hour",
            {"slo": slo.name, "hour": latest},
        ).fetchall()
        for group, alert_state, *burn_rates in rows:
            for window, rate in zip(BURN_WINDOWS, burn_rates, strict=True):
                if rate is not None:
                    burn.add_metric([slo.name, group, window], rate)
            state.add_metric([slo.name, group, alert_state], 1)
        end = latest + timedelta(hours=1)
        budgets = con.execute(
            "SELECT group_key, budget_remaining FROM sre.slo_budget($start, $end) WHERE slo = $slo",
            {"start": end - timedelta(seconds=slo.period_s), "end": end, "slo": slo.name},
        ).fetchall()
        for group, left in budgets:
            if left is not None:
                remaining.add_metric([slo.name, group], left)
    yield from (as_of, burn, state, remaining)


def _open_link_incidents(con: duckdb.DuckDBPyConnection) -> Metric:
    family = GaugeMetricFamily(
        f"{PREFIX}_open_link_incidents",
        "Link incidents without an end yet (sre.link_events), per kind.",
        labels=["kind"],
    )
    for kind, count in con.execute(
        "SELECT kind, count(*) FROM sre.link_events WHERE end_ts IS NULL GROUP BY kind ORDER BY kind"
    ).fetchall():
        family.add_metric([kind], count)
    return family
