"""Every figure of the SLO report, read from the lake's `sre` views (views.sql) and merged histograms.

The SLO figures come from the same view and macro SREs query (sre.slo_status, sre.slo_budget), the latency
quantiles from models.histogram over the hourly rollups: ratios of summed event counts and quantiles of merged
histograms only, never means of percentages or percentiles. A section whose view is missing (its marts were not
materialized yet) is None, and the report says so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from models.histogram import merge_table, with_quantiles
from models.slo.burn import burn_rate
from models.slo.spec import LatencySli, Slo
from pipelines.lib import slos as spec
from pipelines.lib.marts import MARTS, read_window
from pipelines.lib.partitions import Window
from pipelines.sql import SCHEMA

WORST_ROWS = 10
LEVELS = ("controller", "host", "rack")
_CHUNK = timedelta(days=1)  # latency histograms are read a day at a time, so a month stays within memory


class MissingViews(LookupError):
    """The lake has no SLO views yet: materialize the marts and sre/views first (`leo-fleet demo` does)."""


@dataclass(frozen=True)
class Figures:
    window: Window
    summary: pa.Table  # per SLO, pooled over its groups
    compliance: pa.Table  # per SLO and group
    burn_down: pa.Table  # per SLO and hour end: budget remaining of the window so far
    worst: pa.Table  # per level (controller, host, rack): the groups with the least budget left
    latency: pa.Table  # per memory tier and op over the window: counts and quantiles of the merged histogram
    latency_hourly: pa.Table  # CXL, per op and hour: p99 and p99.9 of the merged histograms
    targets: dict[str, int]  # op -> latency SLO threshold (ns)
    incidents: pa.Table | None  # link drops, downgrades, resets: counts, MTTR, MTTD
    incident_hours: pa.Table | None
    health: pa.Table | None  # each controller's latest score in the window
    anomalies: pa.Table | None
    early_warning: pa.Table | None  # each controller's last early-warning risk of the window, most at risk first
    early_warning_hours: pa.Table | None  # per hour: controllers in alarm and new alerts
    latency_anomalies: pa.Table | None = None  # latency anomaly episodes overlapping the window, worst first


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    sql = "SELECT function_name FROM duckdb_functions() WHERE schema_name = $s AND database_name = current_database()"
    macros = {name for (name,) in con.execute(sql, {"s": SCHEMA}).fetchall()}
    sql = "SELECT view_name FROM duckdb_views() WHERE schema_name = $s AND database_name = current_database()"
    return macros | {name for (name,) in con.execute(sql, {"s": SCHEMA}).fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, window: Window, **params: object) -> pa.Table:
    return con.execute(sql, {"start": window.start, "end": window.end, **params}).to_arrow_table()


def summary(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Per SLO over all its groups: SLI, burn rate, budget remaining, groups out of budget, alert episodes.

    The pooled counts come from SQL; the burn rate from models.slo.burn, the formula's one owner."""
    sql = """
        WITH b AS (FROM sre.slo_budget($start, $end)),
        alerts AS (
            SELECT slo, count(*) FILTER (WHERE kind = 'page') AS pages,
                   count(*) FILTER (WHERE kind = 'ticket') AS tickets
            FROM sre.slo_breaches WHERE start > $start AND start <= $end GROUP BY ALL),
        pooled AS (
            SELECT slo, any_value(objective) AS objective, sum(events)::BIGINT AS events,
                   sum(bad_events)::BIGINT AS bad_events, any_value(error_budget) AS error_budget,
                   count(*) AS groups, count(*) FILTER (WHERE budget_remaining < 0) AS groups_over_budget
            FROM b GROUP BY slo)
        SELECT p.slo, p.objective, p.events, p.bad_events,
               CASE WHEN p.events > 0 THEN 1 - p.bad_events / p.events END AS sli, p.error_budget,
               p.groups, p.groups_over_budget, coalesce(a.pages, 0) AS pages, coalesce(a.tickets, 0) AS tickets
        FROM pooled p LEFT JOIN alerts a USING (slo) ORDER BY p.slo"""
    pooled = _rows(con, sql, window)
    burn = burn_rate(pooled["bad_events"].to_numpy(), pooled["events"].to_numpy(), pooled["error_budget"].to_numpy())
    at = pooled.column_names.index("error_budget")
    rates = pooled.remove_column(at).add_column(at, "burn_rate", pa.array(burn, pa.float64(), from_pandas=True))
    return rates.add_column(at + 1, "budget_remaining", pa.array(1 - burn, pa.float64(), from_pandas=True))


