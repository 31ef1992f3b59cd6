"""The pilot report: CXL-expanded hosts against local-DRAM baselines, per workload class (docs/pilot.md).

Read from the lake's `sre.pilot_jobs` / `sre.pilot_summary` views, the hourly latency histograms and the reset and
link-drop views; statistics and cost from models.pilot with pilot.yaml's settings; recovery objectives from
slos.yaml. Tail latency is read from merged histograms (never averaged percentiles): the CXL cohort's CXL memory
against the baseline cohort's local DRAM. Written under <reports dir>/pilot/: report.html (charts inline), report.md,
the charts as PNG and the tables as CSV.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from matplotlib.axes import Axes

from models.histogram import merge_table, with_quantiles
from models.pilot import (
    NO_DIFFERENCE,
    Comparison,
    PilotSpec,
    PriceScenario,
    break_even_premium,
    cost_per_gb_hour,
    cost_per_job,
    pooled_ratio,
    simultaneous,
)
from pipelines.lib.marts import MARTS
from pipelines.reports.charts import _chart, _empty, _legend_beside
from pipelines.reports.render import _STYLE, _html_table, _markdown_table
from pipelines.reports.tables import show

TAIL_QUANTILES = (0.5, 0.99, 0.999)
PILOT_DIR = "pilot"  # under the reports directory
PILOT_HTML = f"{PILOT_DIR}/report.html"
TIERS = {"cxl": "CXL-expanded", "local_dram": "baseline (local DRAM)"}


class NoPilot(LookupError):
    """The lake holds no pilot jobs (or no `sre.pilot_*` views yet): nothing to report."""


@dataclass(frozen=True)
class PilotFigures:
    summary: pa.Table  # sre.pilot_summary
    comparisons: pa.Table  # per workload and metric: CXL, baseline, ratio, interval, jobs, verdict
    capacity: pa.Table  # per workload: memory and completed jobs per host, CXL over baseline
    lost: pa.Table  # per workload and tier: jobs killed by resets and link drops, hours lost
    tails: pa.Table | None  # per workload, tier and op: quantiles of merged histograms (None: no latency rollups)
    recovery: pa.Table | None  # per objective: events, met, median, worst (None: no reset/link views)
    costs: pa.Table  # per workload and scenario: cost per job and per GB-hour, break-even premium


def _table(con: duckdb.DuckDBPyConnection, sql: str, **params: object) -> pa.Table:
    return con.execute(sql, params).to_arrow_table()


def comparisons(con: duckdb.DuckDBPyConnection, spec: PilotSpec) -> pa.Table:
    """Time to solution (mean of completed jobs) and throughput (completed jobs per host-hour) per class, CXL over
    baseline, each with a cluster-bootstrap interval over hosts (models.pilot.pooled_ratio), simultaneous over all
    of them at pilot.yaml's confidence."""
    hosts = _table(
        con,
        """WITH span AS (SELECT epoch(max(end_ts) - min(start_ts)) / 3600 AS hours FROM sre.pilot_jobs)
           SELECT workload, memory_tier, host, coalesce(sum(duration_s) FILTER (WHERE completed), 0) AS time_s,
                  count(*) FILTER (WHERE completed) AS completed, any_value(span.hours) AS hours
           FROM sre.pilot_jobs, span GROUP BY ALL ORDER BY workload, memory_tier, host""",
    )
    rng = np.random.default_rng(spec.seed)
    workloads = sorted(set(hosts["workload"].to_pylist()))
    measures = {
        "time to solution (s)": ("time_s", "completed", "slower", "faster"),
        "throughput (completed jobs per host-hour)": ("completed", "hours", "higher", "lower"),
    }
    each = dataclasses.replace(spec, confidence=simultaneous(spec.confidence, len(workloads) * len(measures)))
    rows = []
    for workload in workloads:
        cohort = {
            tier: hosts.filter(pc.and_(pc.equal(hosts["workload"], workload), pc.equal(hosts["memory_tier"], tier)))
            for tier in TIERS
        }
        done = {tier: int(pc.sum(rows_["completed"]).as_py() or 0) for tier, rows_ in cohort.items()}
        jobs = (done["cxl"], done["local_dram"])
        for metric, (numerator, denominator, above, below) in measures.items():
            parts = [
                (cohort[tier][numerator].to_numpy().astype(float), cohort[tier][denominator].to_numpy().astype(float))
                for tier in TIERS
            ]
            found = pooled_ratio(parts[0], parts[1], jobs, each, rng)
            rows.append(_comparison_row(workload, metric, found, found.verdict(above, below)))
    return pa.Table.from_pylist(rows)


