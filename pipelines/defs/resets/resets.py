"""Controller resets, explicit (a reset record) and inferred (epoch, uptime, counters, snapshot gaps)."""

from datetime import timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TOPIC_ERRORS, TOPIC_LINK
from models.features import Detections
from models.resets import RESETS_SCHEMA
from models.series import Controllers
from pipelines.lib.assets import AFTER_LOAD, mart_asset, mart_check, publish
from pipelines.lib.metadata import count_by, markdown_table
from pipelines.lib.partitions import Window
from pipelines.lib.quality import counters_monotonic, telemetry_gaps
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_key, read_inventory, read_stream

NAME = "resets"
# Evidence of a reset spans the last snapshot before it and the first after it: read an hour either side.
BEFORE = timedelta(hours=1)
AFTER = timedelta(hours=1)


def _describe(resets: pa.Table) -> dict[str, object]:
    silent = int(pc.sum(resets["silent"]).as_py() or 0)
    delay = pc.subtract(resets["detected_ts"], resets["reset_ts"])
    return {
        "explicit": resets.num_rows - silent,
        "silent": silent,
        "median_detection_delay_s": (pc.approximate_median(delay.cast(pa.int64())).as_py() or 0) / 1e9,
        "worst_controllers": markdown_table(count_by(resets, ["controller_id"], {"silent": "sum"})),
    }


@mart_asset(
    NAME,
    group="resets",
    description="Controller resets in the hour, explicit and silent, with the evidence that revealed each and when "
    "the first evidence arrived.",
    schema=RESETS_SCHEMA,
    deps=[raw_key("errors"), raw_key("link"), raw_key("inventory")],
    automation_condition=AFTER_LOAD,
    check_specs=[
        mart_check(
            NAME,
            "error_counters_monotonic",
            "Cumulative health-snapshot counters never decrease within a counter epoch; a decrease would read as "
            "a reset that did not happen (blocking).",
            blocking=True,
        ),
        mart_check(
            NAME,
            "telemetry_gaps",
            "Every controller of the inventory sent health snapshots through the hour without a hole longer than "
            "2.5 snapshot intervals (warning: a rack outage looks the same).",
        ),
    ],
)
def resets(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    wide = window.widened(BEFORE, AFTER)
    with lake.connection(read_only=True) as con:
        errors = read_stream(con, TOPIC_ERRORS, wide)
        link = read_stream(con, TOPIC_LINK, wide)
        controllers = Controllers.of(read_inventory(con).column("controller_id"), errors.column("controller_id"))
        monotonic = counters_monotonic(con, TOPIC_ERRORS, window, window.widened(BEFORE))
        gaps = telemetry_gaps(con, window, window.widened(BEFORE))
    # No telemetry at all around the window (e.g. the loader stalled): nothing to detect from.
    quiet = errors.num_rows == 0 and link.num_rows == 0
    return publish(
        lake,
        NAME,
        RESETS_SCHEMA.empty_table() if quiet else Detections.from_tables(errors, link, controllers).resets,
        window,
        "reset_ts",
        describe=_describe,
        check_results=[
            monotonic.result("error_counters_monotonic"),
            gaps.result("telemetry_gaps", severity=dg.AssetCheckSeverity.WARN),
        ],
    )
