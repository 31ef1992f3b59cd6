"""Window features: computed once per hour into `marts.features`, and the training span the fitted models learn from.

Features describe each controller at the end of each hour using only what was known then (models/features.py);
they need 24 hours of telemetry before the hour for their trailing sums and three days of detected resets and
link drops for the hours-since features, so a window is read with that history and only its own hours are kept.
The features asset writes them once; the health score, the event-rate anomalies and the early warning read
them back (`read_features`) instead of reading raw telemetry again, so every model sees the same values for the
same hour.

The health baseline learns from a training span: by default the first half of the telemetry in the lake (as
models/holdout.py splits a run), on the controllers outside the held-out hash bucket; evaluation later scores only
held-out controllers after the span (fault_model.md §5). The early-warning model learns from every hour whose 24 h
label horizon is in the lake, on the same controllers (pipelines/defs/early_warning/).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa

from ingest.contract import ERRORS_SCHEMA, INVENTORY_SCHEMA, LATENCY_SCHEMA, LINK_SCHEMA, TOPIC_ERRORS, TS, described
from models.evaluation import held_out_controllers
from models.features import FIRMWARE_COLUMN, Detections, Telemetry, WindowFeatures, build_features, feature_description
from models.holdout import Protocol, controller_latency_slo
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from models.series import Controllers, timestamps_ns
from models.slo.spec import Slo
from pipelines.lib import slos
from pipelines.lib.marts import MARTS, read_ahead, read_mart, read_window
from pipelines.lib.partitions import Window, to_ns
from pipelines.lib.telemetry import CONTROLLERS_PER_GROUP, raw_table, telemetry_by_group

FEATURES = "features"
FEATURE_HISTORY = timedelta(hours=24)
DETECTION_HISTORY = timedelta(hours=72)
TEST_FRACTION = Protocol.test_fraction
HOUR = timedelta(hours=1)
READ_SPAN = timedelta(days=1)  # what `read_features` and the early warning's failures read at once


def controller_slo() -> Slo:
    """slos.yaml's per-controller latency SLO: the features carry its SLI and the health score measures burn
    against its budget, so editing the spec changes the pipeline's scores as it changes the offline evaluation's."""
    slo = controller_latency_slo(slos.load())
    if slo is None:
        raise ValueError("slos.yaml has no per-controller latency SLO: the health score measures SLO burn against it")
    return slo


def window_features(
    con: duckdb.DuckDBPyConnection, window: Window, latency_op: str, group_size: int = CONTROLLERS_PER_GROUP
) -> WindowFeatures:
    """Features of every controller for every hour of `window` from raw telemetry and the detection marts (history
    read, never returned), a group of controllers at a time (`telemetry_by_group`); `latency_op` is the
    per-controller latency SLO's operation; `group_size` controllers at a time."""
    history = window.widened(FEATURE_HISTORY)
    detected = window.widened(DETECTION_HISTORY)
    detections = Detections(
        resets=read_mart(con, "resets", RESETS_SCHEMA, "reset_ts", detected),
        incidents=read_mart(con, "link_events", INCIDENTS_SCHEMA, "start_ts", detected),
    )
    start_ns, end_ns = to_ns(history.start), to_ns(history.end)
    groups = [
        build_features(
            telemetry, detections, group, start_ns=start_ns, end_ns=end_ns, latency_op=latency_op
        ).windows_after(to_ns(window.start))
        for group, telemetry in telemetry_by_group(con, history, latency_op, group_size)
    ]
    return WindowFeatures.of_groups(groups)


@cache
def features_schema() -> pa.Schema:
    """The columns of `marts.features`: the feature names are the builder's own, taken from a build over nothing."""
    nothing = Telemetry(
        errors=ERRORS_SCHEMA.empty_table(),
        link=LINK_SCHEMA.empty_table(),
        latency=LATENCY_SCHEMA.empty_table(),
        inventory=INVENTORY_SCHEMA.empty_table(),
    )
    detections = Detections(resets=RESETS_SCHEMA.empty_table(), incidents=INCIDENTS_SCHEMA.empty_table())
    names = build_features(nothing, detections, nothing.controllers(), start_ns=0, end_ns=0).names
    return pa.schema(
        [
            described("controller_id", pa.string(), "the memory controller: its device serial in hex", nullable=False),
            described(
                "window_end", TS, "end of the window the features describe: the prediction time (UTC)", nullable=False
            ),
            *(described(name, pa.float64(), feature_description(name)) for name in names),
            described(FIRMWARE_COLUMN, pa.string(), "the controller's firmware version: its cohort", nullable=False),
        ]
    )


def read_features(con: duckdb.DuckDBPyConnection, window: Window) -> WindowFeatures:
    """The features of every hour of `window` that `marts.features` holds, read a day at a time into the dense
    array: a week of a 10,000-controller fleet is 0.9 GB dense, and several times that as Arrow and its copies."""
    schema, mart = features_schema(), f"{MARTS}.{FEATURES}"
    ids = read_window(con, mart, "window_end", window, "DISTINCT controller_id", "right")["controller_id"]
    ends = read_window(con, mart, "window_end", window, "DISTINCT window_end", "right")["window_end"]
    parts = read_ahead(
        con,
        window.chunks(READ_SPAN),
        lambda cursor, day: read_mart(cursor, FEATURES, schema, "window_end", day, "right"),
    )
    return WindowFeatures.from_parts(schema, Controllers.of(ids), np.unique(timestamps_ns(ends)), parts)


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class TrainingConfig(dg.Config):
    """Which telemetry a fitted model learns from (editable in the Launchpad)."""

    # Length of the span in hours; 0 = the first half of the telemetry in the lake (at least one hour).
    training_hours: int = 0
    # ISO time the span ends (exclusive, rounded down to the hour); empty = it starts at the first telemetry hour.
    training_end: str = ""
    seed: int = 0

    def span(self, con: duckdb.DuckDBPyConnection) -> Window:
        first, last = con.execute(f"SELECT min(ts), max(ts) FROM {raw_table(TOPIC_ERRORS)}").fetchone()
        if first is None:
            raise ValueError("the lake holds no telemetry yet: load some before training")
        hours = self.training_hours or max(1, int((last - first) / HOUR) // 2)
        if self.training_end:
            end = _hour(datetime.fromisoformat(self.training_end))
            return Window(end - hours * HOUR, end)
        start = _hour(first)
        return Window(start, start + hours * HOUR)


def training_rows(features: WindowFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(controller mask, window mask) a model may be fitted on: controllers outside the held-out bucket."""
    return ~held_out_controllers(features.controllers, TEST_FRACTION), np.ones(len(features.window_ends), bool)
