"""Early warning in the product: a classifier fitted on the lake's own history, and hourly risk per controller
with its reasons, alarms and alerts.

The model learns from what the lake observed, never from the simulator's truth (production has none): a window is
positive when a memory UE, an unplanned reset or a link drop the detections marts hold begins 15 min to 24 h
after its end (models.early_warning.observed_failures, labelled by models.evaluation.failure_labels with the
offline protocol's horizon and minimum lead). Only windows whose whole 24 h horizon lies in the lake are labelled,
on the controllers outside the held-out bucket. Too little history to fit is said in the model's metadata.

The package also ships one early-warning model (`SHIPPED_DIR`), fitted once on a simulated training fleet by
`leo-fleet evaluate --save-model` and described by that fleet and its held-out figures: the hourly risk and the
health score rest on it until the lake has a model of its own (`scoring_model`), so every lake has both, and every
row says which model it rests on (`basis`).
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sklearn
from matplotlib.axes import Axes

from ingest.contract import RUN_DESCRIPTION, TOPIC_ERRORS, TS, described
from models.early_warning import (
    EarlyWarningModel,
    new_alarms,
    observed_failures,
    ranking_table,
    reasons,
    train_early_warning,
    training_lead_time,
)
from models.evaluation import failure_labels
from models.features import EVENT_COLUMNS, UE_RECORDS, WindowFeatures, memory_ue_rows
from models.holdout import HEALTH, Protocol
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from models.series import NS_PER_S
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import FEATURES, READ_SPAN, read_features, training_rows
from pipelines.lib.marts import mart_key, read_ahead, read_mart
from pipelines.lib.metadata import chart, markdown_table
from pipelines.lib.model_store import load_versioned, save_versioned
from pipelines.lib.partitions import Window, to_ns
from pipelines.lib.resources import LakeResource
from pipelines.lib.slos import load_health_policy
from pipelines.lib.telemetry import raw_table, read_stream

GROUP = "early_warning"
SCORES = "early_warning"
MODEL_KEY = dg.AssetKey(["models", "early_warning_model"])
MODEL_PREFIX = "early_warning"
PROTOCOL = Protocol()  # horizon and minimum lead: the offline evaluation's, so figures compare
# Grouped 4-fold cross-validation needs positives on several controllers to choose a model size and a threshold.
MIN_POSITIVE_CONTROLLERS = 8
MIN_POSITIVES = 20
HOUR = timedelta(hours=1)
SHIPPED_DIR = Path(__file__).with_name("shipped")  # package data (pyproject.toml)
REASON = pa.struct(
    [
        pa.field("feature", pa.string()),
        pa.field("reason", pa.string()),  # in words, with units, beside its healthiest training value
        pa.field("risk_change", pa.float64()),  # its exact share of the risk above the healthiest controller's
    ]
)
SCHEMA = pa.schema(
    [
        described("controller_id", pa.string(), "the controller", nullable=False),
        described("window_end", TS, "end of the hour scored (UTC)", nullable=False),
        described(
            "risk",
            pa.float64(),
            "the classifier's risk that the controller fails within the horizon, 0-1",
            nullable=False,
        ),
        described("rank", pa.int64(), "1 = most at risk in that hour", nullable=False),
        described("alarm", pa.bool_(), "true when risk is at or above the threshold", nullable=False),
        described("alert", pa.bool_(), "true when in alarm now and not the hour before", nullable=False),
        described("threshold", pa.float64(), "the risk at which a controller is in alarm", nullable=False),
        described("expected_lead_h", pa.float64(), "median lead, hours, of the failures the training side announced"),
        described(
            "reasons",
            pa.list_(REASON),
            "the features that moved the risk most: each feature, the reason in words and its risk change",
            nullable=False,
        ),
        described("model_version", pa.int64(), "version of the model that scored the hour", nullable=False),
        described(
            "basis",
            pa.string(),
            "the model the risk rests on: this lake's own, or the shipped one and why",
            nullable=False,
        ),
    ]
)


class EarlyWarningConfig(dg.Config):
    seed: int = 0


def model_dir(lake: LakeResource) -> Path:
    """Early-warning model versions: under the data dir, next to the lake they were fitted on."""
    return lake.model_dir / MODEL_PREFIX


def _history(con: duckdb.DuckDBPyConnection) -> tuple[Window, int] | None:
    """(whole hours of telemetry in the lake, the last telemetry time in ns), or None for an empty lake."""
    first, last = con.execute(f"SELECT min(ts), max(ts) FROM {raw_table(TOPIC_ERRORS)}").fetchone()
    if first is None:
        return None
    start = first.replace(minute=0, second=0, microsecond=0)
    return Window(start, last.replace(minute=0, second=0, microsecond=0) + HOUR), to_ns(last)


def _memory_ues(con: duckdb.DuckDBPyConnection, window: Window) -> pa.Table:
    """The memory UE records of `window`: of the media records read, only the uncorrectable ones are kept."""
    rows = read_stream(
        con, TOPIC_ERRORS, window, EVENT_COLUMNS, "record_type IN (" + ", ".join(f"'{r}'" for r in UE_RECORDS) + ")"
    )
    return rows.filter(memory_ue_rows(rows))


def _failures(con: duckdb.DuckDBPyConnection, span: Window, features: WindowFeatures) -> tuple[np.ndarray, np.ndarray]:
    ue_rows = pa.concat_tables(read_ahead(con, span.chunks(READ_SPAN), _memory_ues))
    resets = read_mart(con, "resets", RESETS_SCHEMA, "reset_ts", span)
    incidents = read_mart(con, "link_events", INCIDENTS_SCHEMA, "start_ts", span)
    return observed_failures(ue_rows, resets, incidents, features.controllers)


@dg.asset(
    key=MODEL_KEY,
    group_name=GROUP,
    owners=["team:fleet-analytics"],
    kinds={"scikitlearn", "python"},
    deps=[mart_key(FEATURES), mart_key("resets"), mart_key("link_events")],
    description="Boosted additive (stumps) early-warning classifier over the shared window features, calibrated "
    "out-of-fold, fitted on the lake's "
    "history (non-held-out controllers, windows whose 24 h horizon is in the lake) with labels from the detections "
    "marts and UE records; alarm threshold cost-optimal (slos.yaml's health alarm_costs) on out-of-fold risk. "
    "Saved as a new version.",
)
def early_warning_model(config: EarlyWarningConfig, lake: LakeResource) -> dg.MaterializeResult:
    with lake.connection(read_only=True) as con:
        history = _history(con)
        if history is None:
            return _not_fitted("the lake holds no telemetry yet")
        span, last_ns = history
        features = read_features(con, span)
        failures = _failures(con, span, features)
    horizon_ns, min_lead_ns = PROTOCOL.horizon_ns, int(PROTOCOL.min_lead_s * NS_PER_S)
    ends = features.window_ends
    labels = failure_labels(*failures, len(features.controllers), ends, horizon_ns=horizon_ns, min_lead_ns=min_lead_ns)
    controllers, _ = training_rows(features)
    windows = ends + horizon_ns <= last_ns
    y = labels[controllers][:, windows]
    counts = {"training_rows": int(y.size), "positives": int(y.sum()), "failures_observed": len(failures[0])}
    positive_controllers = int(y.any(axis=1).sum())
    if y.sum() < MIN_POSITIVES or positive_controllers < MIN_POSITIVE_CONTROLLERS:
        return _not_fitted(
            f"too little labelled history: {counts['positives']} positive of {counts['training_rows']} "
            f"controller-hours on {positive_controllers} controllers (needs >= {MIN_POSITIVES} on >= "
            f"{MIN_POSITIVE_CONTROLLERS}); a window is labelled only once its whole 24 h horizon is in the lake "
            f"(telemetry {span}), so the lake needs more than a day of it",
            counts,
        )
    if y.all():
        return _not_fitted("every labelled controller-hour is positive: there is nothing to rank", counts)
    model = train_early_warning(
        features,
        labels,
        controllers,
        windows,
        choose_threshold=load_health_policy().alarm_threshold,
        seed=config.seed,
    )
    lead = training_lead_time(
        model, controllers, ends[windows], failures, horizon_ns=horizon_ns, min_lead_ns=min_lead_ns
    )
    stored = save_versioned(
        model,
        {
            **counts,
            "feature_names": list(model.feature_names),
            "training_span": str(span),
            "training_last_window_end": datetime.fromtimestamp(ends[windows].max() / NS_PER_S, UTC).isoformat(),
            "training_controllers": int(controllers.sum()),
            "threshold": model.threshold,
            "params": model.params,
            "out_of_fold_pr_auc": model.out_of_fold_pr_auc,
            "expected_lead_h": None if np.isnan(lead.median_h) else lead.median_h,
            "failures_announced": lead.announced,
            "failures_in_training": lead.failures,
            "sklearn_version": sklearn.__version__,
        },
        model_dir(lake),
        MODEL_PREFIX,
    )
    return dg.MaterializeResult(
        metadata={
            "fitted": True,
            "version": stored["version"],
            **counts,
            "base_rate": counts["positives"] / counts["training_rows"],
            "out_of_fold_pr_auc": model.out_of_fold_pr_auc,
            "threshold": model.threshold,
            "params": dg.MetadataValue.json(model.params),
            "expected_lead_h": stored["expected_lead_h"],
            "failures_announced": f"{lead.announced} of {lead.failures} (out-of-fold alarms, training controllers)",
            "training_span": str(span),
            "path": dg.MetadataValue.path(str(model_dir(lake))),
        },
        data_version=dg.DataVersion(str(stored["version"])),
    )


def _not_fitted(reason: str, counts: dict | None = None) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"fitted": False, "reason": reason, **(counts or {})})


def load_model(lake: LakeResource) -> tuple[EarlyWarningModel, dict] | None:
    """The latest model version and its metadata, or None before the first fit (the health score reads it too)."""
    try:
        return load_versioned(model_dir(lake), MODEL_PREFIX)
    except FileNotFoundError:
        return None


def _fleet(run_dir: Path) -> dict:
    config = json.loads((run_dir / RUN_DESCRIPTION).read_text())["config"]
    fleet = {key: config[key] for key in ("controllers", "hours", "seed", "fault_acceleration", "interval_s")}
    return {**fleet, "confounders": config["confounders"]["profile"]}


def ship_model(
    model: EarlyWarningModel, rows: list[tuple[str, str, str, str]], train: Path, test: Path, to: Path
) -> dict:
    """Store an early-warning model `leo-fleet evaluate` fitted on simulated fleet `train` as the next version in
    `to` (SHIPPED_DIR to ship it), described by that fleet, the one it was held out on, and the protocol and
    health-score rows of the evaluation's report (`rows`: its held-out figures); returns the stored metadata."""
    return save_versioned(
        model,
        {
            "training_fleet": _fleet(train),
            "held_out_fleet": _fleet(test),
            "held_out": {
                metric: [detector, baseline]
                for section, metric, detector, baseline in rows
                if section in ("protocol", HEALTH)
            },
            "feature_names": list(model.feature_names),
            "threshold": model.threshold,
            "params": model.params,
            "out_of_fold_pr_auc": model.out_of_fold_pr_auc,
            "expected_lead_h": None,
            "sklearn_version": sklearn.__version__,
        },
        to,
        MODEL_PREFIX,
    )


