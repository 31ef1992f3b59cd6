"""Latency anomalies: every controller's and the fleet's hourly p99 and p99.9 (from the merged histograms of
`latency_rollups`) scored by the latency detector, with the episodes they form and the controller's SLO burn.

Hourly, not finer: the rollups mart already holds each controller's merged histogram per hour, so the asset reads
a small mart instead of scanning raw latency again (the largest raw table) for its window and a week of lookback
every hour; docs/architecture.md, "Latency anomalies". The detector is causal, so each run reads
models.latency_anomalies.LOOKBACK of history before its window and writes only the window's intervals.
"""

from datetime import timedelta
from itertools import chain

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from models.histogram import MERGED_COLUMNS
from models.latency_anomalies import (
    BURN_SCHEMA,
    FLEET,
    LOOKBACK,
    SCORED_SCHEMA,
    episodes,
    fleet_quantiles,
    quantile_series,
    score_since,
)
from models.slo.spec import LatencySli, Slo
from pipelines.defs.latency.rollups import NAME as ROLLUPS
from pipelines.defs.slo.slo_assets import COMPLIANCE
from pipelines.lib import slos as spec
from pipelines.lib.assets import mart_asset, publish
from pipelines.lib.marts import MARTS, mart_key, read_ahead, read_window
from pipelines.lib.metadata import chart, markdown_table, time_axis
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

NAME = "latency_anomalies"
TOP_EPISODES = 20
_READ_SPAN = timedelta(days=1)  # the fleet's histograms are read a day at a time: at most two days in memory
# Controllers read and scored at once: scoring holds several copies of its series (sorted, scored, joined), and a
# week of lookback of a 10,000-controller fleet is some 14 M series rows.
BATCH = 1000
_SERIES_COLUMNS = "controller_id, host, memory_tier, op, window_start, window_s, p99_ns, p999_ns"
_HISTOGRAM_COLUMNS = ", ".join(("memory_tier", "op", "window_start", "window_s", *MERGED_COLUMNS))


def controller_slo(slos: tuple[Slo, ...]) -> Slo | None:
    """The per-controller latency SLO whose burn the episodes carry (the first in slos.yaml), if any."""
    return next((s for s in slos if s.group_by == ("controller",) and isinstance(s.sli, LatencySli)), None)


def _fleet(cursor: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """The fleet's quantiles over `window`, from every controller's histograms."""
    return fleet_quantiles(read_window(cursor, f"{MARTS}.{ROLLUPS}", "window_start", window, _HISTOGRAM_COLUMNS))


def controller_batches(con: duckdb.DuckDBPyConnection, window: Window, size: int) -> list[tuple[str, str]]:
    """The first and last (in sort order) of each run of `size` controllers with rollups in `window`."""
    ids = read_window(con, f"{MARTS}.{ROLLUPS}", "window_start", window, "DISTINCT controller_id", order_by="1")
    names = ids["controller_id"].to_pylist()
    return [(names[i], names[min(i + size, len(names)) - 1]) for i in range(0, len(names), size)]


def _batch(
    cursor: duckdb.DuckDBPyConnection, history: Window, slo: Slo | None, batch: tuple[str, str]
) -> tuple[pa.Table, pa.Table]:
    """A batch of controllers' series and SLO burn over `history`."""
    first, last = batch
    within = {"first": first, "last": last}
    rollups = read_window(
        cursor,
        f"{MARTS}.{ROLLUPS}",
        "window_start",
        history,
        _SERIES_COLUMNS,
        where="controller_id BETWEEN $first AND $last",
        params=within,
    )
    if slo is None:
        return quantile_series(rollups), BURN_SCHEMA.empty_table()
    burn = read_window(
        cursor,
        f"{MARTS}.{COMPLIANCE}",
        "hour",
        history,
        "group_key AS controller_id, hour AS window_start, burn_1h",
        where="slo = $slo AND group_key BETWEEN $first AND $last",
        params={**within, "slo": slo.name},
    )
    return quantile_series(rollups), burn


def scored(con: duckdb.DuckDBPyConnection, window: Window, batch: int = BATCH) -> pa.Table:
    """SCORED_SCHEMA rows of `window`: `batch` controllers at a time over the detector's lookback, then the fleet."""
    history = window.widened(LOOKBACK)
    slo = controller_slo(spec.load())
    fleet = pa.concat_tables(read_ahead(con, history.chunks(_READ_SPAN), _fleet))
    batches = controller_batches(con, history, batch)
    controllers = read_ahead(con, batches, lambda cursor, first_last: _batch(cursor, history, slo, first_last))
    return score_since(chain(controllers, [(quantile_series(fleet), BURN_SCHEMA.empty_table())]), window.start)


def _describe(rows: pa.Table) -> dict[str, object]:
    """The window's worst episodes and the fleet's CXL read p99 against its normal range, flagged hours marked."""
    found = episodes(rows)
    fleet = rows.filter(
        pc.and_(
            pc.and_(pc.equal(rows["controller_id"], FLEET), pc.equal(rows["memory_tier"], "cxl")),
            pc.and_(pc.equal(rows["op"], "read"), pc.equal(rows["quantile"], "p99")),
        )
    ).sort_by("window_start")

    def plot(ax: Axes) -> None:
        times = fleet["window_start"].to_pylist()
        ax.plot(times, fleet["value_ns"].to_pylist(), marker=".", label="fleet CXL read p99")
        low = [v if v is not None else float("nan") for v in fleet["normal_low_ns"].to_pylist()]
        high = [v if v is not None else float("nan") for v in fleet["normal_high_ns"].to_pylist()]
        ax.fill_between(times, low, high, alpha=0.2, label="normal range")
        flagged = fleet.filter(fleet["anomalous"])
        ax.plot(flagged["window_start"].to_pylist(), flagged["value_ns"].to_pylist(), "rx", label="anomalous")
        ax.set_ylabel("latency (ns)")
        time_axis(ax)
        ax.legend(fontsize=7)

    return {
        "episodes": found.num_rows,
        "open_episodes": int(pc.sum(pc.is_null(found["end"])).as_py() or 0),
        "anomalous_intervals": int(pc.sum(rows["anomalous"]).as_py() or 0),
        "top_episodes": markdown_table(found, limit=TOP_EPISODES, empty="_no latency anomaly episodes in this window_"),
        "fleet_p99": chart("Fleet CXL read p99 and its normal range", plot),
        "lookback": str(LOOKBACK),
    }


@mart_asset(
    NAME,
    group="latency",
    description="Every controller's and the fleet's hourly p99 and p99.9 per tier and op (from merged histograms) "
    "scored by the latency detector: expected value, normal range, score, anomalous (score >= the NAB-chosen flag "
    "threshold), the start of the episode an anomalous hour belongs to, and the controller's latency SLO burn_1h "
    "then. Episodes: sre.latency_anomalies.",
    schema=SCORED_SCHEMA,
    deps=[mart_key(ROLLUPS), mart_key(COMPLIANCE)],
)
def latency_anomalies(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection(read_only=True) as con:
        rows = scored(con, window)
    return publish(lake, NAME, rows, window, "window_start", describe=_describe)
