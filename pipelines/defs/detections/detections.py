"""Controller resets and link incidents of each hour, from one pass of both detectors.

Resets and link incidents explain each other (models.features.Detections): a proven drop re-enumerates the device
(a new counter epoch that is not a reset) and a reset takes the link down (a down state that is not a drop). Both
detectors therefore read the same error and link rows and run together; one step writes both marts.
"""

from datetime import timedelta
from functools import partial

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from ingest.contract import TOPIC_ERRORS, TOPIC_LINK
from models.features import ERRORS_COLUMNS, LINK_COLUMNS, Detections
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from models.series import Controllers
from pipelines.lib.assets import AFTER_LOAD, mart_assets, mart_check, mart_spec, publish
from pipelines.lib.marts import in_background, mart_key
from pipelines.lib.metadata import chart, count_by, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.quality import Finding, counters_monotonic, telemetry_gaps
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import (
    CONTROLLERS_PER_GROUP,
    StreamRead,
    by_controller_group,
    raw_key,
    read_inventory,
    read_maintenance,
    stream_controllers,
)

RESETS = "resets"
LINK_EVENTS = "link_events"
# Evidence of a reset spans the last snapshot before it and the first after it; an outage's first traces can
# precede its hour and the link comes back up after it: read an hour either side, keep what starts inside.
BEFORE = timedelta(hours=1)
AFTER = timedelta(hours=1)
# The recovery chart's ticks (seconds, label): round durations a reader knows.
DURATION_TICKS = (
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (600, "10 min"),
    (3600, "1 h"),
    (6 * 3600, "6 h"),
    (86_400, "1 d"),
)


def _describe_resets(resets: pa.Table) -> dict[str, object]:
    silent = int(pc.sum(resets["silent"]).as_py() or 0)
    delay = pc.subtract(resets["detected_ts"], resets["reset_ts"])
    return {
        "explicit": resets.num_rows - silent,
        "silent": silent,
        "median_detection_delay_s": (pc.approximate_median(delay.cast(pa.int64())).as_py() or 0) / 1e9,
        "worst_controllers": markdown_table(count_by(resets, ["controller_id"], {"silent": "sum"})),
    }


def plot_recovery(incidents: pa.Table, ax: Axes) -> None:
    """Recovery times per incident kind. Drops recover in seconds to minutes, downgrades in up to hours: on a
    linear axis the drops all fall in the first bin, so log-spaced bins on a log axis, ticked in round durations."""
    measured = incidents.filter(pc.is_valid(incidents["recovery_s"]))
    values = measured["recovery_s"].to_numpy()
    if not len(values):
        return
    bins = np.geomspace(max(values.min(), 0.1), max(values.max(), 1.0) * 1.001, 31)
    for kind in ("drop", "retrain", "downgrade"):
        chosen = measured.filter(pc.equal(measured["kind"], kind))["recovery_s"].to_numpy()
        if len(chosen):
            ax.hist(chosen, bins=bins, alpha=0.6, label=f"{kind}: {len(chosen):,}, median {np.median(chosen):,.0f} s")
    ax.set_xscale("log")
    shown = [(s, text) for s, text in DURATION_TICKS if bins[0] <= s <= bins[-1]]
    ax.set_xticks([s for s, _ in shown], [text for _, text in shown])
    ax.set_xlabel("recovery time to full speed and width in L0 (log scale)")
    ax.set_ylabel("incidents per bin")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)


def _describe_incidents(incidents: pa.Table) -> dict[str, object]:
    per_kind = count_by(incidents, ["kind"])
    worst = count_by(incidents, ["controller_id"], {"outage_s": "sum", "recovery_s": "max"})
    return {
        **{f"{row['kind']}s": row["rows"] for row in per_kind.to_pylist()},
        "worst_controllers": markdown_table(worst),
        "recovery_times": chart("Recovery time to full speed and width in L0", partial(plot_recovery, incidents)),
    }


