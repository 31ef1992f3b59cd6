"""Detector quality against ground truth (fault_model.md §5): event windows, alarm episodes, delays, ranking metrics.

Truth is joined here and only here; detectors never see it. Event detectors (resets, link drops) are scored with
event windows over cooldown-merged alarm episodes, never point-wise over telemetry rows. Predictors (health score,
early warning) are scored on controller-hours with PR-AUC/ROC-AUC and, once thresholded, with the same event
windows shifted before the failure (lead time). Splits are by time and by controller, so nothing is scored on data
its model was fitted on.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from sklearn.metrics import average_precision_score, roc_auc_score

from models.series import NS_PER_S, NULL_TS, Controllers, equals, is_in, timestamps_ns

NS_PER_DAY = 86_400 * NS_PER_S


# ---------------------------------------------------------------------------------------------------------
# Alarm episodes and event-window matching.
# ---------------------------------------------------------------------------------------------------------


def alarm_episodes(codes: np.ndarray, ts: np.ndarray, cooldown_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge alarms per controller into episodes: an alarm within `cooldown_ns` of its episode's start joins it.

    Measuring from the episode start (not the last alarm) keeps a flapping detector from hiding a reset loop
    inside one endless episode. Returns (codes, start_ts) of the episodes.
    """
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    keep = np.zeros(len(ts), dtype=bool)
    episode_code, episode_start = -1, 0
    for i, (code, t) in enumerate(zip(codes.tolist(), ts.tolist(), strict=True)):
        if code != episode_code or t - episode_start > cooldown_ns:
            keep[i] = True
            episode_code, episode_start = code, t
    return codes[keep], ts[keep]


@dataclass(frozen=True)
class EventScore:
    """Event-window quality of one detector: recall over events, precision over alarm episodes, delays."""

    events: int
    detected: int
    episodes: int
    false_episodes: int
    delays_s: np.ndarray  # t_alarm - t_event of each detected event (negative = early)
    controller_days: float

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else float("nan")

    @property
    def precision(self) -> float:
        return (self.episodes - self.false_episodes) / self.episodes if self.episodes else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def median_delay_s(self) -> float:
        return float(np.median(self.delays_s)) if len(self.delays_s) else float("nan")

    @property
    def p90_delay_s(self) -> float:
        return float(np.percentile(self.delays_s, 90)) if len(self.delays_s) else float("nan")

    @property
    def alarms_per_controller_day(self) -> float:
        """False episodes per controller-day: the figure operators feel (B200 anchor ≈0.013)."""
        return self.false_episodes / self.controller_days if self.controller_days else float("nan")

    def cost(self, cost_fn: float, cost_fp: float) -> float:
        return cost_fn * (self.events - self.detected) + cost_fp * self.false_episodes


def score_events(
    event_codes: np.ndarray,
    event_ts: np.ndarray,
    alarm_codes: np.ndarray,
    alarm_ts: np.ndarray,
    *,
    pre_ns: int,
    post_ns: int,
    cooldown_ns: int,
    controller_days: float,
    events_counted: tuple[int, int] | None = None,
    episodes_counted: tuple[int, int] | None = None,
) -> EventScore:
    """Score alarms against true events with windows [t_e - pre, t_e + post] (fault_model.md §5).

    TP: the first episode inside an event's window (its delay is recorded); FN: a window with no episode;
    FP: an episode outside every window. Early warning passes pre = horizon and a negative post (= minimum lead).
    `events_counted` / `episodes_counted` restrict which events enter recall and which episodes enter precision
    (both still take part in matching), so a test period's edges neither hide alarms nor invent misses.
    """
    ep_codes, ep_ts = alarm_episodes(alarm_codes, alarm_ts, cooldown_ns)
    ev_order = np.lexsort((event_ts, event_codes))
    event_codes, event_ts = event_codes[ev_order], event_ts[ev_order]
    detected = np.zeros(len(event_ts), dtype=bool)
    delays = np.zeros(len(event_ts), dtype=np.int64)
    inside = np.zeros(len(ep_ts), dtype=bool)
    ev_bounds = _group_bounds(event_codes)
    for code, (lo, hi) in _group_bounds(ep_codes).items():
        starts = ep_ts[lo:hi]
        ev_lo, ev_hi = ev_bounds.get(code, (0, 0))
        events = event_ts[ev_lo:ev_hi]
        # First episode at or after each window's start, and whether it is still inside the window.
        first = np.searchsorted(starts, events - pre_ns, side="left")
        hit = first < len(starts)
        hit[hit] = starts[first[hit]] <= events[hit] + post_ns
        detected[ev_lo:ev_hi] = hit
        delays[ev_lo:ev_hi][hit] = starts[first[hit]] - events[hit]
        # An episode is inside some window when an event lies in [start - post, start + pre].
        nearest = np.searchsorted(events, starts - post_ns, side="left")
        near = nearest < len(events)
        near[near] = events[nearest[near]] <= starts[near] + pre_ns
        inside[lo:hi] = near
    ev_keep = _within(event_ts, events_counted)
    ep_keep = _within(ep_ts, episodes_counted)
    return EventScore(
        events=int(ev_keep.sum()),
        detected=int((detected & ev_keep).sum()),
        episodes=int(ep_keep.sum()),
        false_episodes=int((~inside & ep_keep).sum()),
        delays_s=delays[detected & ev_keep] / NS_PER_S,
        controller_days=controller_days,
    )


