"""Early warning: rank controllers by the risk of a UE, reset or link drop in the next 24 h, from precursors.

A gradient-boosted classifier over the shared window features, fitted on training controllers and training time
only. The model size and the alarm threshold are chosen on out-of-fold predictions (folds by controller), never on
predictions the model made for rows it was fitted on, and never on test data.

Offline evaluation labels windows from the simulator's truth (models.evaluation.failure_events); the product has
no truth and labels them from what the lake observed (`observed_failures`). Each risk comes with its reasons: the
change in risk when one feature is set back to its training median (`contributions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

from ingest.contract import TS
from models.evaluation import score_events
from models.features import WindowFeatures, describe_feature, memory_ue_rows
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


@dataclass(frozen=True)
class EarlyWarningModel:
    classifier: HistGradientBoostingClassifier
    feature_names: tuple[str, ...]
    used: np.ndarray  # features observable in training (a column that is never observed carries nothing)
    threshold: float  # alarm when risk >= threshold
    params: dict  # the candidate cross-validation chose
    reference: np.ndarray  # per feature: its median over the training rows (NaN if never observed)
    out_of_fold: np.ndarray  # [training controller, training window]: the chosen candidate's out-of-fold risk
    out_of_fold_pr_auc: float

    def risk(self, features: WindowFeatures) -> np.ndarray:
        """Probability-like risk [controller, window]."""
        self._check(features)
        n_c, n_w, n_f = features.values.shape
        return self._proba(features.values.reshape(-1, n_f)).reshape(n_c, n_w)

    def _check(self, features: WindowFeatures) -> None:
        if features.names != self.feature_names:
            raise ValueError("the early-warning model was trained on a different feature list: retrain it")

    def _proba(self, rows: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(rows[:, self.used])[:, 1]

    def contributions(self, features: WindowFeatures) -> np.ndarray:
        """[controller, window, feature]: risk minus the risk with that one feature set to its training median.

        Gradient-boosted trees give no exact additive split of a risk, so this is an approximation, named for
        what it is: positive = the feature's value pushes this controller's risk above what a typical value
        would give. Interactions are not shared out, so contributions need not add up to the risk."""
        self._check(features)
        n_c, n_w, n_f = features.values.shape
        rows = features.values.reshape(-1, n_f)
        risk = self._proba(rows)
        out = np.zeros((len(rows), n_f))
        for f in np.flatnonzero(self.used):
            typical = rows.copy()
            typical[:, f] = self.reference[f]
            out[:, f] = risk - self._proba(typical)
        return out.reshape(n_c, n_w, n_f)


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
    reference = np.full(x.shape[1], np.nan)
    reference[used] = np.nanmedian(x[:, used], axis=0)
    x = x[:, used]
    y = labels[controller_mask][:, window_mask].ravel()
    groups = np.repeat(np.flatnonzero(controller_mask), int(window_mask.sum()))
    risks = _out_of_fold(x, y, groups, folds, seed)
    scored = {candidate: float(average_precision_score(y, risk)) for candidate, risk in risks.items()}
    depth, rounds = max(scored, key=scored.__getitem__)
    classifier = _classifier(depth, rounds, seed).fit(x, y)
    out_of_fold = risks[depth, rounds]
    return EarlyWarningModel(
        classifier,
        features.names,
        used,
        float(choose_threshold(y, out_of_fold)),
        {"max_depth": depth, "max_iter": rounds},
        reference,
        out_of_fold.reshape(int(controller_mask.sum()), int(window_mask.sum())),
        scored[depth, rounds],
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
    memory UE records (at their timestamp), detected resets other than a reported firmware activation (at
    `reset_ts`) and detected link drops (at `start_ts`).

    Unlike the truth, telemetry cannot tell a silent planned reset or a rack losing power from a controller
    failure: those are labelled failures here."""
    ue = memory_ue_rows(ue_rows)
    planned = is_in(resets.column("reset_kind"), PLANNED_RESET_KINDS)
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


def reasons(model: EarlyWarningModel, features: WindowFeatures, contributions: np.ndarray, top: int = 3) -> list:
    """Per controller and window (controller-major, as ranking_table): up to `top` features that push the risk
    up, largest first, each {feature, reason (in words, with units, beside the training median), risk_change}."""
    n_c, n_w, _ = contributions.shape
    flat = contributions.reshape(n_c * n_w, -1)
    values = features.values.reshape(n_c * n_w, -1)
    order = np.argsort(-flat, axis=1)[:, :top]
    out = []
    for row, picks in enumerate(order):
        found = []
        for f in picks:
            if flat[row, f] <= 0:
                break
            what, value = describe_feature(model.feature_names[f], values[row, f])
            _, typical = describe_feature(model.feature_names[f], model.reference[f])
            found.append(
                {
                    "feature": model.feature_names[f],
                    "reason": f"{what}: {value} (training median {typical})",
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
