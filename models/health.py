"""Health score 0–100 per controller per window, with the reasons that cost it points.

The score is additive so it explains itself: 100 minus the points each reason takes, where a reason takes up to
its weight in proportion to its severity (0..1). Severities are measured against the fleet: a feature only hurts
once it rises above what the fleet's own controllers show in the baseline period (a high quantile), and the
penalty grows with the log-ratio above it. Weights are fixed by operational judgement, not fitted, so the ranking
can be checked against failures it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ingest.contract import TS
from models.features import WindowFeatures
from models.slo.spec import Slo, duration_s

# Reason code -> (weight in points, features whose fleet-relative excess it measures). Weights sum to 100.
FLEET_RELATIVE_REASONS: dict[str, tuple[float, tuple[str, ...]]] = {
    "error_rate": (
        25.0,
        (
            "ce_1h",
            "ce_24h",
            "ce_trend",
            "threshold_events_24h",
            "ue_events_24h",
            "overflow_events_24h",
            "threshold_events_per_day_7d",
            "ue_events_per_day_7d",
        ),
    ),
    "link_instability": (
        20.0,
        (
            "link_drops_24h",
            "link_retrains_24h",
            "aer_cor_total_24h",
            "link_error_trend",
            "cxl_crc_thresh_hits_24h",
            "link_ce_events_24h",
            "link_drops_per_day_7d",
            "link_retrains_per_day_7d",
            "aer_cor_total_per_day_7d",
        ),
    ),
    "reset_history": (15.0, ("resets_24h", "resets_per_day_7d")),
}
# Reasons whose severity is an absolute reading rather than a comparison with the fleet.
ABSOLUTE_REASON_WEIGHTS: dict[str, float] = {
    "degraded_capacity": 15.0,
    "slo_burn": 10.0,
    "temperature": 8.0,
    "firmware_cohort": 7.0,
}
REASONS = (*FLEET_RELATIVE_REASONS, *ABSOLUTE_REASON_WEIGHTS)
# A feature at e-fold (×2.7) its fleet baseline takes 1 - 1/e ≈ 63% of its reason's weight.
EXCESS_SCALE = 1.0
TOP_REASONS = 3

HEALTH_SCHEMA = pa.schema(
    [
        pa.field("controller_id", pa.string(), nullable=False, metadata={"description": "the controller scored"}),
        pa.field("window_end", TS, nullable=False, metadata={"description": "end of the hour scored (UTC)"}),
        pa.field(
            "health",
            pa.float64(),
            nullable=False,
            metadata={"description": "100 minus the points every reason took: 100 = healthy, 0 = worst"},
        ),
        pa.field(
            "top_reasons",
            pa.list_(pa.struct([pa.field("reason", pa.string()), pa.field("points", pa.float64())])),
            nullable=False,
            metadata={"description": f"the (up to {TOP_REASONS}) reasons that took the most points, most first"},
        ),
        *(
            pa.field(
                f"points_{reason}",
                pa.float64(),
                nullable=False,
                metadata={"description": f"points the {reason} reason took off the score (0 = none)"},
            )
            for reason in REASONS
        ),
    ]
)


@dataclass(frozen=True)
class HealthPolicy:
    """Absolute thresholds (operational choices) next to the fleet baselines learned by `fit_baseline`."""

    # The per-controller latency SLO's error budget, and the burn factor of its fastest page tier, at which the
    # SLO-burn reason takes all its points. No defaults: slos.yaml owns them, `for_slo` reads them from an SLO.
    slo_error_budget: float
    burn_page_factor: float
    baseline_quantile: float = 0.9  # the top decile of the fleet starts to lose points (best AP on training data)
    temp_warn_c: float = 75.0
    temp_critical_c: float = 90.0
    cohort_saturation: float = float(np.log(4.0))  # a firmware cohort with 4× the fleet's outage rate
    baseline: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_slo(cls, slo: Slo) -> HealthPolicy:
        """A policy measuring SLO burn against `slo` (a per-controller latency SLO from models.slo)."""
        pages = [tier for tier in slo.tiers if tier.severity == "page"] or list(slo.tiers)
        fastest = min(pages, key=lambda tier: duration_s(tier.long))
        return cls(slo_error_budget=slo.error_budget, burn_page_factor=fastest.factor)


def fit_baseline(features: WindowFeatures, rows: tuple[np.ndarray, np.ndarray], policy: HealthPolicy) -> HealthPolicy:
    """Learn each fleet-relative feature's baseline: its `baseline_quantile` over the given controller × windows."""
    controller_mask, window_mask = rows
    matrix = features.rows(controller_mask, window_mask)
    baseline = {}
    for _, names in FLEET_RELATIVE_REASONS.values():
        for name in names:
            values = matrix[:, features.names.index(name)]
            values = values[~np.isnan(values)]
            baseline[name] = float(np.quantile(values, policy.baseline_quantile)) if len(values) else 0.0
    return HealthPolicy(**{**policy.__dict__, "baseline": baseline})


