"""Event-rate anomalies: event rates abnormal for the fleet.

Each asks one question per controller (and per firmware cohort): is this many resets or link events in the last
24 h plausible at the fleet's current rate? A Poisson tail with a Bonferroni bound answers it without training.
(An IsolationForest over the window features lived here until it lost to the static count rule on held-out event
F1: docs/detector_quality.md.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from ingest.contract import TS, described
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
        described(
            "scope", pa.string(), "controller, or cohort (the controllers of one firmware version)", nullable=False
        ),
        described("subject", pa.string(), "the controller id or the firmware version", nullable=False),
        described("kind", pa.string(), "the event count tested, e.g. resets_24h or link_drops_24h", nullable=False),
        described("window_end", TS, "end of the window tested (UTC)", nullable=False),
        described("observed", pa.float64(), "events observed in the window", nullable=False),
        described("expected", pa.float64(), "events expected in the window from the baseline rate", nullable=False),
        described(
            "p_value",
            pa.float64(),
            "the test's p-value for the observed count: small means unusually many events",
            nullable=False,
        ),
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
