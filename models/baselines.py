"""Static-threshold baselines: what a fleet gets from fixed rules, measured beside every detector in the same run.

Each baseline is deliberately simple and fixed in advance (never fitted), so a detector's margin over it is
the value the detector adds.
"""

from __future__ import annotations

import numpy as np

from models.features import WindowFeatures
from models.link_events import LinkConfig
from models.resets import ResetConfig

# Resets: the vendor's reset record, plus a missed-heartbeat rule (a gap in health snapshots).
RESET_BASELINE = ResetConfig(evidence=("row", "gap"), gap_alone_is_reset=True)
# Link drops: alarm when a snapshot's link_down_count went up.
LINK_DROP_BASELINE = LinkConfig(drop_sources=("counter",))
# Failure risk: a device-style alert on any of these 24 h counts reaching its threshold.
STATIC_THRESHOLDS: dict[str, float] = {
    "ce_24h": 1000.0,  # corrected memory errors
    "aer_cor_total_24h": 100.0,  # correctable link errors
    "ue_events_24h": 1.0,  # any uncorrectable error record
}


def static_risk(features: WindowFeatures) -> np.ndarray:
    """max(count / threshold) over STATIC_THRESHOLDS, per controller × window: >= 1 means the rule alarms.

    As a ranking it orders windows by how far past (or short of) a threshold they are, which gives the
    baseline its PR-AUC and ROC-AUC."""
    ratios = [np.expm1(features.column(name)) / limit for name, limit in STATIC_THRESHOLDS.items()]
    return np.max(ratios, axis=0)
