"""The SLO overview mart: per SLO at every hour end, objective, rolling period, SLI, budget remaining, alert state
with firing since and resolved at, each multiwindow pair's burns against its factor, and the groups burning it.

What Grafana SLO, Sloth and Pyrra show on their first page, as a table the `sre` views (sre.slo_overview) and the
report's first page read. Computed by models.slo.overview from the compliance and breach marts over the longest
rolling period before the window: ratios of summed counts only.
"""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from models.slo.overview import OVERVIEW_SCHEMA, overview
from pipelines.defs.slo.slo_assets import BREACHES, COMPLIANCE, GROUP, hour_ends
from pipelines.lib import slos as spec
from pipelines.lib.assets import mart_asset, publish
from pipelines.lib.marts import MARTS, mart_key, read_window
from pipelines.lib.metadata import markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

OVERVIEW = "slo_overview"


def _describe(rows: pa.Table) -> dict[str, object]:
    latest = rows.filter(pc.equal(rows["as_of"], pc.max(rows["as_of"]))) if rows.num_rows else rows
    shown = ["slo", "as_of", "objective", "window", "sli", "budget_remaining_pct", "over_budget", "state"]
    return {
        "latest": markdown_table(latest, [*shown, "firing_since", "resolved_at", "burning_group_count"], limit=20),
        "hours_alerting": int(pc.sum(pc.is_in(rows["state"], pa.array(["ticket", "page"]))).as_py() or 0),
    }


@mart_asset(
    OVERVIEW,
    group=GROUP,
    description="Per SLO at every hour end: objective, rolling period (7, 28 or 30 days), SLI in words and as a "
    "ratio, error budget spent and remaining (percent, never below 0; over_budget marks an overspent one), groups "
    "over budget, alert state with firing_since and resolved_at, each multiwindow pair's long and short burn "
    "against its factor (tiers), and the groups burning it (alerting first, then over budget).",
    schema=OVERVIEW_SCHEMA,
    deps=[mart_key(COMPLIANCE), mart_key(BREACHES)],
)
def slo_overview(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    slos = spec.load()
    history = window.widened(spec.longest_period(slos))
    with lake.connection() as con:
        hours = read_window(con, f"{MARTS}.{COMPLIANCE}", "hour", history)
        episodes = read_window(con, f"{MARTS}.{BREACHES}", "start", history, closed="right")
        ends = hour_ends(window)
        parts = [
            overview(slo, hours.filter(mine), episodes.filter(pc.equal(episodes["slo"], slo.name)), ends)
            for slo in slos
            if pc.any(mine := pc.equal(hours["slo"], slo.name)).as_py()
        ]
        rows = pa.concat_tables(parts) if parts else OVERVIEW_SCHEMA.empty_table()
        return publish(lake, OVERVIEW, rows, window, "as_of", con=con, closed="right", describe=_describe)