def score_detections(
    truth: pa.Table,
    controllers: Controllers,
    truth_kind: str,
    alarms: pa.Table,
    *,
    period: tuple[int, int],
    in_scope: np.ndarray | None = None,
    silent: bool | None = None,
    detection_budget_s: float = 300.0,
    cooldown_s: float = 10.0,
    clock_tolerance_s: float = 0.0,
) -> EventScore:
    """Score an after-the-fact detector's output (rows with controller_id and detected_ts, e.g. resets or
    drops) against true events of one kind: windows [t_e - tolerance, t_e + budget], events and alarms inside
    `period` (ns, inclusive) on the controllers `in_scope` selects (default: all). Alarms carry the host's
    clock and truth the device's: `clock_tolerance_s` is how far a host clock may lead."""
    in_scope = np.ones(len(controllers), dtype=bool) if in_scope is None else in_scope

    def inside(codes: np.ndarray, ts: np.ndarray) -> np.ndarray:
        return (codes >= 0) & in_scope[np.maximum(codes, 0)] & (ts >= period[0]) & (ts <= period[1])

    codes, onsets = truth_events(truth, controllers, (truth_kind,), silent=silent)
    alarm_codes = controllers.codes(alarms.column("controller_id"))
    alarm_ts = timestamps_ns(alarms.column("detected_ts"))
    keep, alarm_keep = inside(codes, onsets), inside(alarm_codes, alarm_ts)
    return score_events(
        codes[keep],
        onsets[keep],
        alarm_codes[alarm_keep],
        alarm_ts[alarm_keep],
        pre_ns=int(clock_tolerance_s * NS_PER_S),
        post_ns=int(detection_budget_s * NS_PER_S),
        cooldown_ns=int(cooldown_s * NS_PER_S),
        controller_days=int(in_scope.sum()) * (period[1] - period[0]) / NS_PER_DAY,
    )


def false_alarm_causes(
    truth: pa.Table,
    controllers: Controllers,
    truth_kind: str | tuple[str, ...],
    alarms: pa.Table,
    *,
    period: tuple[int, int],
    in_scope: np.ndarray,
    kinds: tuple[str, ...],
    detection_budget_s: float = 300.0,
    clock_tolerance_s: float = 0.0,
    exclude_causes: tuple[str, ...] = (),
) -> dict[str, int]:
    """False alarms (no true `truth_kind` event whose [onset - tolerance, end + budget] holds the alarm on its
    controller; `exclude_causes` leaves events of those causes out) counted by the confounder whose window
    [onset, end + budget] holds them (anomalies over a day pass a day as the budget);
    "none" for a false alarm no confounder explains. An alarm inside several confounders' windows counts once,
    for the first kind in `kinds` order."""
    budget = int(detection_budget_s * NS_PER_S)
    tolerance = int(clock_tolerance_s * NS_PER_S)
    codes = controllers.codes(alarms.column("controller_id"))
    ts = timestamps_ns(alarms.column("detected_ts"))
    keep = (codes >= 0) & in_scope[np.maximum(codes, 0)] & (ts >= period[0]) & (ts <= period[1])
    codes, ts = codes[keep], ts[keep]
    event_codes, onsets = truth_events(
        truth, controllers, truth_kind if isinstance(truth_kind, tuple) else (truth_kind,)
    )
    false = ~_any_within(event_codes, onsets - tolerance, onsets + budget, codes, ts)
    counts = dict.fromkeys((*kinds, "none"), 0)
    explained = np.zeros(len(ts), dtype=bool)
    t_codes = controllers.codes(truth.column("controller_id"))
    onset, end = timestamps_ns(truth.column("onset_ts")), timestamps_ns(truth.column("end_ts"))
    end = np.where(end == NULL_TS, np.iinfo(np.int64).max - budget, end)
    for kind in kinds:
        rows = equals(truth.column("kind"), kind) & (t_codes >= 0)
        hit = false & ~explained & _any_within(t_codes[rows], onset[rows], end[rows] + budget, codes, ts)
        counts[kind] = int(hit.sum())
        explained |= hit
    counts["none"] = int((false & ~explained).sum())
    return counts