@dataclass(frozen=True)
class HealthScores:
    """health[c, w] in 0..100 and points[c, w, r]: what each reason in REASONS took."""

    health: np.ndarray
    points: np.ndarray

    def risk(self) -> np.ndarray:
        """Points lost: higher means less healthy (for ranking metrics)."""
        return 100.0 - self.health


def _excess_severity(values: np.ndarray, baseline: float) -> np.ndarray:
    return 1.0 - np.exp(-np.maximum(np.nan_to_num(values) - baseline, 0.0) / EXCESS_SCALE)


def score_health(features: WindowFeatures, policy: HealthPolicy) -> HealthScores:
    """Score every controller × window of `features` under a policy with a fitted baseline."""
    if not policy.baseline:
        raise ValueError("the health policy has no fleet baseline: call fit_baseline first")
    severities: dict[str, np.ndarray] = {}
    for reason, (_, names) in FLEET_RELATIVE_REASONS.items():
        severities[reason] = np.max([_excess_severity(features.column(n), policy.baseline[n]) for n in names], axis=0)
    bandwidth_lost = features.column("link_bandwidth_lost")
    capacity_flags = np.maximum.reduce(
        [features.column(n) for n in ("capacity_degraded", "performance_degraded", "replacement_needed")]
    )
    severities["degraded_capacity"] = np.clip(np.maximum(bandwidth_lost * 2.0, capacity_flags), 0.0, 1.0)
    burn = features.column("slo_bad_fraction_1h") / policy.slo_error_budget
    severities["slo_burn"] = np.clip((burn - 1.0) / (policy.burn_page_factor - 1.0), 0.0, 1.0)
    temp = np.nan_to_num(features.column("temp_max_c"), nan=0.0)
    heat = (temp - policy.temp_warn_c) / (policy.temp_critical_c - policy.temp_warn_c)
    severities["temperature"] = np.clip(np.maximum(heat, features.column("temp_alarm") / 2.0), 0.0, 1.0)
    cohort = features.column("cohort_outage_ratio_24h")
    severities["firmware_cohort"] = np.clip(cohort / policy.cohort_saturation, 0.0, 1.0)
    weights = {reason: weight for reason, (weight, _) in FLEET_RELATIVE_REASONS.items()} | ABSOLUTE_REASON_WEIGHTS
    points = np.stack([weights[r] * severities[r] for r in REASONS], axis=2)
    return HealthScores(health=100.0 - points.sum(axis=2), points=points)


def health_table(features: WindowFeatures, scores: HealthScores) -> pa.Table:
    """One row per controller and window in HEALTH_SCHEMA; top reasons are those that took any points."""
    n_c, n_w = scores.health.shape
    flat_points = scores.points.reshape(-1, len(REASONS))
    order = np.argsort(-flat_points, axis=1)[:, :TOP_REASONS]
    top = [
        [{"reason": REASONS[i], "points": float(p[i])} for i in idx if p[i] > 0.05]
        for idx, p in zip(order, flat_points, strict=True)
    ]
    return pa.table(
        {
            "controller_id": features.controllers.ids.take(pa.array(np.repeat(np.arange(n_c), n_w))),
            "window_end": pa.array(np.tile(features.window_ends, n_c), pa.int64()).cast(TS),
            "health": scores.health.ravel(),
            "top_reasons": top,
            **{f"points_{reason}": flat_points[:, i] for i, reason in enumerate(REASONS)},
        },
        schema=HEALTH_SCHEMA,
    )
