"""The report's charts, one PNG per section, drawn with the catalog's chart helpers (pipelines/lib/metadata.py).

A chart with nothing to show still renders, with a note saying so: a reader can tell "no events" from "missing".
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from pipelines.lib.metadata import draw, png, time_axis
from pipelines.reports.figures import Figures


def _by(table: pa.Table, column: str) -> list[tuple[str, pa.Table]]:
    return [(value, table.filter(pc.equal(table[column], value))) for value in pc.unique(table[column]).to_pylist()]


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this period", ha="center", va="center", transform=ax.transAxes)


def burn_down(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        for slo, rows in _by(figures.burn_down, "slo"):
            ax.plot(rows["hour_end"].to_pylist(), rows["budget_remaining"].to_pylist(), marker=".", label=slo)
        if figures.burn_down.num_rows:
            ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--", label="budget spent")
            ax.set_yscale("symlog", linthresh=1.0)
            time_axis(ax)
            ax.legend(fontsize=7)
        else:
            _empty(ax, "SLO events")
        ax.set_ylabel("budget remaining (1 = all)")

    return png(draw("Error-budget burn-down (per SLO, pooled over its groups)", plot))


def latency(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        rows_by_op = _by(figures.latency_hourly, "op")
        for op, rows in rows_by_op:
            hours = rows["window_start"].to_pylist()
            ax.plot(hours, rows["p99_ns"].to_pylist(), marker=".", label=f"{op} p99")
            ax.plot(hours, rows["p999_ns"].to_pylist(), marker=".", linestyle=":", label=f"{op} p99.9")
        for op, threshold in sorted(figures.targets.items()):
            ax.axhline(threshold, linewidth=0.8, linestyle="--", color="black", label=f"{op} SLO target")
        if rows_by_op:
            time_axis(ax)
        else:
            _empty(ax, "CXL latency histograms")
        ax.set_ylabel("ns")
        ax.legend(fontsize=7)

    return png(draw("CXL tail latency per hour (merged histograms) against the SLO target", plot))


def worst(figures: Figures) -> bytes:
    rows = figures.worst

    def plot(ax: Axes) -> None:
        if not rows.num_rows:
            _empty(ax, "SLO groups")
            return
        labels = [f"{r['level']} {r['name']} ({r['slo']})" for r in rows.to_pylist()]
        colors = {"controller": "tab:red", "host": "tab:orange", "rack": "tab:blue"}
        y = np.arange(rows.num_rows)
        ax.barh(
            y, rows["budget_remaining"].to_pylist(), color=[colors.get(v, "gray") for v in rows["level"].to_pylist()]
        )
        ax.set_yticks(y, labels, fontsize=6)
        ax.invert_yaxis()
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("error budget remaining (below 0 = overspent)")

    fig = draw("Worst controllers, hosts and racks by remaining budget", plot)
    fig.set_size_inches(7.0, max(2.6, 0.16 * rows.num_rows + 1.0))
    return png(fig)


def incidents(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        hours = figures.incident_hours
        if hours is None or not hours.num_rows:
            _empty(ax, "link drops, downgrades or resets")
            return
        for kind, rows in _by(hours, "kind"):
            ax.plot(rows["hour"].to_pylist(), rows["events"].to_pylist(), marker="o", linestyle="-", label=kind)
        ax.set_ylabel("events per hour")
        time_axis(ax)
        ax.legend(fontsize=7)

    return png(draw("Link drops, link downgrades and controller resets", plot))


def health(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        if figures.health is None or not figures.health.num_rows:
            _empty(ax, "health scores")
            return
        ax.hist(figures.health["health"].to_numpy(), bins=np.linspace(0, 100, 21), color="tab:green")
        ax.set_xlabel("health score at the end of the period (100 = healthy)")
        ax.set_ylabel("controllers")

    return png(draw("Health-score distribution", plot))


def anomalies(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        rows = figures.anomalies
        if rows is None or not rows.num_rows:
            _empty(ax, "anomalies")
            return
        counts = rows.group_by("kind", use_threads=False).aggregate([("subject", "count")]).sort_by("kind")
        ax.bar(counts["kind"].to_pylist(), counts["subject_count"].to_pylist(), color="tab:purple")
        ax.set_ylabel("anomalies")

    return png(draw("Anomalies by kind", plot))


def early_warning(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        hours = figures.early_warning_hours
        if hours is None or not hours.num_rows:
            _empty(ax, "early-warning risk (no model yet? see models/early_warning_model's metadata)")
            return
        ends = hours["window_end"].to_pylist()
        ax.plot(ends, hours["alarms"].to_pylist(), marker=".", color="tab:red", label="controllers in alarm")
        ax.bar(ends, hours["alerts"].to_pylist(), width=1 / 48, color="tab:orange", label="new alerts")
        ax.set_ylabel("controllers")
        time_axis(ax)
        ax.legend(fontsize=7)

    return png(draw("Early warning: controllers in alarm and new alerts per hour", plot))


def latency_anomalies(figures: Figures) -> bytes:
    """Each episode at its peak: when, how anomalous, and whose (the fleet's own series stand out)."""

    def plot(ax: Axes) -> None:
        rows = figures.latency_anomalies
        if rows is None or not rows.num_rows:
            _empty(ax, "latency anomaly episodes")
            return
        fleet = pc.equal(rows["controller_id"], "fleet")
        for label, mask, color in (("controllers", pc.invert(fleet), "tab:blue"), ("fleet", fleet, "tab:red")):
            shown = rows.filter(mask)
            ax.scatter(shown["peak_at"].to_pylist(), shown["peak_score"].to_pylist(), s=12, color=color, label=label)
        ax.set_ylabel("peak score (0.5 = flag threshold)")
        ax.set_ylim(0.45, 1.02)
        time_axis(ax)
        ax.legend(fontsize=7)

    return png(draw("Latency anomaly episodes (p99, p99.9) at their peak", plot))