def _until(onset: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A truth row's end, its onset for an instant, and far in the future for one lasting past the run."""
    far = np.iinfo(np.int64).max // 2
    return np.where(end == NULL_TS, far, np.maximum(end, onset))


def _any_within(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray, at_codes: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each (at_code, at): whether some window [lo, hi] of the same code contains it."""
    found = np.zeros(len(at), dtype=bool)
    for code in np.unique(at_codes).tolist():
        mine = codes == code
        which = np.flatnonzero(at_codes == code)
        t = at[which][:, None]
        found[which] = ((lo[mine][None, :] <= t) & (t <= hi[mine][None, :])).any(axis=1)
    return found


def _within(ts: np.ndarray, bounds: tuple[int, int] | None) -> np.ndarray:
    if bounds is None:
        return np.ones(len(ts), dtype=bool)
    return (ts >= bounds[0]) & (ts <= bounds[1])


def _group_bounds(sorted_codes: np.ndarray) -> dict[int, tuple[int, int]]:
    values, starts, counts = np.unique(sorted_codes, return_index=True, return_counts=True)
    return {int(v): (int(s), int(s + c)) for v, s, c in zip(values, starts, counts, strict=True)}


# ---------------------------------------------------------------------------------------------------------
# Ranking metrics and thresholds.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingScore:
    positives: int
    total: int
    pr_auc: float
    roc_auc: float

    @property
    def base_rate(self) -> float:
        """PR-AUC of a random ranking: the yardstick every PR-AUC is read against."""
        return self.positives / self.total if self.total else float("nan")


def score_ranking(labels: np.ndarray, risk: np.ndarray) -> RankingScore:
    """PR-AUC (average precision) and ROC-AUC of a risk score; higher risk should mean more likely positive."""
    labels = labels.astype(bool).ravel()
    risk = risk.astype(np.float64).ravel()
    both = labels.any() and not labels.all()
    return RankingScore(
        positives=int(labels.sum()),
        total=len(labels),
        pr_auc=float(average_precision_score(labels, risk)) if both else float("nan"),
        roc_auc=float(roc_auc_score(labels, risk)) if both else float("nan"),
    )


def pr_auc_gain_interval(
    labels: np.ndarray,
    risk: np.ndarray,
    baseline: np.ndarray,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of PR-AUC(risk) − PR-AUC(baseline), both scored on the same resample.

    Inputs are [controller, window] grids; whole controllers are drawn with replacement, because one
    controller's hours are not independent (a degrading controller stays positive for a day). An interval that
    excludes 0 is a margin; one that straddles it says the two rank equally well on this data.
    """
    labels, risk, baseline = (np.asarray(a) for a in (labels, risk, baseline))
    if labels.ndim != 2 or risk.shape != labels.shape or baseline.shape != labels.shape:
        raise ValueError("labels, risk and baseline must be [controller, window] grids of one shape")
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        y = labels[pick].ravel().astype(bool)
        if y.any() and not y.all():
            gain = average_precision_score(y, risk[pick].ravel()) - average_precision_score(y, baseline[pick].ravel())
            gains.append(gain)
    if not gains:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def min_cost_threshold(labels: np.ndarray, risk: np.ndarray, cost_fn: float, cost_fp: float) -> float:
    """The risk threshold (alarm when risk >= threshold) minimising c_FN·FN + c_FP·FP on the given (training) data."""
    labels = labels.astype(bool).ravel()
    risk = risk.astype(np.float64).ravel()
    order = np.argsort(-risk, kind="stable")
    sorted_risk, sorted_labels = risk[order], labels[order]
    # Alarming on the top k rows: FP = negatives among them, FN = positives left out; k only at distinct values.
    tp = np.concatenate([[0], np.cumsum(sorted_labels)])
    fp = np.concatenate([[0], np.cumsum(~sorted_labels)])
    cost = cost_fn * (labels.sum() - tp) + cost_fp * fp
    cut_allowed = np.concatenate([[True], sorted_risk[1:] != sorted_risk[:-1], [True]])
    best = int(np.argmin(np.where(cut_allowed, cost, np.inf)))
    return float(np.inf) if best == 0 else float(sorted_risk[best - 1])


# ---------------------------------------------------------------------------------------------------------
# Splits and labels from the truth table.
# ---------------------------------------------------------------------------------------------------------


FAILURE_KINDS = ("ue", "controller_reset", "link_drop")
# Reset causes (truth `details.cause`) that are not the controller failing: see failure_events.
NOT_FAILURE_CAUSES = ("rack_event", "planned", "maintenance")


def held_out_controllers(controllers: Controllers, test_fraction: float, salt: str = "leo-fleet") -> np.ndarray:
    """Boolean mask of controllers held out for testing: a stable hash, so the split never depends on order or seed."""
    ids = controllers.ids.to_pylist()
    buckets = np.array([zlib.crc32(f"{salt}:{cid}".encode()) % 10_000 for cid in ids])
    return buckets < round(test_fraction * 10_000)


def truth_events(
    truth: pa.Table,
    controllers: Controllers,
    kinds: tuple[str, ...],
    *,
    silent: bool | None = None,
    column: str = "onset_ts",
    exclude_causes: tuple[str, ...] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, ns) of the true events of `kinds` on the given controllers: their onset, or another timestamp
    `column` such as precursor_onset_ts (NULL_TS where absent); `silent` filters resets, `exclude_causes` drops
    events whose details name one of those causes."""
    mask = is_in(truth.column("kind"), kinds)
    if silent is not None or exclude_causes:
        details = [json.loads(d or "{}") for d in truth.column("details").to_pylist()]
        if silent is not None:
            mask &= np.array([bool(d.get("silent", False)) for d in details], dtype=bool) == silent
        mask &= ~np.array([d.get("cause") in exclude_causes for d in details], dtype=bool)
    codes = controllers.codes(truth.column("controller_id"))
    mask &= codes >= 0
    return codes[mask], timestamps_ns(truth.column(column))[mask]


def failure_events(
    truth: pa.Table, controllers: Controllers, *, column: str = "onset_ts"
) -> tuple[np.ndarray, np.ndarray]:
    """The controller failures the predictors are judged on: every UE, unplanned controller reset and link drop.

    A rack losing power resets every controller in it: a facility event (fault_model.md §2.4 counts rack and PDU
    failures apart from machine failures) that no controller's telemetry can foresee. A planned firmware
    activation is maintenance (§2.4: planned interruptions). Neither is the controller failing.
    """
    return truth_events(truth, controllers, FAILURE_KINDS, column=column, exclude_causes=NOT_FAILURE_CAUSES)


def failure_labels(
    event_codes: np.ndarray,
    event_ts: np.ndarray,
    n_controllers: int,
    window_ends: np.ndarray,
    *,
    horizon_ns: int,
    min_lead_ns: int,
    visible_from: np.ndarray | None = None,
) -> np.ndarray:
    """Dense [controller, window] labels: a failure onset falls in [end + min_lead, end + horizon].

    `window_ends` is the prediction time of each window: features only use telemetry received before it.
    With `visible_from` (per event, e.g. its true precursor onset; NULL_TS = never), only windows ending at or
    after it count: the positives any precursor could have announced, a ceiling for precursor-based scores.
    """
    labels = np.zeros((n_controllers, len(window_ends)), dtype=bool)
    if visible_from is None:
        visible_from = np.full(len(event_ts), np.iinfo(np.int64).min + 1)
    visible = np.where(visible_from == NULL_TS, np.iinfo(np.int64).max, visible_from).tolist()
    for code, onset, start in zip(event_codes.tolist(), event_ts.tolist(), visible, strict=True):
        hit = (window_ends + min_lead_ns <= onset) & (onset <= window_ends + horizon_ns) & (window_ends >= start)
        labels[code] |= hit
    return labels