def _comparison_row(workload: str, metric: str, found: Comparison, verdict: str) -> dict:
    return {
        "workload": workload,
        "metric": metric,
        "cxl": found.cxl,
        "baseline": found.baseline,
        "cxl_over_baseline": found.ratio,
        "interval_low": found.low,
        "interval_high": found.high,
        "cxl_jobs": found.cxl_jobs,
        "baseline_jobs": found.baseline_jobs,
        "verdict": verdict,
    }


def _summary_row(summary: pa.Table, workload: str, tier: str) -> dict:
    rows = summary.filter(pc.and_(pc.equal(summary["workload"], workload), pc.equal(summary["memory_tier"], tier)))
    return rows.to_pylist()[0] if rows.num_rows else {}


def _workloads(summary: pa.Table) -> list[str]:
    return sorted(set(summary["workload"].to_pylist()))


def capacity(summary: pa.Table) -> pa.Table:
    """Memory per host and completed jobs per host, CXL-expanded over baseline, per class."""
    rows = []
    for workload in _workloads(summary):
        cxl, base = _summary_row(summary, workload, "cxl"), _summary_row(summary, workload, "local_dram")
        if not cxl or not base:
            continue
        per_host = {tier: row["completed"] / row["hosts"] for tier, row in (("cxl", cxl), ("base", base))}
        rows.append(
            {
                "workload": workload,
                "cxl_memory_per_host_gb": cxl["memory_per_host_gb"],
                "baseline_memory_per_host_gb": base["memory_per_host_gb"],
                "memory_uplift": cxl["memory_per_host_gb"] / base["memory_per_host_gb"],
                "cxl_jobs_per_host": per_host["cxl"],
                "baseline_jobs_per_host": per_host["base"],
                "jobs_per_host_uplift": per_host["cxl"] / per_host["base"] if per_host["base"] else None,
            }
        )
    return pa.Table.from_pylist(rows)