def scoring_model(lake: LakeResource, con: duckdb.DuckDBPyConnection) -> tuple[EarlyWarningModel, dict, str]:
    """(model, its metadata, what the risk and the health score rest on in words): the lake's latest early-warning
    model, or before one is fitted the shipped one, which was fitted on a simulated fleet and never on this lake."""
    loaded = load_model(lake)
    if loaded is not None:
        model, stored = loaded
        return model, stored, f"model v{stored['version']} fitted on this lake's {stored['training_span']}"
    model, stored = load_versioned(SHIPPED_DIR, MODEL_PREFIX)
    history = _history(con)
    hours = 0 if history is None else (history[0].end - history[0].start) // HOUR
    fleet = stored["training_fleet"]
    return (
        model,
        stored,
        f"shipped model v{stored['version']} fitted on a simulated fleet ({fleet['controllers']} controllers × "
        f"{fleet['hours']:g} h, fault acceleration {fleet['fault_acceleration']:g}, confounders "
        f"{fleet['confounders']}): this lake's {hours} h of "
        f"telemetry fit no model of its own (it needs failures observed within {PROTOCOL.horizon_h:g} h of "
        f">= {MIN_POSITIVES} controller-hours on >= {MIN_POSITIVE_CONTROLLERS} controllers)",
    )


