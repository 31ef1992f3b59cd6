"""The report's charts, one PNG per section, drawn with the catalog's chart helpers (pipelines/lib/metadata.py).

Readable at the size the page shows them (their own pixel size): every label at least 10 px, axes labelled with
units, target lines coloured like what they bound and named on the chart, legends beside the plot (never over
points), log scales only where values span decades (burn rates). A chart with nothing to show still renders, with
a note saying so: a reader can tell "no events" from "missing".
"""

from __future__ import annotations

from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from pipelines.lib.metadata import CHART_DPI, draw, png, time_axis
from pipelines.reports.figures import Figures

LABEL_PT = 10 * 72 / CHART_DPI  # 10 px at the charts' resolution, shown at their own size
WIDTH_IN = 9.0
_READABLE = {
    "font.size": LABEL_PT,
    "axes.labelsize": LABEL_PT,
    "xtick.labelsize": LABEL_PT,
    "ytick.labelsize": LABEL_PT,
    "legend.fontsize": LABEL_PT,
}
_OPS = {"read": "tab:blue", "write": "tab:orange"}


def _by(table: pa.Table, column: str) -> list[tuple[str, pa.Table]]:
    return [(value, table.filter(pc.equal(table[column], value))) for value in pc.unique(table[column]).to_pylist()]


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this period", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _legend_beside(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _line_label(ax: Axes, y: float, text: str, color: str) -> None:
    """Name a horizontal target line on the chart, at its right end."""
    ax.axhline(y, color=color, linewidth=1.2, linestyle="--")
    ax.annotate(
        text,
        (1.0, y),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 3),
        textcoords="offset points",
        ha="right",
        va="bottom",
        color=color,
    )


def _chart(title: str, plot: Callable[[Axes], None], height_in: float = 3.2) -> bytes:
    with plt.rc_context(_READABLE):
        fig = draw(title, plot)
        fig.set_size_inches(WIDTH_IN, height_in)
        return png(fig)