def lost(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Jobs killed when their host's memory went away, and the job-hours lost with them, per class and tier."""
    return _table(
        con,
        """SELECT workload, memory_tier, count(*) AS jobs,
                  count(*) FILTER (WHERE outcome = 'killed_reset') AS killed_by_reset,
                  count(*) FILTER (WHERE outcome = 'killed_link_drop') AS killed_by_link_drop,
                  count(*) FILTER (WHERE lost) / count(*) AS lost_share,
                  coalesce(sum(duration_s) FILTER (WHERE lost), 0) / 3600 AS job_hours_lost_h
           FROM sre.pilot_jobs GROUP BY ALL ORDER BY workload, memory_tier""",
    )


def tails(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """p50, p99 and p99.9 per class, cohort and op from the merged hourly histograms: each cohort's own memory
    (the CXL hosts' CXL controllers, the baseline hosts' local DRAM)."""
    rows = _table(
        con,
        f"""SELECT c.workload, l.* FROM {MARTS}.latency_rollups l
            JOIN (SELECT DISTINCT host, memory_tier, workload FROM sre.pilot_jobs) c
              ON l.host = c.host AND l.memory_tier = c.memory_tier""",
    )
    merged = with_quantiles(merge_table(rows, ["workload", "memory_tier", "op"]), TAIL_QUANTILES)
    return merged.select(["workload", "memory_tier", "op", "count", "p50_ns", "p99_ns", "p999_ns"]).sort_by(
        [("workload", "ascending"), ("op", "ascending"), ("memory_tier", "ascending")]
    )


def recovery(con: duckdb.DuckDBPyConnection, objectives: dict[str, float]) -> pa.Table:
    """The CXL cohort's reset detection delays and link-drop recoveries against slos.yaml's recovery objectives:
    events, how many met it, the median and the worst (an unrecovered drop counts as missed)."""
    sql = """
        WITH cxl_hosts AS (SELECT DISTINCT host FROM sre.pilot_jobs WHERE memory_tier = 'cxl'),
        e AS (
            SELECT 'reset_detection_s' AS recovery_objective, detection_delay_s AS seconds FROM sre.controller_resets
            WHERE host IN (FROM cxl_hosts)
            UNION ALL
            SELECT 'link_recovery_s', recovery_s FROM sre.link_events WHERE kind = 'drop' AND host IN (FROM cxl_hosts))
        SELECT o.recovery_objective, o.target_s, count(e.recovery_objective) AS events,
               count(*) FILTER (WHERE e.seconds <= o.target_s) AS met,
               count(e.recovery_objective) - count(e.seconds) AS unrecovered,
               median(e.seconds) AS median_s, max(e.seconds) AS worst_s
        FROM (SELECT unnest($names) AS recovery_objective, unnest($targets) AS target_s) o
        LEFT JOIN e USING (recovery_objective) GROUP BY ALL ORDER BY o.recovery_objective"""
    return _table(con, sql, names=list(objectives), targets=list(objectives.values()))


def costs(summary: pa.Table, scenarios: tuple[PriceScenario, ...]) -> pa.Table:
    """Cost per completed job and per GB-hour used, CXL against baseline, per class and price scenario, with the
    break-even CXL premium. A rollback scenario prices the CXL hosts at their CXL price running like the baseline
    (host-hours, jobs and GB-hours of the baseline cohort per host)."""
    rows = []
    for workload in _workloads(summary):
        cxl, base = _summary_row(summary, workload, "cxl"), _summary_row(summary, workload, "local_dram")
        if not cxl or not base:
            continue
        for scenario in scenarios:
            runs_like = base if scenario.rollback else cxl
            baseline_job = cost_per_job(base["host_hours"], scenario.instance_per_hour, base["completed"])
            cxl_job = cost_per_job(runs_like["host_hours"], scenario.cxl_host_per_hour(), runs_like["completed"])
            rows.append(
                {
                    "workload": workload,
                    "scenario": scenario.name,
                    "cxl_usd_per_job": cxl_job,
                    "baseline_usd_per_job": baseline_job,
                    "cxl_usd_per_gb_hour": cost_per_gb_hour(
                        runs_like["host_hours"], scenario.cxl_host_per_hour(), runs_like["gb_hours"]
                    ),
                    "baseline_usd_per_gb_hour": cost_per_gb_hour(
                        base["host_hours"], scenario.instance_per_hour, base["gb_hours"]
                    ),
                    "cxl_premium": scenario.cxl_premium,
                    "break_even_premium": break_even_premium(
                        scenario, baseline_job, runs_like["completed"] / runs_like["host_hours"]
                    ),
                    "cheaper": "CXL" if cxl_job < baseline_job else "baseline",
                }
            )
    return pa.Table.from_pylist(rows)


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    sql = "SELECT view_name FROM duckdb_views() WHERE schema_name = 'sre' AND database_name = current_database()"
    return {name for (name,) in con.execute(sql).fetchall()}


def _has_mart(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = (
        "SELECT 1 FROM duckdb_tables() WHERE schema_name = $s AND table_name = $t "
        "AND database_name = current_database()"
    )
    return con.execute(sql, {"s": MARTS, "t": name}).fetchone() is not None


def collect(con: duckdb.DuckDBPyConnection, spec: PilotSpec, objectives: dict[str, float]) -> PilotFigures:
    """Every figure of the pilot report; NoPilot when the lake has no pilot jobs to compare."""
    views = _views(con)
    if not {"pilot_jobs", "pilot_summary"} <= views:
        raise NoPilot("the lake has no sre.pilot_jobs view yet: load telemetry with jobs and materialize sre/views")
    summary = _table(con, "FROM sre.pilot_summary")
    if not summary.num_rows:
        raise NoPilot("raw.jobs holds no pilot jobs")
    return PilotFigures(
        summary=summary,
        comparisons=comparisons(con, spec),
        capacity=capacity(summary),
        lost=lost(con),
        tails=tails(con) if _has_mart(con, "latency_rollups") else None,
        recovery=recovery(con, objectives) if {"controller_resets", "link_events"} <= views else None,
        costs=costs(summary, spec.scenarios),
    )


def ratio_chart(figures: PilotFigures) -> bytes:
    """CXL over baseline per class and metric, with the bootstrap interval; 1 is no difference."""
    rows = figures.comparisons.to_pylist()

    def plot(ax: Axes) -> None:
        for offset, (metric, color) in enumerate(zip(_metrics(rows), ("tab:blue", "tab:orange"), strict=False)):
            mine = [r for r in rows if r["metric"] == metric]
            y = np.arange(len(mine)) + 0.2 * offset
            x = np.array([r["cxl_over_baseline"] for r in mine], float)
            errors = np.array(
                [
                    [r["cxl_over_baseline"] - r["interval_low"], r["interval_high"] - r["cxl_over_baseline"]]
                    for r in mine
                ],
                float,
            ).T
            ax.errorbar(x, y, xerr=errors, fmt="o", color=color, capsize=4, label=metric)
        workloads = sorted({r["workload"] for r in rows})
        ax.set_yticks(np.arange(len(workloads)) + 0.1, workloads)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("CXL ÷ baseline (ratio; 1 = no difference), with its interval")
        ax.set_ylabel("workload class")
        _legend_beside(ax)

    return _chart("CXL against baseline: time to solution and throughput", plot)


def _metrics(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["metric"] for r in rows))


def tails_chart(figures: PilotFigures) -> bytes:
    """Read p50, p99 and p99.9 per class: the CXL cohort's CXL memory beside the baseline cohort's local DRAM."""

    def plot(ax: Axes) -> None:
        if figures.tails is None or not figures.tails.num_rows:
            _empty(ax, "latency histograms of pilot hosts")
            return
        reads = figures.tails.filter(pc.equal(figures.tails["op"], "read")).to_pylist()
        labels = [f"{r['workload']} {q}" for r in reads if r["memory_tier"] == "cxl" for q in ("p50", "p99", "p99.9")]
        for shift, tier in ((-0.2, "cxl"), (0.2, "local_dram")):
            values = [r[c] for r in reads if r["memory_tier"] == tier for c in ("p50_ns", "p99_ns", "p999_ns")]
            ax.bar(np.arange(len(values)) + shift, values, width=0.4, label=TIERS[tier])
        ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("read latency (ns, log scale)")
        ax.set_xlabel("workload class and quantile")
        _legend_beside(ax)

    return _chart("Tail latency of reads: CXL cohort against baseline cohort", plot, height_in=3.8)


def cost_chart(figures: PilotFigures) -> bytes:
    """Cost per completed job per class and scenario, CXL beside baseline."""
    rows = figures.costs.to_pylist()

    def plot(ax: Axes) -> None:
        if not rows:
            _empty(ax, "classes with both cohorts")
            return
        labels = [f"{r['workload']}\n{r['scenario']}" for r in rows]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["cxl_usd_per_job"] for r in rows], width=0.4, label=TIERS["cxl"])
        ax.bar(x + 0.2, [r["baseline_usd_per_job"] for r in rows], width=0.4, label=TIERS["local_dram"])
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.set_ylabel("cost per completed job (USD)")
        ax.set_xlabel("workload class and price scenario (pilot.yaml)")
        _legend_beside(ax)

    return _chart("Cost per completed job under each price scenario", plot, height_in=4.2)


