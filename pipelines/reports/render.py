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
from tabulate import tabulate

from models.slo.spec import period_text
from pipelines.reports import charts, tables
from pipelines.reports.figures import Figures
from pipelines.reports.tables import Column, Shown, show

TAIL_COLUMNS = ("memory_tier", "op", "count", "p50_ns", "p99_ns", "p999_ns", "max_ns")
NOT_YET = "_not available: the marts behind this section have not been materialized yet_"
FIRST_ROWS = 10  # rows of each first-page table: the rest is in the CSV files and the sections below
SECTION_ROWS = 20
BURNING_NAMED = 3  # groups named in the overview's "burning it" cell


@dataclass(frozen=True)
class Answer:
    """A first-page table: one of the operator's questions answered for the period, most severe first."""

    id: str  # the HTML element id
    heading: str
    what: str  # what the rows are, for "top N of M"
    shown: Callable[[Figures], Shown | None]  # None: the marts behind it are not materialized yet


def _burning(figures: Figures) -> dict[str, str]:
    """Per SLO: how many groups burn it and the first few with where they sit."""
    named: dict[str, list[str]] = {}
    for row in (figures.burning or pa.table({})).to_pylist():
        place = ", ".join(v for v in (row["host"], row["rack"]) if v and v != row["group_key"])
        named.setdefault(row["slo"], []).append(f"{row['group_key']} ({place})" if place else row["group_key"])
    words = {}
    for row in figures.overview.to_pylist():
        count, listed = row["burning_group_count"], named.get(row["slo"], [])[:BURNING_NAMED]
        more = f"; {count - len(listed):,} more" if count > len(listed) else ""
        kind = "group" if row["group_by"] == "fleet" else row["group_by"]
        words[row["slo"]] = f"{count:,} of {row['groups']:,} {kind}s: {'; '.join(listed)}{more}" if count else "none"
    return words


def _overview(figures: Figures) -> Shown | None:
    if figures.overview is None:
        return None
    burning = _burning(figures)
    columns = [
        Column("SLO", lambda r: r["slo"]),
        Column("objective", lambda r: tables.objective(r["objective"])),
        Column("budget period", lambda r: period_text(r["window"])),
        Column("good event", lambda r: r["sli_text"]),
        Column("SLI", lambda r: tables.percent(r["sli"])),
        Column("budget remaining", tables.budget_pct),
        Column("alert", lambda r: tables.state(r["state"])),
        Column("firing since", lambda r: tables.moment(r["firing_since"])),
        Column("resolved at", lambda r: tables.moment(r["resolved_at"])),
        Column("groups burning it", lambda r: burning[r["slo"]]),
    ]
    return show(figures.overview, columns, limit=figures.overview.num_rows, marked=lambda r: bool(r["over_budget"]))


def _place(name: str) -> list[Column]:
    return [
        Column(name, lambda r: r["controller_id"]),
        Column("host", lambda r: tables.text(r["host"])),
        Column("rack", lambda r: tables.text(r["rack"])),
    ]


def _unhealthy(figures: Figures) -> Shown | None:
    if figures.health is None:
        return None
    columns = [
        *_place("controller"),
        tables.column(*tables.NAMED["health"], "health"),
        tables.column(*tables.NAMED["top_reasons"], "top_reasons"),
        Column("scored at", lambda r: tables.moment(r["window_end"])),
    ]
    return show(figures.health, columns, FIRST_ROWS, marked=lambda r: False)


def _link_drops(figures: Figures) -> Shown | None:
    if figures.link_drops is None:
        return None
    columns = [
        *_place("controller"),
        Column("link (PCI address)", lambda r: tables.text(r["link"])),
        Column("start", lambda r: tables.moment(r["start_ts"])),
        Column("outage (down to up)", lambda r: tables.seconds_or("still down")(r["outage_s"])),
        Column("recovery (to full speed and width)", lambda r: tables.seconds_or("not yet")(r["recovery_s"])),
        Column("cause (reported by the device)", lambda r: r["cause"] or "not reported"),
    ]
    return show(figures.link_drops, columns, FIRST_ROWS, marked=lambda r: r["outage_s"] is None)


def _silent_resets(figures: Figures) -> Shown | None:
    if figures.silent_resets is None:
        return None
    columns = [
        *_place("controller"),
        Column("reset at", lambda r: tables.moment(r["reset_ts"])),
        Column("detected at", lambda r: tables.moment(r["detected_ts"])),
        Column("detection delay", lambda r: tables.seconds(r["detection_delay_s"])),
        Column("evidence", lambda r: tables.evidence(r["evidence"])),
    ]
    return show(figures.silent_resets, columns, FIRST_ROWS, marked=lambda r: False)


ANSWERS = (
    Answer("slo-overview", "SLOs: error budget and alerts", "SLOs, alerting and overspent first", _overview),
    Answer("unhealthy", "Unhealthy controllers and why", "least healthy controllers", _unhealthy),
    Answer("link-drops", "Link drops", "link drops, longest outage first", _link_drops),
    Answer(
        "silent-resets", "Silent resets", "resets no controller_reset record reported, newest first", _silent_resets
    ),
)


