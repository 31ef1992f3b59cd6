"""Anomalies: event rates abnormal for the fleet, and multivariate window anomalies with an IsolationForest.

Event-rate anomalies ask one question per controller (and per firmware cohort): is this many resets or link
events in the last 24 h plausible at the fleet's current rate? A Poisson tail with a Bonferroni bound answers it
without training. The IsolationForest follows anomstack (pipeline_patterns.md §6): training and scoring are
separate steps, the model carries its exact feature list (pipelines.lib.model_store persists it with a version),
scoring refuses a model whose features differ, and an alarm is snoozed for a day so that one unusual day raises
one alarm. The alarm threshold is a quantile of the training scores, chosen for event F1 on training data
(`ALARM_QUANTILE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import sklearn
from sklearn.ensemble import IsolationForest

from ingest.contract import TS
from models.features import WindowFeatures

# ---------------------------------------------------------------------------------------------------------
# Event-rate anomalies (issue 5a).
# ---------------------------------------------------------------------------------------------------------

# Anomaly kind -> trailing-24h count features (log1p-encoded) it adds up.
EVENT_RATE_KINDS: dict[str, tuple[str, ...]] = {
    "reset_loop": ("resets_24h",),
    "flapping_link": ("link_drops_24h", "link_retrains_24h"),
}
COHORT_KIND = "firmware_cohort"
# Outages a firmware version can cause (retrains are the link's business, not the firmware's).
COHORT_OUTAGES = ("resets_24h", "link_drops_24h")
EVENT_ANOMALY_SCHEMA = pa.schema(
    [
        pa.field("scope", pa.string(), nullable=False),  # controller | cohort
        pa.field("subject", pa.string(), nullable=False),  # controller id or firmware version
        pa.field("kind", pa.string(), nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("observed", pa.float64(), nullable=False),
        pa.field("expected", pa.float64(), nullable=False),
        pa.field("p_value", pa.float64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class EventRatePolicy:
    alpha: float = 0.01  # family-wise, split over the subjects tested in each window (Bonferroni)
    min_events: int = 3  # fewer events than this are never a loop or a flap, whatever the fleet rate
    # The fleet rate never counts as lower than this per subject per 24 h, so a quiet fleet does not make
    # one ordinary event look impossible.
    rate_floor: float = 0.05


def poisson_sf(k: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ Poisson(lam), elementwise; exact for the small counts event rates produce."""
    k = np.asarray(k, dtype=np.int64)
    lam = np.asarray(lam, dtype=np.float64)
    below = np.zeros(np.broadcast(k, lam).shape)
    term = np.exp(-lam) * np.ones_like(below)
    for i in range(int(k.max()) if k.size else 0):
        below += np.where(i < k, term, 0.0)
        term = term * lam / (i + 1)
    return np.clip(1.0 - below, 0.0, 1.0)


def event_rate_anomalies(features: WindowFeatures, policy: EventRatePolicy | None = None) -> pa.Table:
    """Controllers (reset loops, flapping links) and firmware cohorts whose 24 h event count the fleet rate
    makes implausible, in every window. The expected count comes from the rest of the fleet at that time.
    For a cohort, "count" is its controllers with any reset or link event."""
    policy = policy or EventRatePolicy()
    n_c = len(features.controllers)
    out: list[dict] = []
    for kind, names in EVENT_RATE_KINDS.items():
        counts = np.rint(sum(np.expm1(features.column(n)) for n in names))
        others = (counts.sum(axis=0, keepdims=True) - counts) / max(n_c - 1, 1)
        expected = np.maximum(others, policy.rate_floor)
        p = poisson_sf(counts, expected)
        flagged = (counts >= policy.min_events) & (p < policy.alpha / max(n_c, 1))
        for c, w in zip(*np.nonzero(flagged), strict=True):
            out.append(
                _anomaly(
                    "controller",
                    features.controllers.ids[c].as_py(),
                    kind,
                    features,
                    w,
                    counts[c, w],
                    expected[c, w],
                    p[c, w],
                )
            )
    # A cohort is judged by how many of its controllers had any outage, not by how many outages: one lemon
    # must not condemn its firmware version.
    outages = sum(np.rint(np.expm1(features.column(name))) for name in COHORT_OUTAGES)
    affected = (outages > 0).astype(np.float64)
    cohorts = sorted(set(features.firmware.tolist()))
    for cohort in cohorts:
        members = features.firmware == cohort
        observed = affected[members].sum(axis=0)
        rest = affected[~members].sum(axis=0) / max((~members).sum(), 1)
        expected = np.maximum(rest, policy.rate_floor) * members.sum()
        p = poisson_sf(observed, expected)
        flagged = (observed >= policy.min_events) & (p < policy.alpha / max(len(cohorts), 1))
        for w in np.flatnonzero(flagged):
            out.append(_anomaly("cohort", cohort, COHORT_KIND, features, w, observed[w], expected[w], p[w]))
    return pa.Table.from_pylist(out, schema=EVENT_ANOMALY_SCHEMA)


def _anomaly(scope, subject, kind, features: WindowFeatures, w, observed, expected, p) -> dict:
    return {
        "scope": scope,
        "subject": subject,
        "kind": kind,
        "window_end": datetime.fromtimestamp(features.window_ends[w] / 1e9, UTC),
        "observed": float(observed),
        "expected": float(expected),
        "p_value": float(p),
    }


