"""Window features for a time window, and the training span the fitted models learn from.

Features describe each controller at the end of each hour using only what was known then (models/features.py);
they need 24 hours of telemetry before the hour for their trailing sums and three days of detected resets and
link drops for the hours-since features, so a window is read with that history and only its own hours are kept.

Fitted models (the health baseline and the anomaly model) learn from a training span: by default the first half
of the telemetry in the lake (as models/holdout.py splits a run), on the controllers outside the held-out hash
bucket; evaluation later scores only held-out controllers after the span (fault_model.md §5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np

from ingest.contract import TOPIC_ERRORS
from models.evaluation import held_out_controllers
from models.features import Detections, WindowFeatures, build_features
from models.holdout import Protocol
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from pipelines.lib.marts import read_mart
from pipelines.lib.partitions import Window, to_ns
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import raw_table, read_telemetry

FEATURE_HISTORY = timedelta(hours=24)
DETECTION_HISTORY = timedelta(hours=72)
TEST_FRACTION = Protocol.test_fraction
HOUR = timedelta(hours=1)


def window_features(con: duckdb.DuckDBPyConnection, window: Window) -> WindowFeatures:
    """Features of every controller for every hour of `window` (history read, never returned)."""
    telemetry = read_telemetry(con, window.widened(FEATURE_HISTORY))
    detected = window.widened(DETECTION_HISTORY)
    detections = Detections(
        resets=read_mart(con, "resets", RESETS_SCHEMA, "reset_ts", detected),
        incidents=read_mart(con, "link_events", INCIDENTS_SCHEMA, "start_ts", detected),
    )
    history = window.widened(FEATURE_HISTORY)
    features = build_features(
        telemetry, detections, telemetry.controllers(), start_ns=to_ns(history.start), end_ns=to_ns(history.end)
    )
    keep = features.window_ends > to_ns(window.start)
    return WindowFeatures(
        features.controllers, features.window_ends[keep], features.names, features.values[:, keep], features.firmware
    )


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


ANOMALY_MODEL_KEY = dg.AssetKey(["models", "anomaly_model"])


def anomaly_model_dir(lake: LakeResource) -> Path:
    """Where anomaly model versions are saved: under the data dir, next to the lake they were trained on."""
    return lake.model_dir / "anomaly"


def training_rows(features: WindowFeatures) -> tuple[np.ndarray, np.ndarray]:
    """(controller mask, window mask) a model may be fitted on: controllers outside the held-out bucket."""
    return ~held_out_controllers(features.controllers, TEST_FRACTION), np.ones(len(features.window_ends), bool)