def tails(figures: Figures) -> pa.Table:
    """CXL and local-DRAM quantiles side by side per op (the pilot's baseline), from the merged histograms."""
    rows = figures.latency.to_pylist()
    by = {(r["memory_tier"], r["op"]): r for r in rows}
    out = []
    for op in sorted({r["op"] for r in rows}):
        cxl, dram = by.get(("cxl", op), {}), by.get(("local_dram", op), {})
        for label, name in (("p50", "p50_ns"), ("p99", "p99_ns"), ("p99.9", "p999_ns"), ("max", "max_ns")):
            a, b = cxl.get(name), dram.get(name)
            ratio = a / b if a is not None and b else None
            out.append({"op": op, "quantile": label, "cxl_ns": a, "local_dram_ns": b, "cxl_to_dram": ratio})
    return pa.Table.from_pylist(
        out,
        schema=pa.schema(
            [
                ("op", pa.string()),
                ("quantile", pa.string()),
                ("cxl_ns", pa.float64()),
                ("local_dram_ns", pa.float64()),
                ("cxl_to_dram", pa.float64()),
            ]
        ),
    )


@dataclass(frozen=True)
class Section:
    heading: str
    chart: str  # PNG file name
    draw: Callable[[Figures], bytes]
    caption: str
    table: Callable[[Figures], pa.Table | None]  # None: the marts behind it are not materialized yet


SECTIONS = (
    Section(
        "Burn rates against their alert thresholds",
        "slo-burn-rates.png",
        charts.burn_pairs,
        "SLOs over the period, most overspent first",
        lambda f: f.summary,
    ),
    Section(
        "Error-budget burn-down",
        "slo-burn.png",
        charts.burn_down,
        "Groups burning each SLO at the end of the period, with where they sit",
        lambda f: f.burning,
    ),
    Section(
        "Tail latency: CXL against local DRAM",
        "latency.png",
        charts.latency,
        "Quantiles of the period's merged histograms, CXL beside the local-DRAM baseline",
        tails,
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
        "Counts, MTTR (mean recovery of recovered events) and MTTD (mean detection delay of resets)",
        lambda f: f.incidents,
    ),
    Section(
        "Link drop outage and recovery",
        "link-recovery.png",
        charts.link_recovery,
        "Link drops",
        lambda f: f.link_drops,
    ),
    Section("Health-score distribution", "health.png", charts.health, "Least healthy controllers", lambda f: f.health),
    Section(
        "Anomalies and their reasons",
        "anomalies.png",
        charts.anomalies,
        "Anomalies, newest first",
        lambda f: f.anomalies,
    ),
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
        f"Period {figures.window}. SLI: good events / all events. Error budget: the share of events allowed to be "
        "bad (100 % - objective); budget remaining: the part of it not yet spent over the SLO's rolling period (an "
        "overspent SLO or group is marked red). Burn rate: error ratio / error budget (1x = spending exactly the "
        "budget over the period). Health: 100 × (1 − risk of a failure in 24 h), lost in points per reason. "
        "Latency quantiles come from merged histograms. Times are UTC."
    )


def _shown(table: pa.Table | None, limit: int = SECTION_ROWS) -> Shown | None:
    return None if table is None else show(table, limit=limit)


def _markdown_table(shown: Shown | None, what: str) -> str:
    if shown is None:
        return NOT_YET
    if not shown.total:
        return f"**{what}**: none in this period"
    return f"**{shown.caption(what)}**\n\n" + tabulate(shown.rows, headers=shown.headers, tablefmt="pipe")


def _markdown(title: str, figures: Figures) -> str:
    parts = [f"# {title}", _intro(figures)]
    for answer in ANSWERS:
        parts += [f"## {answer.heading}", _markdown_table(answer.shown(figures), answer.what)]
    for section in SECTIONS:
        parts.append(f"## {section.heading}")
        parts.append(f"![{section.heading}]({section.chart})")
        parts.append(_markdown_table(_shown(section.table(figures)), section.caption))
    return "\n\n".join(parts) + "\n"


def _html_table(shown: Shown | None, what: str) -> str:
    if shown is None:
        return f"<p><em>{html.escape(NOT_YET.strip('_'))}</em></p>"
    if not shown.total:
        return f"<p class='caption'>{html.escape(what)}: none in this period</p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in shown.headers)
    body = "".join(
        ("<tr class='over'>" if marked else "<tr>") + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
        for row, marked in zip(shown.rows, shown.marked, strict=True)
    )
    caption = f"<p class='caption'>{html.escape(shown.caption(what))}</p>"
    return f"{caption}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:sans-serif;margin:1em 2em;max-width:1240px;font-size:14px}h1{font-size:22px;margin:0}
h2{font-size:17px;margin:14px 0 2px}p{margin:4px 0}.caption{font-weight:bold}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
th{background:#eee}tr.over td{background:#fdd}img{max-width:100%}"""


def _html(title: str, figures: Figures, pngs: dict[str, bytes]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(_intro(figures))}</p>",
    ]
    for answer in ANSWERS:
        parts.append(f"<section id='{answer.id}'><h2>{html.escape(answer.heading)}</h2>")
        parts.append(f"{_html_table(answer.shown(figures), answer.what)}</section>")
    for section in SECTIONS:
        data = base64.b64encode(pngs[section.chart]).decode()
        parts.append(f"<section><h2>{html.escape(section.heading)}</h2>")
        parts.append(f"<img alt='{html.escape(section.heading)}' src='data:image/png;base64,{data}'>")
        parts.append(f"{_html_table(_shown(section.table(figures)), section.caption)}</section>")
    compliance = _html_table(_shown(figures.compliance, 50), "SLO groups, least budget left first")
    parts.append(f"<section><h2>SLO compliance per group</h2>{compliance}</section>")
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