# ---------------------------------------------------------------------------------------------------------
# IsolationForest: train and score (issue 5b); pipelines.lib.model_store persists it with a version.
# ---------------------------------------------------------------------------------------------------------

MODEL_PREFIX = "iforest"  # in messages, and the file name of each stored version (pipelines.lib.model_store)
# Alarm above this quantile of the training scores: what `leo-fleet evaluate` chooses on run A's training side
# (models.holdout.choose_alarm_quantile: best event F1, out of fold). At the former 0.999 the forest announced 7 of
# 122 held-out failures and lost to the static rule on event F1 (docs/detector_quality.md).
ALARM_QUANTILE = 0.95


class ModelMismatchError(ValueError):
    """The persisted model was trained on a different feature list than the one offered for scoring."""


@dataclass(frozen=True)
class ModelMetadata:
    version: int
    created_at: str
    feature_names: list[str]
    training_start: str
    training_end: str
    training_rows: int
    training_controllers: int
    fill_values: list[float]  # per-feature training medians, for features not observable in a window
    alarm_threshold: float  # anomaly score at the training quantile `alarm_quantile`
    alarm_quantile: float
    params: dict
    sklearn_version: str
    sha256: str = ""


@dataclass(frozen=True)
class AnomalyModel:
    forest: IsolationForest
    metadata: ModelMetadata


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _fill(matrix: np.ndarray, fill_values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(matrix), fill_values, matrix)


def train_isolation_forest(
    features: WindowFeatures,
    controller_mask: np.ndarray,
    window_mask: np.ndarray,
    *,
    seed: int,
    alarm_quantile: float = ALARM_QUANTILE,
    n_estimators: int = 200,
) -> AnomalyModel:
    """Fit on the given controllers × windows only; the alarm threshold is the score quantile on that data."""
    matrix = features.rows(controller_mask, window_mask)
    # Training medians stand in for unobservable values; a feature never observed at all is filled with 0.
    observed = ~np.isnan(matrix).all(axis=0)
    fill_values = np.zeros(matrix.shape[1])
    fill_values[observed] = np.nanmedian(matrix[:, observed], axis=0)
    x = _fill(matrix, fill_values)
    params = {"n_estimators": n_estimators, "max_samples": min(4096, len(x)), "random_state": seed}
    forest = IsolationForest(**params).fit(x)
    train_scores = -forest.score_samples(x)
    ends = features.window_ends[window_mask]
    window_ns = int(features.window_ends[1] - features.window_ends[0]) if len(features.window_ends) > 1 else 0
    metadata = ModelMetadata(
        version=0,
        created_at=datetime.now(UTC).isoformat(),
        feature_names=list(features.names),
        training_start=_iso(int(ends.min()) - window_ns),
        training_end=_iso(int(ends.max())),
        training_rows=len(x),
        training_controllers=int(controller_mask.sum()),
        fill_values=fill_values.tolist(),
        alarm_threshold=float(np.quantile(train_scores, alarm_quantile)),
        alarm_quantile=alarm_quantile,
        params=params,
        sklearn_version=sklearn.__version__,
    )
    return AnomalyModel(forest, metadata)


def score_windows(model: AnomalyModel, features: WindowFeatures) -> np.ndarray:
    """Anomaly score [controller, window] (higher = more unusual); refuses features the model was not trained on."""
    expected = model.metadata.feature_names
    if list(features.names) != expected:
        missing = [n for n in expected if n not in features.names]
        extra = [n for n in features.names if n not in expected]
        raise ModelMismatchError(
            f"{MODEL_PREFIX}-v{model.metadata.version} was trained on other features "
            f"(missing {missing}, unexpected {extra}, or a different order): retrain it"
        )
    n_c, n_w, n_f = features.values.shape
    x = _fill(features.values.reshape(-1, n_f), np.asarray(model.metadata.fill_values))
    return -model.forest.score_samples(x).reshape(n_c, n_w)


def smoothed_alarms(scores: np.ndarray, threshold: float, *, smooth_n: int = 1, snooze_n: int = 24) -> np.ndarray:
    """anomstack-style alerting: alarm when the mean of the last `smooth_n` windows crosses the threshold, then
    stay quiet for `snooze_n` windows on that controller. Returns a boolean [controller, window] alarm grid.

    The default alarms on each window's own score, the rule `ALARM_QUANTILE` was chosen for."""
    n_c, n_w = scores.shape
    cumulative = np.cumsum(np.concatenate([np.zeros((n_c, 1)), scores], axis=1), axis=1)
    counts = np.minimum(np.arange(1, n_w + 1), smooth_n)
    starts = np.arange(1, n_w + 1) - counts
    smoothed = (cumulative[:, 1:] - cumulative[:, starts]) / counts
    crossing = smoothed >= threshold
    alarms = np.zeros_like(crossing)
    quiet_until = np.full(n_c, -1)
    for w in range(n_w):
        fire = crossing[:, w] & (w > quiet_until)
        alarms[:, w] = fire
        quiet_until = np.where(fire, w + snooze_n, quiet_until)
    return alarms
