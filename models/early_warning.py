"""Early warning: rank controllers by the risk of a UE, reset or link drop in the next 24 h, from precursors.

A boosted additive model over the shared window features, fitted on training controllers and training time only:
every tree is a stump on one feature, so the log-odds are a sum of one function per feature, and the risk of any
controller splits exactly into what each feature adds (`risk_shares`); the health score is that split
(models.health). Its size, its calibration (Platt scaling of the log-odds) and its alarm threshold are chosen on
out-of-fold predictions (folds by controller), never on predictions the model made for rows it was fitted on, and
never on test data. On run A's training side the additive model ranked as well as depth-2 and depth-3 trees
(docs/detector_quality.md), so nothing is given up for the exact explanation.

Offline evaluation labels windows from the simulator's truth (models.evaluation.failure_events); the product has
no truth and labels them from what the lake observed (`observed_failures`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

from ingest.contract import TS
from models.evaluation import score_events
from models.features import WindowFeatures, describe_feature, memory_ue_rows, planned_resets
from models.series import Controllers, equals, is_in, timestamps_ns

RANKING_SCHEMA = pa.schema(
    [
        pa.field("controller_id", pa.string(), nullable=False),
        pa.field("window_end", TS, nullable=False),
        pa.field("risk", pa.float64(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),  # 1 = most at risk in that window
        pa.field("alarm", pa.bool_(), nullable=False),
    ]
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class EarlyWarningModel:
    classifier: HistGradientBoostingClassifier  # stumps only: log-odds additive over features
    feature_names: tuple[str, ...]
    used: np.ndarray  # features observable in training (a column that is never observed carries nothing)
    threshold: float  # alarm when risk >= threshold
    params: dict  # the candidate cross-validation chose
    calibration: tuple[float, float]  # (slope, intercept) mapping the boosted log-odds to calibrated log-odds
    reference: np.ndarray  # per feature: its healthiest training value (lowest risk; NaN = missing, or unused)
    out_of_fold: np.ndarray  # [training controller, training window]: the chosen candidate's calibrated OOF risk
    out_of_fold_pr_auc: float

    def risk(self, features: WindowFeatures) -> np.ndarray:
        """Calibrated probability of a failure within the horizon [controller, window]."""
        return _sigmoid(self._log_odds(self._rows(features))).reshape(features.values.shape[:2])

    def base_risk(self) -> float:
        """The risk of a controller at its healthiest training value on every feature: the floor every risk
        is split above."""
        return float(_sigmoid(self._log_odds(self.reference[None, :]))[0])

    def contributions(self, features: WindowFeatures) -> np.ndarray:
        """[controller, window, feature]: calibrated log-odds added by each feature over its healthiest training
        value. Exact, not an approximation: the model is a sum of one function per feature, so these add up to
        the log-odds above the reference's, and are >= 0 for any value inside the training range."""
        rows = self._rows(features)
        at_reference = self._log_odds(self.reference[None, :])[0]
        out = np.zeros(rows.shape)
        for f in np.flatnonzero(self.used):  # additive: each feature's term depends on its own value only
            values, inverse = np.unique(rows[:, f], return_inverse=True)
            probe = np.tile(self.reference, (len(values), 1))
            probe[:, f] = values
            out[:, f] = (self._log_odds(probe) - at_reference)[inverse]
        return out.reshape(features.values.shape)

    def risk_shares(self, features: WindowFeatures) -> np.ndarray:
        """[controller, window, feature]: the risk above `base_risk` split among the features in proportion to
        their log-odds contributions (Aumann-Shapley along the straight path in contribution space, exact for an
        additive model): base_risk + the shares = risk, to rounding."""
        contributions = self.contributions(features)
        total = contributions.sum(axis=2, keepdims=True)
        above = self.risk(features)[:, :, None] - self.base_risk()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total != 0, above * contributions / total, 0.0)

    def _rows(self, features: WindowFeatures) -> np.ndarray:
        if features.names != self.feature_names:
            raise ValueError("the early-warning model was trained on a different feature list: retrain it")
        return features.values.reshape(-1, len(features.names))

    def _log_odds(self, rows: np.ndarray) -> np.ndarray:
        slope, intercept = self.calibration
        return slope * self.classifier.decision_function(rows[:, self.used]) + intercept