def _scores(model: EarlyWarningModel, stored: dict, basis: str, features: WindowFeatures, window: Window) -> pa.Table:
    """Risk, rank, alarm, alert and reasons of every controller for the hours of `window`; `features` also hold
    the hour before it, so an alarm that started then is not a new alert."""
    risk = model.risk(features)
    alerts = new_alarms(risk >= model.threshold)
    keep = features.window_ends > to_ns(window.start)
    hours = WindowFeatures(
        features.controllers, features.window_ends[keep], features.names, features.values[:, keep], features.firmware
    )
    ranking = ranking_table(hours, risk[:, keep], model.threshold)
    explained = reasons(model, hours, model.risk_shares(hours))
    n = ranking.num_rows
    return pa.table(
        {
            **{name: ranking[name] for name in ranking.column_names},
            "alert": alerts[:, keep].ravel(),
            "threshold": np.full(n, model.threshold),
            "expected_lead_h": pa.array([stored["expected_lead_h"]] * n, pa.float64()),
            "reasons": pa.array(explained, pa.list_(REASON)),
            "model_version": np.full(n, stored["version"]),
            "basis": pa.array([basis] * n, pa.string()),
        },
        schema=SCHEMA,
    )


def reason_text(rows: pa.Table) -> pa.Array:
    """Each row's reasons as one line, largest push first."""
    return pa.array(
        ["; ".join(f"{r['reason']} (+{r['risk_change']:.2f})" for r in row) for row in rows["reasons"].to_pylist()],
        pa.string(),
    )


