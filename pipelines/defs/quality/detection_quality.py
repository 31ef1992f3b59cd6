"""Detection quality against the simulator's ground truth, per day (fault_model.md §5).

Event detectors (resets, link drops) are scored with event windows over cooldown-merged alarm episodes on every
controller: they are rules, fitted on nothing. The fitted early-warning model, and the health score that is its
risk (100 × (1 − risk)), are scored as failure predictors only on held-out controllers and only for hours after the
last instant its training labels looked at, so no figure comes from data a model was fitted on. Truth is read here
and nowhere else. Before the lake has a model, the health score rests on the model shipped with the package
(fitted on a simulated fleet, never on this lake), and is ranked on every hour of the held-out controllers.
"""

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TS, described
from models.evaluation import (
    EventScore,
    RankingScore,
    failure_events,
    failure_labels,
    held_out_controllers,
    score_detections,
    score_ranking,
)
from models.holdout import Protocol
from models.series import NS_PER_S, Controllers, equals, timestamps_ns
from pipelines.defs.early_warning.early_warning_assets import MODEL_KEY, load_model
from pipelines.lib.assets import FOLLOW_INPUTS, mart_asset, publish
from pipelines.lib.feature_mart import TEST_FRACTION
from pipelines.lib.marts import MARTS, Closed, in_window, mart_key, read_window
from pipelines.lib.metadata import markdown_table
from pipelines.lib.partitions import DAILY, Window, to_ns
from pipelines.lib.resources import LakeResource
from pipelines.lib.telemetry import TRUTH_TABLE, raw_key, read_inventory, read_truth

NAME = "detection_quality"
PROTOCOL = Protocol()
# Detections of events near the day's edges arrive within this of the event.
EDGE = timedelta(hours=1)
QUALITY_SCHEMA = pa.schema(
    [
        described("day", TS, "the day scored (UTC)", nullable=False),
        described(
            "detector",
            pa.string(),
            "the detector scored: resets, silent resets, link drops or health score",
            nullable=False,
        ),
        described("scope", pa.string(), "the controllers and hours it is scored on", nullable=False),
        # Event-window scoring (events = true events, episodes = merged alarms).
        described("events", pa.int64(), "true events (ground truth) in the day"),
        described("detected", pa.int64(), "true events with an alarm episode in their event window"),
        described("recall", pa.float64(), "detected / events"),
        described("episodes", pa.int64(), "alarm episodes (alarms merged over the cooldown)"),
        described("false_episodes", pa.int64(), "episodes matching no true event"),
        described("precision", pa.float64(), "(episodes - false_episodes) / episodes"),
        described("median_delay_s", pa.float64(), "median seconds from a true event to its first alarm"),
        described("p90_delay_s", pa.float64(), "90th percentile of seconds from a true event to its first alarm"),
        described("false_alarms_per_controller_day", pa.float64(), "false episodes per controller and day"),
        # Ranking of controller-hours by risk against "fails within 24 h" labels.
        described("positives", pa.int64(), "controller-hours labelled fails within 24 h"),
        described("controller_hours", pa.int64(), "controller-hours ranked"),
        described("pr_auc", pa.float64(), "area under the precision-recall curve of the ranking by risk"),
        described("base_rate", pa.float64(), "positives / controller_hours: the PR-AUC of a random ranking"),
        described("roc_auc", pa.float64(), "area under the ROC curve of the ranking by risk"),
    ]
)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _event_row(day: Window, detector: str, scope: str, score: EventScore, *, subset: bool = False) -> dict:
    """A subset of the events (silent resets) is scored for recall and delay only: its alarms are not a subset."""
    row = {
        "day": day.start,
        "detector": detector,
        "scope": scope,
        "events": score.events,
        "detected": score.detected,
        "recall": _nan_to_none(score.recall),
        "median_delay_s": _nan_to_none(score.median_delay_s),
        "p90_delay_s": _nan_to_none(score.p90_delay_s),
    }
    if not subset:
        row |= {
            "episodes": score.episodes,
            "false_episodes": score.false_episodes,
            "precision": _nan_to_none(score.precision),
            "false_alarms_per_controller_day": _nan_to_none(score.alarms_per_controller_day),
        }
    return row


def _ranking_row(day: Window, detector: str, scope: str, score: RankingScore) -> dict:
    return {
        "day": day.start,
        "detector": detector,
        "scope": scope,
        "positives": score.positives,
        "controller_hours": score.total,
        "pr_auc": _nan_to_none(score.pr_auc),
        "base_rate": _nan_to_none(score.base_rate),
        "roc_auc": _nan_to_none(score.roc_auc),
    }


def _after_the_fact(
    truth: pa.Table, controllers: Controllers, day: Window, kind: str, alarms: pa.Table, *, silent: bool | None = None
) -> EventScore:
    """Event windows [t, t + detection budget] around the true events of `kind` whose onset lies in the day,
    against the alarms raised during the day."""
    return score_detections(
        truth,
        controllers,
        kind,
        alarms,
        period=(to_ns(day.start), to_ns(day.end) - 1),
        silent=silent,
        detection_budget_s=PROTOCOL.detection_budget_s,
        cooldown_s=PROTOCOL.detection_cooldown_s,
    )