def _input_checks(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[Finding, Finding, Finding]:
    """The raw inputs' checks (error counters, link counters, snapshot gaps), with the lookback the detectors use."""
    lookback = window.widened(BEFORE)
    return (
        counters_monotonic(con, TOPIC_ERRORS, window, lookback),
        counters_monotonic(con, TOPIC_LINK, window, lookback),
        telemetry_gaps(con, window, lookback),
    )


def detect(con: duckdb.DuckDBPyConnection, wide: Window, group_size: int = CONTROLLERS_PER_GROUP) -> Detections:
    """Both detectors over `wide`, a group of controllers at a time (each controller's own sequence is all they
    read): memory bounded by the group, not by the fleet. Resets inside a declared maintenance window are planned."""
    topics = [TOPIC_ERRORS, TOPIC_LINK]
    maintenance = read_maintenance(con, wide)
    controllers = Controllers.of(read_inventory(con).column("controller_id"), stream_controllers(con, topics, wide))
    reads = [StreamRead(TOPIC_ERRORS, ERRORS_COLUMNS), StreamRead(TOPIC_LINK, LINK_COLUMNS)]
    resets, incidents = [RESETS_SCHEMA.empty_table()], [INCIDENTS_SCHEMA.empty_table()]
    for group, tables in by_controller_group(con, wide, reads, controllers, group_size):
        errors, link = tables[TOPIC_ERRORS], tables[TOPIC_LINK]
        # No telemetry at all around the window (e.g. the loader stalled): nothing to detect from.
        if errors.num_rows or link.num_rows:
            found = Detections.from_tables(errors, link, group, maintenance)
            resets.append(found.resets)
            incidents.append(found.incidents)
    return Detections(pa.concat_tables(resets), pa.concat_tables(incidents))


@mart_assets(
    "detections",
    mart_spec(
        RESETS,
        group="resets",
        description="Controller resets in the hour, explicit and silent, with the evidence that revealed each, "
        "when the first evidence arrived, and whether it was planned (inside a declared maintenance window).",
        schema=RESETS_SCHEMA,
        deps=[raw_key("errors"), raw_key("link"), raw_key("inventory"), raw_key("maintenance")],
        automation_condition=AFTER_LOAD,
    ),
    mart_spec(
        LINK_EVENTS,
        group="links",
        description="Link incidents (drop, retrain, width/speed downgrade) per controller, one row per incident "
        "that starts in the hour, with outage, recovery to full speed/width in L0, and when the first evidence "
        "arrived.",
        schema=INCIDENTS_SCHEMA,
        deps=[raw_key("errors"), raw_key("link"), raw_key("inventory")],
        automation_condition=AFTER_LOAD,
    ),
    check_specs=[
        mart_check(
            RESETS,
            "error_counters_monotonic",
            "Cumulative health-snapshot counters never decrease within a counter epoch; a decrease would read as "
            "a reset that did not happen (blocking).",
            blocking=True,
        ),
        mart_check(
            RESETS,
            "telemetry_gaps",
            "Every controller of the inventory sent health snapshots through the hour without a hole longer than "
            "2.5 snapshot intervals (warning: a rack outage looks the same).",
        ),
        mart_check(
            LINK_EVENTS,
            "link_counters_monotonic",
            "Cumulative link counters never decrease within a counter epoch; a decrease would turn into a "
            "phantom link-down or counter restart (blocking).",
            blocking=True,
        ),
    ],
)
def detections(context: dg.AssetExecutionContext, lake: LakeResource):
    window = Window.of(context)
    wide = window.widened(BEFORE, AFTER)
    with lake.connection() as con:
        with in_background(con, lambda cursor: _input_checks(cursor, window)) as checks:
            found = detect(con, wide)
            error_counters, link_counters, gaps = checks.result()
        yield publish(
            lake,
            RESETS,
            found.resets,
            window,
            "reset_ts",
            con=con,
            describe=_describe_resets,
            check_results=[
                error_counters.result("error_counters_monotonic", asset_key=mart_key(RESETS)),
                gaps.result("telemetry_gaps", severity=dg.AssetCheckSeverity.WARN, asset_key=mart_key(RESETS)),
            ],
        )
        yield publish(
            lake,
            LINK_EVENTS,
            found.incidents,
            window,
            "start_ts",
            con=con,
            describe=_describe_incidents,
            check_results=[link_counters.result("link_counters_monotonic", asset_key=mart_key(LINK_EVENTS))],
        )