@dataclass(frozen=True)
class _Section:
    id: str
    heading: str
    chart: str | None  # PNG file name
    table: str  # the PilotFigures attribute shown (and written as <table>.csv)
    caption: str


SECTIONS = (
    _Section(
        "verdicts",
        "Time to solution and throughput: CXL against baseline",
        "pilot-ratios.png",
        "comparisons",
        "Per class: CXL and baseline, their ratio with its bootstrap interval (hosts resampled) and the completed jobs "
        "behind each side; an interval that contains 1 is no difference shown",
    ),
    _Section(
        "tails",
        "Tail latency: CXL memory against local DRAM",
        "pilot-tails.png",
        "tails",
        "Quantiles of the merged hourly histograms of each cohort's own memory, per class and op",
    ),
    _Section("capacity", "Capacity uplift", None, "capacity", "Memory and completed jobs per host, CXL over baseline"),
    _Section(
        "lost", "Jobs lost to resets and link drops", None, "lost", "Jobs killed when their host's memory went away"
    ),
    _Section(
        "recovery",
        "Detection and recovery against the recovery objectives",
        None,
        "recovery",
        "The CXL cohort's resets and link drops against slos.yaml's recovery objectives (target_s)",
    ),
    _Section(
        "cost",
        "Cost per job and per GB-hour, break-even and rollback",
        "pilot-cost.png",
        "costs",
        "Per class and price scenario (pilot.yaml): cost per completed job and per GB-hour used, the CXL premium at "
        "which CXL breaks even; the rollback scenario keeps the CXL price with baseline performance",
    ),
)
CHARTS = {"pilot-ratios.png": ratio_chart, "pilot-tails.png": tails_chart, "pilot-cost.png": cost_chart}