def burn_down(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        for slo, rows in _by(figures.burn_down, "slo"):
            spent = [None if r is None else 100 * (1 - r) for r in rows["budget_remaining"].to_pylist()]
            ax.plot(rows["hour_end"].to_pylist(), spent, marker=".", label=slo)
        if figures.burn_down.num_rows:
            _line_label(ax, 100.0, "whole budget spent", "black")
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
            time_axis(ax)
            _legend_beside(ax)
        else:
            _empty(ax, "SLO events")
        ax.set_ylabel("error budget spent")
        ax.set_xlabel("time (UTC)")

    return _chart("Error budget of the period spent so far (per SLO, pooled over its groups)", plot)


def latency(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        rows_by_op = _by(figures.latency_hourly, "op")
        for op, rows in rows_by_op:
            hours = rows["window_start"].to_pylist()
            color = _OPS.get(op, "tab:gray")
            ax.plot(hours, rows["p99_ns"].to_pylist(), marker=".", color=color, label=f"{op} p99")
            ax.plot(hours, rows["p999_ns"].to_pylist(), marker="x", linestyle=":", color=color, label=f"{op} p99.9")
        thresholds: dict[int, list[str]] = {}
        for op, threshold in sorted(figures.targets.items()):
            thresholds.setdefault(threshold, []).append(op)
        for threshold, ops in thresholds.items():
            color = _OPS.get(ops[0], "tab:gray") if len(ops) == 1 else "tab:red"
            _line_label(ax, threshold, f"{' and '.join(ops)} SLO threshold {threshold:,} ns", color)
        if rows_by_op:
            time_axis(ax)
            _legend_beside(ax)
        else:
            _empty(ax, "CXL latency histograms")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("latency (ns)")
        ax.set_xlabel("hour (UTC)")

    return _chart("CXL tail latency per hour (merged histograms) against the SLO thresholds", plot)


def worst(figures: Figures) -> bytes:
    rows = figures.worst

    def plot(ax: Axes) -> None:
        if not rows.num_rows:
            _empty(ax, "SLO groups")
            return
        labels = [f"{r['level']} {r['name']} ({r['slo']})" for r in rows.to_pylist()]
        colors = {"controller": "tab:red", "host": "tab:orange", "rack": "tab:blue"}
        spent = np.array([100 * (1 - (r if r is not None else 1)) for r in rows["budget_remaining"].to_pylist()])
        y = np.arange(rows.num_rows)
        ax.barh(y, spent, color=[colors.get(v, "gray") for v in rows["level"].to_pylist()])
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.axvline(100.0, color="black", linewidth=1.2, linestyle="--")
        ax.text(100.0, -0.6, " whole budget", va="bottom")
        if spent.max(initial=0) > 1000:  # overspends span decades: a log axis keeps the smaller ones visible
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f} %"))
        ax.set_xlabel("error budget spent in the period (100 % = all of it)")

    return _chart("Worst controllers, hosts and racks by budget spent", plot, max(3.0, 0.22 * rows.num_rows + 1.2))


def incidents(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        hours = figures.incident_hours
        if hours is None or not hours.num_rows:
            _empty(ax, "link drops, downgrades or resets")
            return
        for kind, rows in _by(hours, "kind"):
            ax.plot(rows["hour"].to_pylist(), rows["events"].to_pylist(), marker="o", linestyle="-", label=kind)
        ax.set_ylabel("events per hour")
        ax.set_xlabel("hour (UTC)")
        time_axis(ax)
        _legend_beside(ax)

    return _chart("Link drops, link downgrades and controller resets", plot)


def link_recovery(figures: Figures) -> bytes:
    """The drops' outage and recovery times on an axis that spans the drops (not the longest downgrade)."""

    def plot(ax: Axes) -> None:
        drops = figures.link_drops
        if drops is None or not drops.num_rows:
            _empty(ax, "link drops")
            return
        series = {
            "outage (link down to up)": drops["outage_s"],
            "recovery (to full speed and width)": drops["recovery_s"],
        }
        values = [v for column in series.values() for v in column.to_pylist() if v is not None]
        bins = np.histogram_bin_edges(values or [0.0], bins=min(20, max(5, len(values) // 2)))
        for (label, column), color in zip(series.items(), ("tab:red", "tab:blue"), strict=True):
            shown = [v for v in column.to_pylist() if v is not None]
            ax.hist(shown, bins=bins, alpha=0.6, color=color, label=f"{label}: {len(shown)}")
        ax.set_xlabel("seconds")
        ax.set_ylabel("link drops")
        ax.yaxis.get_major_locator().set_params(integer=True)
        _legend_beside(ax)

    return _chart("Link drops: outage and recovery times", plot)


def burn_pairs(figures: Figures) -> bytes:
    """Per SLO, each multiwindow pair's burn (the lower of its long and short window's, which must reach the
    factor for the tier to fire) at every hour end, with the factor drawn in the pair's colour."""
    rows = figures.burn_pairs
    slos = _by(rows, "slo") if rows is not None else []
    with plt.rc_context(_READABLE):
        height = 2.2 * max(1, len(slos)) + 1.2
        fig, axes = plt.subplots(max(1, len(slos)), 1, figsize=(WIDTH_IN, height), sharex=True, squeeze=False)
        # Fixed margins (legends in the right 30 %): a constrained layout of many legends costs seconds per report.
        fig.subplots_adjust(left=0.09, right=0.7, top=1 - 0.75 / height, bottom=0.5 / height, hspace=0.3)
        if not slos:
            _empty(axes[0, 0], "SLO burn rates")
        for ax, (slo, mine) in zip(axes[:, 0], slos, strict=True):
            for (pair, pair_rows), color in zip(
                _by(mine, "pair"), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False
            ):
                first = pair_rows.to_pylist()[0]
                burn = np.fmin(
                    np.asarray(pair_rows["long_burn"].to_pylist(), float),
                    np.asarray(pair_rows["short_burn"].to_pylist(), float),
                )
                name = f"{first['severity']} {pair}"
                # A burn of 0 has no place on a log axis: left out, not drawn at an invented floor.
                shown = np.where(burn > 0, burn, np.nan)
                ax.plot(pair_rows["as_of"].to_pylist(), shown, color=color, marker=".", label=name)
                ax.axhline(
                    first["factor"],
                    color=color,
                    linestyle="--",
                    linewidth=1.0,
                    label=f"{name} fires at {first['factor']:g}×",
                )
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 0.5×, 1×, 2×, ...: labels in any range
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("burn rate")
            ax.set_title(slo, loc="left")
            ax.grid(alpha=0.3)
            _legend_beside(ax)
        time_axis(axes[-1, 0])
        axes[-1, 0].set_xlabel("hour end (UTC)")
        fig.suptitle("Burn rate of each multiwindow pair (lower of its two windows) against the factor that fires it")
        return png(fig)


def health(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        if figures.health is None or not figures.health.num_rows:
            _empty(ax, "health scores")
            return
        ax.hist(figures.health["health"].to_numpy(), bins=np.linspace(0, 100, 21), color="tab:green")
        ax.set_xlabel("health score at the end of the period (0-100, 100 = healthy)")
        ax.set_ylabel("controllers")

    return _chart("Health-score distribution", plot)


def anomalies(figures: Figures) -> bytes:
    def plot(ax: Axes) -> None:
        rows = figures.anomalies
        if rows is None or not rows.num_rows:
            _empty(ax, "anomalies")
            return
        counts = rows.group_by("kind", use_threads=False).aggregate([("subject", "count")]).sort_by("kind")
        ax.bar(counts["kind"].to_pylist(), counts["subject_count"].to_pylist(), color="tab:purple")
        ax.set_ylabel("anomalies")
        ax.set_xlabel("kind")

    return _chart("Anomalies by kind", plot)


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
        ax.set_xlabel("hour end (UTC)")
        time_axis(ax)
        _legend_beside(ax)

    return _chart("Early warning: controllers in alarm and new alerts per hour", plot)


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
        ax.set_xlabel("peak hour (UTC)")
        ax.set_ylim(0.45, 1.02)
        time_axis(ax)
        _legend_beside(ax)

    return _chart("Latency anomaly episodes (p99, p99.9) at their peak", plot)