def compliance(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Per SLO and group: events, SLI, burn rate, budget remaining, whether it met its objective, alerting hours."""
    sql = """
        WITH alerting AS (
            SELECT slo, group_key, count(*) FILTER (WHERE state IN ('page', 'ticket')) AS alerting_hours
            FROM sre.slo_status WHERE hour >= $start AND hour < $end GROUP BY ALL)
        SELECT b.slo, b.group_key, b.objective, b.events, b.bad_events, b.sli, b.sli >= b.objective / 100 AS met,
               b.burn_rate, b.budget_remaining, coalesce(a.alerting_hours, 0) AS alerting_hours
        FROM sre.slo_budget($start, $end) b LEFT JOIN alerting a USING (slo, group_key)
        ORDER BY b.slo, b.budget_remaining NULLS FIRST, b.group_key"""
    return _rows(con, sql, window)


def burn_down(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Per SLO (pooled) at the end of each hour: 1 - bad events so far / the window's allowed bad events."""
    sql = """
        WITH h AS (
            SELECT slo, hour, sum(events) AS events, sum(bad_events) AS bad, any_value(error_budget) AS budget
            FROM sre.slo_status WHERE hour >= $start AND hour < $end GROUP BY slo, hour)
        SELECT slo, hour + INTERVAL 1 HOUR AS hour_end,
               1 - sre.burn_rate(sum(bad) OVER w, sum(events) OVER (PARTITION BY slo), budget) AS budget_remaining
        FROM h WINDOW w AS (PARTITION BY slo ORDER BY hour) ORDER BY slo, hour_end"""
    return _rows(con, sql, window)


def _dimensions(slos: tuple[Slo, ...]) -> tuple[list[str], list[str]]:
    """Each SLO with a single group_by dimension, and that dimension."""
    pairs = [(slo.name, slo.group_by[0]) for slo in slos if len(slo.group_by) == 1]
    return [name for name, _ in pairs], [dim for _, dim in pairs]


def worst(con: duckdb.DuckDBPyConnection, window: Window, slos: tuple[Slo, ...], limit: int = WORST_ROWS) -> pa.Table:
    """Controllers, hosts and racks with the least budget left per SLO level; a per-controller SLO's events are
    also pooled per host and per rack (summed counts), so a bad host shows up even if no single controller does."""
    names, dims = _dimensions(slos)
    sql = """
        WITH b AS (
            SELECT b.*, d.dim, i.host, i.rack
            FROM sre.slo_budget($start, $end) b
            JOIN (SELECT unnest($names::VARCHAR[]) AS slo, unnest($dims::VARCHAR[]) AS dim) d USING (slo)
            LEFT JOIN sre.inventory i ON d.dim = 'controller' AND i.controller_id = b.group_key),
        placed AS (
            SELECT slo, events, bad_events, error_budget, unnest(CASE WHEN dim = 'controller'
                THEN [{'level': 'controller', 'name': group_key}, {'level': 'host', 'name': host},
                      {'level': 'rack', 'name': rack}]
                ELSE [{'level': dim, 'name': group_key}] END) AS place
            FROM b),
        pooled AS (
            SELECT place.level AS level, place.name AS name, slo, sum(events)::BIGINT AS events,
                   sum(bad_events)::BIGINT AS bad_events,
                   1 - sre.burn_rate(sum(bad_events), sum(events), any_value(error_budget)) AS budget_remaining
            FROM placed WHERE place.name IS NOT NULL AND list_contains($levels::VARCHAR[], place.level)
            GROUP BY 1, 2, 3 HAVING sum(events) > 0)
        SELECT * FROM pooled
        QUALIFY row_number() OVER (PARTITION BY level ORDER BY budget_remaining, name) <= $limit
        ORDER BY list_position($levels::VARCHAR[], level), budget_remaining, name"""
    return _rows(con, sql, window, names=names, dims=dims, levels=list(LEVELS), limit=limit)


def latency(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[pa.Table, pa.Table]:
    """(window quantiles per tier and op, CXL quantiles per op and hour), from the merged hourly histograms."""
    hourly = [
        merge_table(
            read_window(con, f"{MARTS}.latency_rollups", "window_start", chunk), ["memory_tier", "op", "window_start"]
        )
        for chunk in window.chunks(_CHUNK)
    ]
    hours = pa.concat_tables(hourly)
    total = with_quantiles(merge_table(hours, ["memory_tier", "op"])).sort_by(
        [("memory_tier", "ascending"), ("op", "ascending")]
    )
    cxl = with_quantiles(hours.filter(pc.equal(hours["memory_tier"], "cxl")), (0.99, 0.999))
    return total, cxl.select(["op", "window_start", "p99_ns", "p999_ns"]).sort_by(
        [("op", "ascending"), ("window_start", "ascending")]
    )


def targets(slos: tuple[Slo, ...]) -> dict[str, int]:
    """The latency threshold each op's SLOs use (the strictest when several do)."""
    found: dict[str, int] = {}
    for slo in slos:
        if isinstance(slo.sli, LatencySli):
            found[slo.sli.op] = min(found.get(slo.sli.op, slo.sli.threshold_ns), slo.sli.threshold_ns)
    return found


def incidents(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[pa.Table, pa.Table]:
    """Link drops, downgrades and resets in the window: counts, recovered, MTTR (mean recovery_s of the recovered
    ones), MTTD (mean detection delay of resets) and silent resets; and their counts per hour."""
    events = """
        WITH e AS (
            SELECT CASE kind WHEN 'drop' THEN 'link drop' ELSE 'link ' || kind END AS kind, start_ts AS ts,
                   recovery_s, NULL::DOUBLE AS detection_s, false AS silent
            FROM sre.link_events WHERE kind IN ('drop', 'downgrade') AND start_ts >= $start AND start_ts < $end
            UNION ALL
            SELECT 'controller reset', reset_ts, NULL, detection_delay_s, silent
            FROM sre.controller_resets WHERE reset_ts >= $start AND reset_ts < $end)"""
    sql = f"""{events}
        SELECT kind, count(*) AS events, count(recovery_s) AS recovered, avg(recovery_s) AS mttr_s,
               avg(detection_s) AS mttd_s, count(*) FILTER (WHERE silent) AS silent
        FROM e GROUP BY kind ORDER BY kind"""
    hours = f"""{events}
        SELECT kind, time_bucket(INTERVAL 1 HOUR, ts) AS hour, count(*) AS events FROM e GROUP BY ALL ORDER BY hour"""
    return _rows(con, sql, window), _rows(con, hours, window)


def health(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Each controller's last health score of the window (scores are stamped with the end of their hour)."""
    sql = """
        SELECT controller_id, region, rack, window_end, health,
               array_to_string(
                   list_transform(top_reasons, r -> printf('%s %.1f points: %s', r.reason, r.points, r.why)), '; '
               ) AS reasons
        FROM sre.health_history WHERE window_end > $start AND window_end <= $end
        QUALIFY row_number() OVER (PARTITION BY controller_id ORDER BY window_end DESC) = 1
        ORDER BY health, controller_id"""
    return _rows(con, sql, window)


def anomalies(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    sql = """
        SELECT window_end, scope, subject, kind, reasons FROM sre.anomalies
        WHERE window_end > $start AND window_end <= $end ORDER BY window_end, subject"""
    return _rows(con, sql, window)


def early_warning(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[pa.Table, pa.Table]:
    """(each controller's last risk of the window with its alerts in the window, most at risk first; alarms and
    new alerts per hour)."""
    sql = """
        SELECT controller_id, rack, window_end, risk, rank, alarm,
               count(*) FILTER (WHERE alert) OVER (PARTITION BY controller_id) AS alerts, threshold,
               expected_lead_h, reasons
        FROM sre.early_warning WHERE window_end > $start AND window_end <= $end
        QUALIFY row_number() OVER (PARTITION BY controller_id ORDER BY window_end DESC) = 1
        ORDER BY risk DESC, controller_id"""
    hours = """
        SELECT window_end, count(*) FILTER (WHERE alarm) AS alarms, count(*) FILTER (WHERE alert) AS alerts
        FROM sre.early_warning WHERE window_end > $start AND window_end <= $end GROUP BY window_end
        ORDER BY window_end"""
    return _rows(con, sql, window), _rows(con, hours, window)


def latency_anomalies(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """Latency anomaly episodes that overlap the window (an open one overlaps it from its start on), the highest
    peak score first."""
    sql = """
        SELECT controller_id, rack, memory_tier, op, quantile, start, peak_at, "end", intervals, peak_score,
               peak_value_ns, normal_low_ns, normal_high_ns, burn_1h
        FROM sre.latency_anomalies WHERE start < $end AND ("end" IS NULL OR "end" > $start)
        ORDER BY peak_score DESC, start, controller_id, memory_tier, op, quantile"""
    return _rows(con, sql, window)


def _require_views(con: duckdb.DuckDBPyConnection) -> set[str]:
    present = _views(con)
    if not {"slo_status", "slo_budget", "slo_breaches", "inventory"} <= present:
        raise MissingViews("the lake has no sre views yet: materialize the marts and sre/views first")
    return present


def missing_data(con: duckdb.DuckDBPyConnection, window: Window) -> str | None:
    """Why `window` has nothing to report (every figure would be empty), or None when it has SLO data."""
    _require_views(con)
    if _rows(con, "SELECT 1 FROM sre.slo_status WHERE hour >= $start AND hour < $end LIMIT 1", window).num_rows:
        return None
    first, last = con.execute("SELECT min(hour), max(hour) FROM sre.slo_status").fetchone()
    if first is None:
        return "the lake's SLO marts are empty: materialize them first"
    first, last = (f"{hour.astimezone(UTC):%Y-%m-%d %H:%M}" for hour in (first, last))
    return f"the lake's SLO marts hold the hours from {first} to {last} UTC"


def collect(con: duckdb.DuckDBPyConnection, window: Window) -> Figures:
    """Every figure of the report for `window`."""
    present = _require_views(con)
    slos = spec.load()
    tails, hourly = latency(con, window)
    links_and_resets = incidents(con, window) if {"link_events", "controller_resets"} <= present else (None, None)
    warning = early_warning(con, window) if "early_warning" in present else (None, None)
    return Figures(
        window=window,
        summary=summary(con, window),
        compliance=compliance(con, window),
        burn_down=burn_down(con, window),
        worst=worst(con, window, slos),
        latency=tails,
        latency_hourly=hourly,
        targets=targets(slos),
        incidents=links_and_resets[0],
        incident_hours=links_and_resets[1],
        health=health(con, window) if "health_history" in present else None,
        anomalies=anomalies(con, window) if "anomalies" in present else None,
        early_warning=warning[0],
        early_warning_hours=warning[1],
        latency_anomalies=latency_anomalies(con, window) if "latency_anomalies" in present else None,
    )
