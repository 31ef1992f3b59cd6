"""Early warning: rank controllers by the risk of a UE, reset or link drop in the next 24 h, from precursors.

A gradient-boosted classifier over the shared window features, fitted on training controllers and training time
only. The model size and the alarm threshold are chosen on out-of-fold predictions (folds by controller), never on
predictions the model made for rows it was fitted on, and never on test data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

from ingest.contract import TS
from models.features import WindowFeatures

RANKING_SCHEMA = pa.schema(
    [
        pa.field("controller_id", pa.string(), nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("risk", pa.float64(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),  # 1 = most at risk in that window
        pa.field("alarm", pa.bool_(), nullable=False),
    ]
)


@dataclass(frozen=True)
class EarlyWarningModel:
    classifier: HistGradientBoostingClassifier
    feature_names: tuple[str, ...]
    used: np.ndarray  # features observable in training (a column that is never observed carries nothing)
    threshold: float  # alarm when risk >= threshold
    params: dict  # the candidate cross-validation chose

    def risk(self, features: WindowFeatures) -> np.ndarray:
        """Probability-like risk [controller, window]."""
        if features.names != self.feature_names:
            raise ValueError("the early-warning model was trained on a different feature list: retrain it")
        n_c, n_w, n_f = features.values.shape
        x = features.values.reshape(-1, n_f)[:, self.used]
        return self.classifier.predict_proba(x)[:, 1].reshape(n_c, n_w)


# Candidate model sizes: (tree depth, boosting rounds to compare). Positives are rare and come from a few hundred
# controllers, so only shallow, strongly regularised trees are tried; grouped cross-validation picks one.
CANDIDATES: tuple[tuple[int, tuple[int, ...]], ...] = ((2, (30, 60, 120)), (3, (30, 60)))
MIN_SAMPLES_LEAF = {2: 200, 3: 100}


def _classifier(depth: int, rounds: int, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_depth=depth,
        max_iter=rounds,
        min_samples_leaf=MIN_SAMPLES_LEAF[depth],
        early_stopping=False,
        random_state=seed,
    )


def _out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> dict:
    """Out-of-fold risk of every candidate (depth, rounds); one fit per depth and fold, read at each round count."""
    risks = {(d, r): np.zeros(len(y)) for d, rounds in CANDIDATES for r in rounds}
    for fit_rows, held_rows in GroupKFold(n_splits=folds).split(x, y, groups):
        for depth, rounds in CANDIDATES:
            model = _classifier(depth, max(rounds), seed).fit(x[fit_rows], y[fit_rows])
            for done, proba in enumerate(model.staged_predict_proba(x[held_rows]), start=1):
                if done in rounds:
                    risks[depth, done][held_rows] = proba[:, 1]
    return risks


def train_early_warning(
    features: WindowFeatures,
    labels: np.ndarray,
    controller_mask: np.ndarray,
    window_mask: np.ndarray,
    *,
    choose_threshold,
    seed: int,
    folds: int = 4,
) -> EarlyWarningModel:
    """Fit on controllers × windows of the training split only.

    Grouped cross-validation (folds by controller, so no controller is in both halves) picks the candidate with
    the best out-of-fold average precision; `choose_threshold(labels, risk)` then picks the alarm threshold from
    that candidate's out-of-fold risks (evaluation supplies the cost rule, keeping ground-truth policy there).
    """
    x = features.rows(controller_mask, window_mask)
    used = ~np.isnan(x).all(axis=0)
    x = x[:, used]
    y = labels[controller_mask][:, window_mask].ravel()
    groups = np.repeat(np.flatnonzero(controller_mask), int(window_mask.sum()))
    risks = _out_of_fold(x, y, groups, folds, seed)
    (depth, rounds), out_of_fold = max(risks.items(), key=lambda item: average_precision_score(y, item[1]))
    classifier = _classifier(depth, rounds, seed).fit(x, y)
    threshold = float(choose_threshold(y, out_of_fold))
    return EarlyWarningModel(classifier, features.names, used, threshold, {"max_depth": depth, "max_iter": rounds})


def ranking_table(features: WindowFeatures, risk: np.ndarray, threshold: float) -> pa.Table:
    """Controllers ranked by risk within each window, with the alarm flag."""
    n_c, n_w = risk.shape
    ranks = np.empty_like(risk, dtype=np.int64)
    ranks[np.argsort(-risk, axis=0, kind="stable"), np.arange(n_w)] = np.arange(1, n_c + 1)[:, None]
    return pa.table(
        {
            "controller_id": features.controllers.ids.take(pa.array(np.repeat(np.arange(n_c), n_w))),
            "window_end": pa.array(np.tile(features.window_ends, n_c), pa.int64()).cast(TS),
            "risk": risk.ravel(),
            "rank": ranks.ravel(),
            "alarm": (risk >= threshold).ravel(),
        },
        schema=RANKING_SCHEMA,
    )
