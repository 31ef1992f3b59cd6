"""Link drops, retrains and downgrades per controller, with outage, recovery and detection times."""

from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from ingest.contract import TOPIC_ERRORS, TOPIC_LINK
from models.features import Detections
from models.link_events import INCIDENTS_SCHEMA
from models.series import Controllers
from pipelines.lib.assets import AFTER_LOAD, mart_asset, mart_check, publish
from pipelines.lib.metadata import chart, count_by, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.quality import counters_monotonic
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key, read_inventory, read_stream

NAME = "link_events"
# An outage's first traces can precede its hour, and the link comes back up after it: read an hour either side,
# keep the incidents that start inside the window.
BEFORE = timedelta(hours=1)
AFTER = timedelta(hours=1)


def _describe(incidents: pa.Table) -> dict[str, object]:
    def plot(ax: Axes) -> None:
        for kind in ("drop", "retrain", "downgrade"):
            chosen = incidents.filter(pc.equal(incidents["kind"], kind))
            values = [v for v in chosen["recovery_s"].to_pylist() if v is not None]
            if values:
                ax.hist(values, bins=30, alpha=0.6, label=f"{kind} ({len(values)})")
        ax.set_xlabel("recovery time (s)")
        ax.set_ylabel("incidents")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)

    per_kind = count_by(incidents, ["kind"])
    worst = count_by(incidents, ["controller_id"], {"outage_s": "sum", "recovery_s": "max"})
    return {
        **{f"{row['kind']}s": row["rows"] for row in per_kind.to_pylist()},
        "worst_controllers": markdown_table(worst),
        "recovery_times": chart("Recovery time to full speed and width in L0", plot),
    }


@mart_asset(
    NAME,
    group="links",
    description="Link incidents (drop, retrain, width/speed downgrade) per controller, one row per incident that "
    "starts in the hour, with outage, recovery to full speed/width in L0, and when the first evidence arrived.",
    schema=INCIDENTS_SCHEMA,
    deps=[raw_key("link"), raw_key("inventory")],
    automation_condition=AFTER_LOAD,
    check_specs=[
        mart_check(
            NAME,
            "link_counters_monotonic",
            "Cumulative link counters never decrease within a counter epoch; a decrease would turn into a "
            "phantom link-down or counter restart (blocking).",
            blocking=True,
        )
    ],
)
def link_events(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection(read_only=True) as con:
        # Errors too: a reset's own downtime shows as a down link, and it is not a drop.
        errors = read_stream(con, TOPIC_ERRORS, window.widened(BEFORE, AFTER))
        link = read_stream(con, TOPIC_LINK, window.widened(BEFORE, AFTER))
        controllers = Controllers.of(read_inventory(con).column("controller_id"), link.column("controller_id"))
        monotonic = counters_monotonic(con, TOPIC_LINK, window, window.widened(BEFORE))
    return publish(
        lake,
        NAME,
        Detections.from_tables(errors, link, controllers).incidents,
        window,
        "start_ts",
        describe=_describe,
        check_results=[monotonic.result("link_counters_monotonic")],
    )
