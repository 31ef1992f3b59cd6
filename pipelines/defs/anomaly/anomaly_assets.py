"""Anomalies: an IsolationForest trained once and persisted with a version, its hourly scores and snoozed alarms,
and event-rate anomalies (reset loops, flapping links, firmware cohorts) that need no training.

Training and scoring are separate assets (anomstack's train/score split): scores name the model version they
came from, and scoring refuses a model trained on another feature list.
"""

from datetime import timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes

from ingest.contract import TS
from models.anomaly import (
    EVENT_ANOMALY_SCHEMA,
    event_rate_anomalies,
    score_windows,
    smoothed_alarms,
    train_isolation_forest,
)
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import (
    ANOMALY_MODEL_KEY,
    FEATURES,
    TrainingConfig,
    anomaly_model_dir,
    read_features,
    training_rows,
)
from pipelines.lib.marts import mart_key
from pipelines.lib.metadata import chart, count_by, markdown_table
from pipelines.lib.model_store import load_model, save_model
from pipelines.lib.partitions import Window
from pipelines.lib.resources import LakeResource

GROUP = "anomaly"
SCORES = "anomaly_scores"
EVENTS = "event_anomalies"
# An alarm snoozes its controller for 24 windows (models.anomaly.smoothed_alarms): score the features of
# that much history before the window (as far as the features mart holds it) so an alarm raised just before it
# still snoozes the first hours.
ALARM_HISTORY = timedelta(hours=24)
SCORES_SCHEMA = pa.schema(
    [
        pa.field("controller_id", pa.string(), nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("score", pa.float64(), nullable=False),  # higher = more unusual
        pa.field("alarm", pa.bool_(), nullable=False),  # score at or above the model's threshold, snoozed 24 h
        pa.field("model_version", pa.int64(), nullable=False),
    ]
)
DEPS = [mart_key(FEATURES)]


@dg.asset(
    key=ANOMALY_MODEL_KEY,
    group_name=GROUP,
    owners=["team:fleet-analytics"],
    kinds={"scikitlearn", "python"},
    deps=DEPS,
    description="IsolationForest over the shared window features, fitted on the training span's non-held-out "
    "controllers and saved as a new version (pickle + JSON metadata with its feature list and alarm threshold).",
)
def anomaly_model(config: TrainingConfig, lake: LakeResource) -> dg.MaterializeResult:
    with lake.connection(read_only=True) as con:
        span = config.span(con)
        features = read_features(con, span)
    controllers, windows = training_rows(features)
    model = train_isolation_forest(features, controllers, windows, seed=config.seed)
    stored = save_model(model, anomaly_model_dir(lake))
    return dg.MaterializeResult(
        metadata={
            "version": stored.version,
            "training_span": str(span),
            "training_rows": stored.training_rows,
            "training_controllers": stored.training_controllers,
            "features": len(stored.feature_names),
            "alarm_threshold": stored.alarm_threshold,
            "alarm_quantile": stored.alarm_quantile,
            "path": dg.MetadataValue.path(str(anomaly_model_dir(lake))),
        },
        data_version=dg.DataVersion(str(stored.version)),
    )


def _describe_scores(scores: pa.Table) -> dict[str, object]:
    alarms = scores.filter(scores["alarm"])

    def plot(ax: Axes) -> None:
        ax.hist(np.asarray(scores["score"]), bins=50, color="tab:purple")
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("controller-hours")
        ax.set_yscale("log")

    return {
        "alarms": alarms.num_rows,
        "model_version": int(pc.max(scores["model_version"]).as_py() or 0),
        "most_anomalous": markdown_table(
            scores.sort_by([("score", "descending")]), ["controller_id", "window_end", "score", "alarm"]
        ),
        "score_distribution": chart("IsolationForest scores in the window", plot),
    }


@mart_asset(
    SCORES,
    group=GROUP,
    description="IsolationForest score per controller at the end of each hour, with alarms at or above the model's "
    "threshold (snoozed for 24 h), from the latest model version.",
    schema=SCORES_SCHEMA,
    deps=[*DEPS, ANOMALY_MODEL_KEY],
    automation_condition=FOLLOW_INPUTS,
)
def anomaly_scores(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    model = load_model(anomaly_model_dir(lake))
    with lake.connection() as con:
        features = read_features(con, window.widened(ALARM_HISTORY))
        scores = score_windows(model, features)
        alarms = smoothed_alarms(scores, model.metadata.alarm_threshold)
        n_controllers, n_windows = scores.shape
        controller_rows = pa.array(np.repeat(np.arange(n_controllers), n_windows))
        rows = pa.table(
            {
                "controller_id": features.controllers.ids.take(controller_rows),
                "window_end": pa.array(np.tile(features.window_ends, n_controllers), pa.int64()).cast(TS),
                "score": scores.ravel(),
                "alarm": alarms.ravel(),
                "model_version": np.full(scores.size, model.metadata.version),
            },
            schema=SCORES_SCHEMA,
        )
        return publish(lake, SCORES, rows, window, "window_end", con=con, closed="right", describe=_describe_scores)


def _describe_events(anomalies: pa.Table) -> dict[str, object]:
    return {
        "by_kind": markdown_table(count_by(anomalies, ["scope", "kind"])),
        "least_plausible": markdown_table(anomalies.sort_by([("p_value", "ascending")])),
    }


@mart_asset(
    EVENTS,
    group=GROUP,
    description="Controllers (reset loops, flapping links) and firmware cohorts whose 24 h event count is "
    "implausible at the rest of the fleet's rate (Poisson tail, Bonferroni-corrected); no training needed.",
    schema=EVENT_ANOMALY_SCHEMA,
    deps=DEPS,
    automation_condition=FOLLOW_INPUTS,
)
def event_anomalies(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        anomalies = event_rate_anomalies(read_features(con, window))
        return publish(
            lake, EVENTS, anomalies, window, "window_end", con=con, closed="right", describe=_describe_events
        )
