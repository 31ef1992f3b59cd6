"""Hourly and daily latency rollups: every controller's raw window histograms merged per hour, tier and operation,
and the hours merged again per day.

Quantiles come from the merged histograms (never averaged percentiles); a rollup keeps the histogram columns, so
days, racks or the whole fleet roll up again from it with the same code. A 28-day quantile per controller then
merges 28 daily rows per group instead of 672 hourly ones (or thousands of raw windows).
"""

from collections.abc import Iterable

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from ingest.contract import LATENCY_SCHEMA, TOPIC_LATENCY
from models.histogram import merge_table, with_quantiles
from models.rollup import rollup_stream
from pipelines.lib.assets import AFTER_LOAD, mart_asset, mart_check, publish
from pipelines.lib.marts import MARTS, in_background, mart_key, read_ahead, read_window
from pipelines.lib.metadata import chart, markdown_table, time_axis
from pipelines.lib.partitions import DAILY, Window
from pipelines.lib.quality import HISTOGRAM_CHECK, HISTOGRAM_CHECK_DESCRIPTION, histogram_consistency
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key, read_chunks, read_stream

NAME = "latency_rollups"
DAILY_NAME = "latency_rollups_daily"
HOUR_S = 3600
DAY_S = 24 * HOUR_S
QUANTILE_COLUMNS = ("p50_ns", "p99_ns", "p999_ns")


def hourly_rollup(latency: Iterable[pa.Table]) -> pa.Table:
    """Raw latency rows, a chunk at a time, merged per controller, tier, operation and hour: a large fleet's
    chunks are shorter than an hour (`read_chunks`), and an hour's pieces are merged again here."""
    return with_quantiles(rollup_stream(latency, every_s=HOUR_S))


def daily_rollup(hourly: Iterable[pa.Table]) -> pa.Table:
    """Hourly rollups, a chunk at a time, merged per controller, tier, operation and day."""
    return with_quantiles(rollup_stream(hourly, every_s=DAY_S))


def _cxl_reads(rows: pa.Table) -> pa.Table:
    return rows.filter(pc.and_(pc.equal(rows["memory_tier"], "cxl"), pc.equal(rows["op"], "read")))


def _describe(rows: pa.Table) -> dict[str, object]:
    """Worst controllers by read p99 over the whole window, and the fleet's merged quantiles hour by hour."""
    per_controller = with_quantiles(merge_table(_cxl_reads(rows), ["controller_id", "host"]))
    worst = per_controller.sort_by([("p99_ns", "descending")])
    fleet = with_quantiles(merge_table(rows, ["memory_tier", "op", "window_start"])).sort_by("window_start")

    def plot(ax: Axes) -> None:
        for tier in ("cxl", "local_dram"):
            reads = fleet.filter(pc.and_(pc.equal(fleet["memory_tier"], tier), pc.equal(fleet["op"], "read")))
            for column, style in zip(QUANTILE_COLUMNS, ("-", "--", ":"), strict=True):
                ax.plot(
                    reads["window_start"].to_pylist(),
                    reads[column].to_pylist(),
                    style,
                    marker=".",
                    label=f"{tier} {column[:-3]}",
                )
        ax.set_ylabel("read latency (ns)")
        time_axis(ax)
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)

    return {
        "worst_controllers": markdown_table(worst, ["controller_id", "host", "count", *QUANTILE_COLUMNS, "max_ns"]),
        "fleet_quantiles": chart("Fleet read latency from merged histograms", plot),
        "samples": int(pc.sum(rows["count"]).as_py() or 0),
    }


@mart_asset(
    NAME,
    group="latency",
    description="Per controller, tier and operation, each hour: merged latency histogram, exact SLO counters and "
    "quantiles (p50–p99.9) read from the merged buckets.",
    schema=hourly_rollup([LATENCY_SCHEMA.empty_table()]).schema,
    deps=[raw_key("latency")],
    automation_condition=AFTER_LOAD,
    check_specs=[mart_check(NAME, HISTOGRAM_CHECK, HISTOGRAM_CHECK_DESCRIPTION, blocking=True)],
)
def latency_rollups(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with (
        lake.connection(read_only=True) as con,
        in_background(con, lambda cursor: histogram_consistency(cursor, window)) as consistency,
    ):
        chunks = read_ahead(
            con, read_chunks(con, window), lambda cursor, chunk: read_stream(cursor, TOPIC_LATENCY, chunk)
        )
        rollups = hourly_rollup(chunks)
        check = consistency.result().result(HISTOGRAM_CHECK)
    return publish(
        lake,
        NAME,
        rollups,
        window,
        "window_start",
        describe=_describe,
        check_results=[check],
    )


@mart_asset(
    DAILY_NAME,
    group="latency",
    description="Per controller, tier and operation, each day: the day's hourly rollups merged (histogram, SLO "
    "counters, quantiles from the merged buckets), so quantiles over weeks or months read one row per day.",
    schema=daily_rollup([hourly_rollup([LATENCY_SCHEMA.empty_table()])]).schema,
    deps=[mart_key(NAME)],
    partitions_def=DAILY,
)
def latency_rollups_daily(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection(read_only=True) as con:
        hours = (read_window(con, f"{MARTS}.{NAME}", "window_start", chunk) for chunk in window.chunks())
        days = daily_rollup(hours)
    return publish(lake, DAILY_NAME, days, window, "window_start")
