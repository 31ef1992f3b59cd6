"""The report's files: report.html (self-contained, charts inline as base64 and also written alongside),
report.md (the summary), and CSV tables, all under <reports dir>/slo/<period label>/."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from pipelines.lib.metadata import cell, markdown_table
from pipelines.reports import charts
from pipelines.reports.figures import Figures

TAIL_COLUMNS = ("memory_tier", "op", "count", "p50_ns", "p99_ns", "p999_ns", "max_ns")
NOT_YET = "_not available: the marts behind this section have not been materialized yet_"


@dataclass(frozen=True)
class Section:
    heading: str
    chart: str  # PNG file name
    draw: Callable[[Figures], bytes]
    caption: str
    table: Callable[[Figures], pa.Table | None]  # None: the marts behind it are not materialized yet


SECTIONS = (
    Section("Error-budget burn-down", "slo-burn.png", charts.burn_down, "SLOs over the period", lambda f: f.summary),
    Section(
        "Tail latency against target",
        "latency.png",
        charts.latency,
        "Fleet latency over the period, from merged histograms",
        lambda f: f.latency.select(TAIL_COLUMNS),
    ),
    Section(
        "Worst controllers, hosts and racks by remaining budget",
        "worst.png",
        charts.worst,
        "Least budget left (pooled counts per host and rack)",
        lambda f: f.worst,
    ),
    Section(
        "Link drops and resets",
        "incidents.png",
        charts.incidents,
        "Counts, MTTR (mean recovery of recovered events) and MTTD (resets)",
        lambda f: f.incidents,
    ),
    Section("Health-score distribution", "health.png", charts.health, "Least healthy controllers", lambda f: f.health),
    Section("Anomalies and their reasons", "anomalies.png", charts.anomalies, "Anomalies", lambda f: f.anomalies),
    Section(
        "Early warning: controllers at risk",
        "early-warning.png",
        charts.early_warning,
        "Each controller's last risk of a UE, unplanned reset or link drop 15 min to 24 h ahead (alarm at the "
        "threshold chosen in training; expected lead time: median lead of the failures it announced in training), "
        "most at risk first, with the features pushing the risk up",
        lambda f: f.early_warning,
    ),
    Section(
        "Latency anomalies",
        "latency-anomalies.png",
        charts.latency_anomalies,
        "Episodes of consecutive hours in which the latency detector flagged a controller's or the fleet's p99 or "
        "p99.9 (from merged histograms; flag at the NAB-chosen threshold), the highest peak score first: start, "
        "peak, end (empty while open), the normal range at the start and the controller's latency SLO burn_1h at "
        "the peak",
        lambda f: f.latency_anomalies,
    ),
)
CSV_TABLES = {
    "compliance.csv": lambda f: f.compliance,
    "slo_summary.csv": lambda f: f.summary,
    "worst.csv": lambda f: f.worst,
    "latency.csv": lambda f: f.latency.select(TAIL_COLUMNS),
}


@dataclass(frozen=True)
class Report:
    directory: Path
    html: Path
    markdown: str
    summary: pa.Table
    charts: dict[str, bytes]  # file name -> PNG


def _intro(figures: Figures) -> str:
    return (
        f"Period {figures.window}. SLI = good events / events; burn rate = error ratio / error budget "
        "(1 = spending exactly the budget); budget remaining = 1 - burn rate over the period. "
        "Latency quantiles come from merged histograms."
    )


def _markdown(title: str, figures: Figures) -> str:
    parts = [f"# {title}", _intro(figures)]
    for section in SECTIONS:
        parts.append(f"## {section.heading}")
        table = section.table(figures)
        parts.append(f"**{section.caption}**")
        parts.append(NOT_YET if table is None else markdown_table(table, limit=20).value)
        parts.append(f"![{section.heading}]({section.chart})")
    return "\n\n".join(parts) + "\n"


def _cell(value: object) -> str:
    return "" if value is None else html.escape(str(cell(value)))


def _html_table(table: pa.Table | None, limit: int = 20) -> str:
    if table is None:
        return f"<p><em>{html.escape(NOT_YET.strip('_'))}</em></p>"
    if not table.num_rows:
        return "<p><em>no rows in this period</em></p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.column_names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>"
        for row in table.slice(0, limit).to_pylist()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}img{max-width:100%}"""


def _html(title: str, figures: Figures, pngs: dict[str, bytes]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(_intro(figures))}</p>",
    ]
    for section in SECTIONS:
        data = base64.b64encode(pngs[section.chart]).decode()
        parts.append(f"<section><h2>{html.escape(section.heading)}</h2>")
        parts.append(f"<img alt='{html.escape(section.heading)}' src='data:image/png;base64,{data}'>")
        parts.append(f"<h3>{html.escape(section.caption)}</h3>{_html_table(section.table(figures))}")
        parts.append("</section>")
    parts.append(f"<section><h2>SLO compliance per group</h2>{_html_table(figures.compliance, limit=50)}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(directory: Path, title: str, figures: Figures) -> Report:
    """Every file of one report into `directory` (created; existing files replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    pngs = {section.chart: section.draw(figures) for section in SECTIONS}
    for name, data in pngs.items():
        (directory / name).write_bytes(data)
    for name, table in CSV_TABLES.items():
        pa_csv.write_csv(table(figures), directory / name)
    markdown = _markdown(title, figures)
    (directory / "report.md").write_text(markdown)
    page = directory / "report.html"
    page.write_text(_html(title, figures, pngs))
    return Report(directory, page, markdown, figures.summary, pngs)