def _describe(status: dict[str, object]):
    def describe(rows: pa.Table) -> dict[str, object]:
        if not rows.num_rows:
            return status
        top = rows.sort_by([("risk", "descending")]).slice(0, 20)
        top = top.append_column("why", reason_text(top))

        def plot(ax: Axes) -> None:
            ax.hist(np.asarray(rows["risk"]), bins=np.linspace(0, 1, 41), color="tab:red")
            ax.axvline(status["threshold"], color="black", linewidth=0.8)
            ax.set_xlabel("risk of a UE, reset or link drop in 15 min to 24 h (line: alarm threshold)")
            ax.set_ylabel("controller-hours")
            ax.set_yscale("log")

        return {
            **status,
            "alarms": int(pc.sum(rows["alarm"]).as_py() or 0),
            "alerts": int(pc.sum(rows["alert"]).as_py() or 0),
            "top_controllers": markdown_table(top, ["controller_id", "window_end", "risk", "rank", "alarm", "why"]),
            "risk_distribution": chart("Early-warning risk in the window", plot),
        }

    return describe


@mart_asset(
    SCORES,
    group=GROUP,
    description="Risk of a UE, unplanned reset or link drop 15 min to 24 h ahead, per controller at the end of "
    "each hour, from the latest early-warning model: rank, alarm (risk >= the threshold chosen in training), alert "
    "(newly in alarm) with the expected lead time, and the features pushing the risk up, in words; from the lake's "
    "own model, or before one is fitted the model shipped with the package, as each row's basis says.",
    schema=SCHEMA,
    deps=[mart_key(FEATURES), MODEL_KEY],
    automation_condition=FOLLOW_INPUTS,
)
def early_warning(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    with lake.connection() as con:
        model, stored, basis = scoring_model(lake, con)
        status = {
            "basis": basis,
            "model_version": stored["version"],
            "threshold": model.threshold,
            "expected_lead_h": stored["expected_lead_h"],
        }
        rows = _scores(model, stored, basis, read_features(con, window.widened(HOUR)), window)
        return publish(lake, SCORES, rows, window, "window_end", con=con, closed="right", describe=_describe(status))