@dataclass(frozen=True)
class PilotReport:
    directory: Path
    html: Path
    markdown: str
    charts: dict[str, bytes]
    figures: PilotFigures


def _intro(figures: PilotFigures, spec: PilotSpec) -> str:
    hosts = pc.sum(figures.summary["hosts"]).as_py()
    jobs = pc.sum(figures.summary["jobs"]).as_py()
    return (
        f"Paired A/B cohorts: {hosts:,} hosts (half CXL-expanded, half local DRAM only), {jobs:,} jobs. Intervals: "
        f"simultaneous {spec.confidence:.0%} percentile intervals (Bonferroni over the comparisons) of "
        f"{spec.resamples:,} bootstrap resamples of each cohort's hosts "
        f'(seed {spec.seed}); a ratio whose interval contains 1 is reported as "{NO_DIFFERENCE}". Latency '
        "quantiles come from merged histograms. Times are UTC, prices USD (pilot.yaml)."
    )


def write_pilot_report(directory: Path, figures: PilotFigures, spec: PilotSpec) -> PilotReport:
    """Every file of the pilot report into `directory` (created; existing files replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    pngs = {name: draw(figures) for name, draw in CHARTS.items()}
    for name, data in pngs.items():
        (directory / name).write_bytes(data)
    title = "CXL pilot report"
    md = [f"# {title}", _intro(figures, spec)]
    page = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1><p>{html.escape(_intro(figures, spec))}</p>",
    ]
    for section in SECTIONS:
        table = getattr(figures, section.table)
        if table is not None:
            pa_csv.write_csv(table, directory / f"{section.table}.csv")
        shown = None if table is None else show(table, limit=max(table.num_rows, 1))
        md.append(f"## {section.heading}")
        page.append(f"<section id='{section.id}'><h2>{html.escape(section.heading)}</h2>")
        if section.chart:
            md.append(f"![{section.heading}]({section.chart})")
            data = base64.b64encode(pngs[section.chart]).decode()
            page.append(f"<img alt='{html.escape(section.heading)}' src='data:image/png;base64,{data}'>")
        md.append(_markdown_table(shown, section.caption))
        page.append(f"{_html_table(shown, section.caption)}</section>")
    page.append("</body></html>")
    markdown = "\n\n".join(md) + "\n"
    (directory / "report.md").write_text(markdown)
    html_file = directory / Path(PILOT_HTML).name
    html_file.write_text("\n".join(page))
    return PilotReport(directory, html_file, markdown, pngs, figures)


def pilot_report(
    con: duckdb.DuckDBPyConnection, reports_dir: Path, spec: PilotSpec, objectives: dict[str, float]
) -> PilotReport:
    """Read the pilot's figures from the lake and write the report under <reports dir>/pilot/."""
    figures = collect(con, spec, objectives)
    return write_pilot_report(reports_dir / PILOT_DIR, figures, spec)