# Candidate sizes: boosting rounds of stumps (depth 1, so the model stays additive). Positives are rare and come
# from a few hundred controllers, so the learning rate is small and leaves large; grouped cross-validation picks.
ROUNDS = (60, 120, 240)
LEARNING_RATE = 0.05
MIN_SAMPLES_LEAF = 200


def _classifier(rounds: int, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=LEARNING_RATE,
        max_depth=1,
        max_iter=rounds,
        min_samples_leaf=MIN_SAMPLES_LEAF,
        early_stopping=False,
        random_state=seed,
    )


def _out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> dict:
    """Out-of-fold boosted log-odds of every candidate round count; one fit per fold, read at each count."""
    log_odds = {rounds: np.zeros(len(y)) for rounds in ROUNDS}
    for fit_rows, held_rows in GroupKFold(n_splits=folds).split(x, y, groups):
        model = _classifier(max(ROUNDS), seed).fit(x[fit_rows], y[fit_rows])
        for done, z in enumerate(model.staged_decision_function(x[held_rows]), start=1):
            if done in log_odds:
                log_odds[done][held_rows] = z
    return log_odds


def _calibration(log_odds: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: the logistic fit of the labels on out-of-fold log-odds (linear, so additivity survives)."""
    fit = LogisticRegression(C=1e6).fit(log_odds[:, None], y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def _healthiest(classifier: HistGradientBoostingClassifier, x: np.ndarray) -> np.ndarray:
    """Per feature, the training value (missing included, if seen) with the lowest log-odds. The model is additive,
    so the other features' values (here the medians) do not change which one that is."""
    median = np.nanmedian(x, axis=0)
    healthiest = median.copy()
    for f in range(x.shape[1]):
        column = x[:, f]
        candidates = np.unique(column[~np.isnan(column)])
        if np.isnan(column).any():
            candidates = np.append(candidates, np.nan)
        rows = np.tile(median, (len(candidates), 1))
        rows[:, f] = candidates
        healthiest[f] = candidates[np.argmin(classifier.decision_function(rows))]
    return healthiest


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

    Grouped cross-validation (folds by controller, so no controller is in both halves) picks the round count with
    the best out-of-fold average precision and fits the calibration on that candidate's out-of-fold log-odds;
    `choose_threshold(labels, risk)` then picks the alarm threshold from the calibrated out-of-fold risks
    (evaluation supplies the cost rule, keeping ground-truth policy there).
    """
    x = features.rows(controller_mask, window_mask)
    used = ~np.isnan(x).all(axis=0)
    x = x[:, used]
    y = labels[controller_mask][:, window_mask].ravel()
    groups = np.repeat(np.flatnonzero(controller_mask), int(window_mask.sum()))
    log_odds = _out_of_fold(x, y, groups, folds, seed)
    scored = {rounds: float(average_precision_score(y, z)) for rounds, z in log_odds.items()}
    rounds = max(scored, key=scored.__getitem__)
    calibration = _calibration(log_odds[rounds], y)
    out_of_fold = _sigmoid(calibration[0] * log_odds[rounds] + calibration[1])
    classifier = _classifier(rounds, seed).fit(x, y)
    reference = np.full(len(features.names), np.nan)
    reference[used] = _healthiest(classifier, x)
    return EarlyWarningModel(
        classifier,
        features.names,
        used,
        float(choose_threshold(y, out_of_fold)),
        {"max_depth": 1, "max_iter": rounds},
        calibration,
        reference,
        out_of_fold.reshape(int(controller_mask.sum()), int(window_mask.sum())),
        scored[rounds],
    )


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


# Explicit resets of this kind are planned maintenance (a firmware activation), not the controller failing.
PLANNED_RESET_KINDS = ("fw_activate",)


def observed_failures(
    ue_rows: pa.Table, resets: pa.Table, incidents: pa.Table, controllers: Controllers
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, ns) of the failures the lake observed, the product's stand-in for models.evaluation.failure_events:
    memory UE records (at their timestamp), detected resets other than a reported firmware activation or one inside
    a declared maintenance window (`planned`) (at `reset_ts`), and detected link drops (at `start_ts`).

    Unlike the truth, telemetry cannot tell an undeclared silent planned reset or a rack losing power from a
    controller failure: those are labelled failures here."""
    ue = memory_ue_rows(ue_rows)
    planned = is_in(resets.column("reset_kind"), PLANNED_RESET_KINDS) | planned_resets(resets)
    drops = equals(incidents.column("kind"), "drop")
    codes = np.concatenate(
        [
            controllers.codes(ue_rows.column("controller_id"))[ue],
            controllers.codes(resets.column("controller_id"))[~planned],
            controllers.codes(incidents.column("controller_id"))[drops],
        ]
    )
    ts = np.concatenate(
        [
            timestamps_ns(ue_rows.column("ts"))[ue],
            timestamps_ns(resets.column("reset_ts"))[~planned],
            timestamps_ns(incidents.column("start_ts"))[drops],
        ]
    )
    known = codes >= 0
    return codes[known], ts[known]


@dataclass(frozen=True)
class LeadTime:
    """How early the model's alarms came on the training side (out-of-fold, so on rows it was not fitted on)."""

    median_h: float  # NaN when no failure was announced
    announced: int  # failures with an alarm in [t - horizon, t - min lead]
    failures: int  # failures whose look-back overlaps the training windows


def training_lead_time(
    model: EarlyWarningModel,
    controller_mask: np.ndarray,
    window_ends: np.ndarray,
    failures: tuple[np.ndarray, np.ndarray],
    *,
    horizon_ns: int,
    min_lead_ns: int,
) -> LeadTime:
    """Median time from the first out-of-fold alarm in a failure's look-back [t - horizon, t - min lead] to the
    failure, over the training controllers' failures that were announced; `window_ends` are the training windows.
    Alarms within a horizon of an episode's start join it (as the offline evaluation scores episodes)."""
    rows = np.flatnonzero(controller_mask)
    c, w = np.nonzero(model.out_of_fold >= model.threshold)
    codes, ts = failures
    first, last = int(window_ends.min()), int(window_ends.max())
    keep = controller_mask[codes] & (ts >= first + min_lead_ns) & (ts <= last + horizon_ns)
    score = score_events(
        codes[keep],
        ts[keep],
        rows[c],
        window_ends[w],
        pre_ns=horizon_ns,
        post_ns=-min_lead_ns,
        cooldown_ns=horizon_ns,
        controller_days=len(rows) * len(window_ends) / 24,
    )
    return LeadTime(-score.median_delay_s / 3600, score.detected, score.events)


def reasons(model: EarlyWarningModel, features: WindowFeatures, shares: np.ndarray, top: int = 3) -> list:
    """Per controller and window (controller-major, as ranking_table): up to `top` features with the largest
    `shares` of the risk (`EarlyWarningModel.risk_shares`), each {feature, reason (in words, with units, beside the
    healthiest training value), risk_change (its share)}."""
    n_c, n_w, _ = shares.shape
    flat = shares.reshape(n_c * n_w, -1)
    values = features.values.reshape(n_c * n_w, -1)
    order = np.argsort(-flat, axis=1)[:, :top]
    out = []
    for row, picks in enumerate(order):
        found = []
        for f in picks:
            if flat[row, f] <= 0:
                break
            what, value = describe_feature(model.feature_names[f], values[row, f])
            _, healthiest = describe_feature(model.feature_names[f], model.reference[f])
            found.append(
                {
                    "feature": model.feature_names[f],
                    "reason": f"{what}: {value} (healthiest in training {healthiest})",
                    "risk_change": float(flat[row, f]),
                }
            )
        out.append(found)
    return out


def new_alarms(alarm: np.ndarray) -> np.ndarray:
    """[controller, window]: in alarm now and not in the window before (the first window has no before)."""
    before = np.zeros_like(alarm)
    before[:, 1:] = alarm[:, :-1]
    return alarm & ~before
