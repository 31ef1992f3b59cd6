"""Health score 0–100 per controller per window: 100 × (1 − the calibrated early-warning risk), in points per reason.

The best health score measured on run A's held-out protocol is the early-warning model's calibrated risk
(docs/detector_quality.md): a score with its own hand-set weights ranked below a fixed count threshold. So the
health score is that risk, and explains itself exactly: the model is additive over features
(models.early_warning), so the risk above the floor of a controller healthiest on every feature splits into one
share per feature, and the features are grouped into reasons. 100 − health = base points (that floor) + the
points of every reason, to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import TS, described
from models.early_warning import EarlyWarningModel
from models.evaluation import min_cost_threshold
from models.features import WindowFeatures, describe_feature

# Reason code -> (what it is in words, the prefixes of the feature names it groups). Every feature has one reason.
REASONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "memory_errors": ("memory errors", ("ce_", "threshold_events_", "ue_events_", "overflow_events_", "media_")),
    "link_errors": (
        "link errors",
        ("link_ue_", "link_ce_", "aer_cor_", "cxl_crc_", "cxl_retry_", "recovery_entries_", "link_error_trend"),
    ),
    "link_instability": ("link drops and retrains", ("link_drops_", "link_retrains_", "hours_since_link_drop")),
    "reset_history": ("resets", ("resets_", "hours_since_reset")),
    "degraded_capacity": (
        "degraded capacity",
        ("link_bandwidth_lost", "maintenance_needed", "performance_degraded", "replacement_needed", "capacity_"),
    ),
    "slo_burn": ("latency SLO burn", ("slo_bad_fraction_",)),
    "temperature": ("temperature", ("temp_",)),
    "firmware_cohort": ("firmware cohort", ("cohort_",)),
    "wear": ("wear and age", ("life_used_pct", "age_days", "dimm_count")),
    "telemetry_gaps": ("missing health snapshots", ("snapshots_",)),
}
TOP_REASONS = 3
MIN_POINTS = 0.05  # a reason taking less is not shown among the top reasons

REASON = pa.struct(
    [
        pa.field("reason", pa.string()),
        pa.field("points", pa.float64()),
        pa.field("why", pa.string()),  # its largest feature, in words with units, beside its healthiest value
    ]
)
HEALTH_SCHEMA = pa.schema(
    [
        described("controller_id", pa.string(), "the controller scored", nullable=False),
        described("window_end", TS, "end of the hour scored (UTC)", nullable=False),
        described(
            "health", pa.float64(), "100 × (1 − risk): 100 = healthy, 0 = certain to fail within 24 h", nullable=False
        ),
        described(
            "top_reasons",
            pa.list_(REASON),
            f"the (up to {TOP_REASONS}) reasons that took the most points, most first",
            nullable=False,
        ),
        described(
            "risk",
            pa.float64(),
            "calibrated risk of a UE, unplanned reset or link drop in 15 min to 24 h",
            nullable=False,
        ),
        described(
            "base_points",
            pa.float64(),
            "100 × the risk of a controller healthiest on every feature (the floor)",
            nullable=False,
        ),
        described(
            "basis",
            pa.string(),
            "the model the score rests on: this lake's own, or the shipped one and why",
            nullable=False,
        ),
        *(
            described(f"points_{reason}", pa.float64(), f"points {words} took off the score (0 = none)", nullable=False)
            for reason, (words, _) in REASONS.items()
        ),
    ]
)


@dataclass(frozen=True)
class HealthPolicy:
    """slos.yaml's `health` section: what a missed failure and a needless alarm cost, which place the alarm line
    (health below 100 × (1 − threshold)) where their sum is least on the training side's out-of-fold risk."""

    missed_failure_cost: float  # a failure with no alarm 15 min to 24 h before it: a host crash
    false_alarm_cost: float  # an alarm with no failure after it: a needless drain-and-inspect

    def alarm_threshold(self, labels: np.ndarray, risk: np.ndarray) -> float:
        return min_cost_threshold(labels, risk, self.missed_failure_cost, self.false_alarm_cost)


def reason_of(feature: str) -> str:
    """The reason a feature's points count towards."""
    for reason, (_, prefixes) in REASONS.items():
        if feature.startswith(prefixes):
            return reason
    raise ValueError(f"feature {feature!r} belongs to no health reason: add it to models.health.REASONS")


@dataclass(frozen=True)
class HealthScores:
    """health[c, w] in 0..100; shares[c, w, f]: the points each feature took; base_points: the floor."""

    health: np.ndarray
    shares: np.ndarray
    base_points: float
    feature_reasons: np.ndarray  # per feature: its index in REASONS

    @property
    def points(self) -> np.ndarray:
        """[c, w, reason]: the points each reason in REASONS took."""
        n_c, n_w, _ = self.shares.shape
        out = np.zeros((n_c, n_w, len(REASONS)))
        for r in range(len(REASONS)):
            out[:, :, r] = self.shares[:, :, self.feature_reasons == r].sum(axis=2)
        return out

    def risk(self) -> np.ndarray:
        """Points lost: higher means less healthy (for ranking metrics)."""
        return 100.0 - self.health


def score_health(model: EarlyWarningModel, features: WindowFeatures) -> HealthScores:
    """Score every controller × window of `features` with a trained early-warning model."""
    codes = list(REASONS)
    feature_reasons = np.array([codes.index(reason_of(name)) for name in features.names])
    return HealthScores(
        health=100.0 * (1.0 - model.risk(features)),
        shares=100.0 * model.risk_shares(features),
        base_points=100.0 * model.base_risk(),
        feature_reasons=feature_reasons,
    )


def _why(model: EarlyWarningModel, feature: int, value: float) -> str:
    name = model.feature_names[feature]
    what, shown = describe_feature(name, value)
    _, healthiest = describe_feature(name, model.reference[feature])
    return f"{what}: {shown} (healthiest in training {healthiest})"


def health_table(model: EarlyWarningModel, features: WindowFeatures, scores: HealthScores, basis: str) -> pa.Table:
    """One row per controller and window in HEALTH_SCHEMA, each saying what it rests on (`basis`, in words); top
    reasons are those that took at least MIN_POINTS, each with its largest feature in words."""
    n_c, n_w = scores.health.shape
    points = scores.points.reshape(-1, len(REASONS))
    shares = scores.shares.reshape(n_c * n_w, -1)
    values = features.values.reshape(n_c * n_w, -1)
    codes = list(REASONS)
    top = []
    for row, order in enumerate(np.argsort(-points, axis=1)[:, :TOP_REASONS]):
        found = []
        for r in order:
            if points[row, r] < MIN_POINTS:
                break
            mine = np.flatnonzero(scores.feature_reasons == r)
            f = int(mine[np.argmax(shares[row, mine])])
            found.append({"reason": codes[r], "points": float(points[row, r]), "why": _why(model, f, values[row, f])})
        top.append(found)
    return pa.table(
        {
            "controller_id": features.controllers.ids.take(pa.array(np.repeat(np.arange(n_c), n_w))),
            "window_end": pa.array(np.tile(features.window_ends, n_c), pa.int64()).cast(TS),
            "health": scores.health.ravel(),
            "top_reasons": pa.array(top, pa.list_(REASON)),
            "risk": 1.0 - scores.health.ravel() / 100.0,
            "base_points": np.full(n_c * n_w, scores.base_points),
            "basis": pa.array([basis] * (n_c * n_w), pa.string()),
            **{f"points_{reason}": points[:, i] for i, reason in enumerate(REASONS)},
        },
        schema=HEALTH_SCHEMA,
    )