def _ranking(
    truth: pa.Table, controllers: Controllers, scores: pa.Table, risk: np.ndarray, trained_until: int
) -> RankingScore:
    """Rank held-out controller-hours after `trained_until` by `risk` (one per row of `scores`) against 'fails
    within 24 h'."""
    held_out = held_out_controllers(controllers, TEST_FRACTION)
    codes = controllers.codes(scores.column("controller_id"))
    ends = timestamps_ns(scores.column("window_end"))
    keep = (codes >= 0) & held_out[np.maximum(codes, 0)] & (ends > trained_until)
    event_codes, onsets = failure_events(truth, controllers)
    window_ends = np.unique(ends[keep])
    labels = failure_labels(
        event_codes,
        onsets,
        len(controllers),
        window_ends,
        horizon_ns=PROTOCOL.horizon_ns,
        min_lead_ns=int(PROTOCOL.min_lead_s * NS_PER_S),
    )
    row_labels = labels[codes[keep], np.searchsorted(window_ends, ends[keep])]
    return score_ranking(row_labels, risk[keep])


def _trained_until(lake: LakeResource) -> int | None:
    """The last instant the latest early-warning model's training labels looked at (its last training window's end
    plus the label horizon), or None before the first fit: hours up to it are never scored."""
    loaded = load_model(lake)
    if loaded is None:
        return None
    last = datetime.fromisoformat(loaded[1]["training_last_window_end"])
    return to_ns(last) + PROTOCOL.horizon_ns


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def _read(con, name: str, time_column: str, day: Window, closed: Closed = "left") -> pa.Table:
    return in_window(
        read_window(con, f"{MARTS}.{name}", time_column, day.widened(EDGE, EDGE)), time_column, day, closed
    )


def _describe(rows: pa.Table) -> dict[str, object]:
    events = rows.filter(pc.is_valid(rows["events"]))
    ranking = rows.filter(pc.is_valid(rows["pr_auc"]))
    return {
        "event_detection": markdown_table(
            events, ["detector", "events", "recall", "precision", "median_delay_s", "false_alarms_per_controller_day"]
        ),
        "failure_ranking": markdown_table(
            ranking, ["detector", "scope", "positives", "controller_hours", "pr_auc", "base_rate", "roc_auc"]
        ),
    }


@mart_asset(
    NAME,
    group="quality",
    description="Per day: event-window recall, precision, delays and false alarms per controller-day of the reset "
    "and link-drop detectors, and PR-AUC/ROC-AUC of the early-warning risk and the health score (its 100 × (1 − "
    "risk)) as 24 h failure predictors on held-out controllers after the model's training labels. Needs ground "
    "truth (simulated fleets).",
    schema=QUALITY_SCHEMA,
    deps=[
        raw_key(TRUTH_TABLE),
        raw_key("inventory"),
        mart_key("resets"),
        mart_key("link_events"),
        mart_key("health_scores"),
        mart_key("early_warning"),
        MODEL_KEY,
    ],
    partitions_def=DAILY,
    automation_condition=FOLLOW_INPUTS,
)
def detection_quality(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    window = Window.of(context)
    rows: list[dict] = []
    with lake.connection() as con:
        trained_until = _trained_until(lake)
        truth = read_truth(con)
        controllers = Controllers.of(read_inventory(con).column("controller_id"))
        for day in window.chunks(timedelta(days=1)):
            resets = _read(con, "resets", "detected_ts", day)
            incidents = _read(con, "link_events", "detected_ts", day)
            drops = incidents.filter(pa.array(equals(incidents.column("kind"), "drop")))
            everyone = "all controllers"
            rows += [
                _event_row(
                    day, "resets", everyone, _after_the_fact(truth, controllers, day, "controller_reset", resets)
                ),
                _event_row(
                    day,
                    "silent resets",
                    everyone,
                    _after_the_fact(truth, controllers, day, "controller_reset", resets, silent=True),
                    subset=True,
                ),
                _event_row(day, "link drops", everyone, _after_the_fact(truth, controllers, day, "link_drop", drops)),
            ]
            held_out = "held-out controllers after training"
            if trained_until is not None:
                warning = _read(con, "early_warning", "window_end", day, "right")
                risk = _column(warning, "risk")
                rows.append(
                    _ranking_row(
                        day, "early warning", held_out, _ranking(truth, controllers, warning, risk, trained_until)
                    )
                )
            # Before the lake has a model of its own, the health score rests on the shipped one, fitted on another
            # (simulated) fleet: every hour of this lake is after its training.
            health = _read(con, "health_scores", "window_end", day, "right")
            after = -1 if trained_until is None else trained_until
            risk = 100.0 - _column(health, "health")
            rows.append(_ranking_row(day, "health score", held_out, _ranking(truth, controllers, health, risk, after)))
        table = pa.Table.from_pylist(rows, schema=QUALITY_SCHEMA)
        return publish(lake, NAME, table, window, "day", con=con, describe=_describe)
