"""The held-out evaluation protocol: fit on one fleet's early period, score another fleet's later period.

Split by controller AND by time (fault_model.md §5): models are fitted on the training run's controllers outside
the held-out hash bucket, on windows whose whole label horizon ends before the split time; every figure is
measured on the test run's held-out controllers after the split. Train and test may be the same run directory (one
fleet, disjoint controllers) or two simulator runs with different seeds. Every detector is reported beside its
static-threshold baseline computed in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contract import CONFOUNDER_KINDS, run_table_file
from models.anomaly import event_rate_anomalies
from models.baselines import LINK_DROP_BASELINE, RESET_BASELINE, static_risk
from models.early_warning import EarlyWarningModel, train_early_warning
from models.evaluation import (
    EventScore,
    RankingScore,
    failure_events,
    failure_labels,
    false_alarm_causes,
    held_out_controllers,
    pr_auc_gain_interval,
    score_detections,
    score_events,
    score_ranking,
    truth_events,
)
from models.features import Detections, Telemetry, WindowFeatures, build_features
from models.health import HealthPolicy, HealthScores, score_health
from models.link_events import link_incidents, link_up
from models.resets import detect_resets
from models.series import NS_PER_HOUR, NS_PER_S, Controllers, equals, median_spacing_s, numbers, timestamps_ns
from models.slo.spec import LatencySli, Slo

WARNING = "early warning (UE/reset/drop in 24 h)"
HEALTH = "health score = 100 × (1 − early-warning risk)"
CONFOUNDERS = "confounders (false alarms each caused; held-out controllers, test period)"
GAIN = "PR-AUC gain over baseline (95% interval, controllers resampled)"


@dataclass(frozen=True)
class Protocol:
    warmup_h: float = 24.0  # a window is used only once the 24 h features have a full day of history
    horizon_h: float = 24.0  # "fails within 24 h"
    min_lead_s: float = 900.0  # an alarm must come at least 15 min before the failure (SmartMem protocol)
    split_h: float | None = None  # hours after the run start; default: the middle of the run
    test_fraction: float = 0.5  # share of controllers held out (hash bucket)
    detection_budget_s: float = 300.0  # event window after a reset or drop (fault_model.md §5 example: 5 min)
    detection_cooldown_s: float = 10.0  # alarm merging; detectors already emit one alarm per incident
    # Alarms are stamped by the host's clock, truth by the device's. ASSUMPTION: an NTP-disciplined host is off
    # by at most a minute (the default confounders' clock steps stay under it; heavy ones reach four minutes).
    detection_clock_tolerance_s: float = 60.0
    warning_cooldown_h: float = 24.0
    seed: int = 0
    slo: Slo | None = None  # the per-controller latency SLO whose bad fractions are features (the SLO-burn reason)
    health: HealthPolicy | None = None  # slos.yaml's alarm costs; evaluate needs them

    def health_policy(self) -> HealthPolicy:
        if self.health is None:
            raise ValueError("no health policy: the alarm threshold weighs slos.yaml's health alarm_costs")
        return self.health

    @property
    def latency_op(self) -> str:
        return self.slo.sli.op if self.slo is not None else "read"

    @property
    def horizon_ns(self) -> int:
        return int(self.horizon_h * NS_PER_HOUR)


@dataclass(frozen=True)
class Run:
    """What the detectors derived from one fleet run's telemetry, with the static baselines, plus its truth."""

    controllers: Controllers
    detections: Detections
    baselines: Detections
    features: WindowFeatures
    truth: pa.Table
    start_ns: int
    end_ns: int
    link_interval_s: float
    link_down: pa.Table  # (controller_id, detected_ts) of link snapshots that find the link down: SLI bad events

    @classmethod
    def load(cls, run_dir: Path, protocol: Protocol) -> Run:
        truth_path = run_table_file(run_dir, "truth_faults")
        if not truth_path.exists():
            raise FileNotFoundError(f"{truth_path} is missing: evaluation needs the run's ground truth")
        telemetry = Telemetry.from_run_dir(run_dir)
        controllers = telemetry.controllers()
        start_ns, end_ns = telemetry.span_ns()
        start_ns -= start_ns % NS_PER_HOUR
        detections = Detections.of(telemetry, controllers)
        baselines = Detections(
            resets=detect_resets(telemetry.errors, telemetry.link, controllers, RESET_BASELINE),
            incidents=link_incidents(telemetry.link, controllers, LINK_DROP_BASELINE),
        )
        features = build_features(
            telemetry, detections, controllers, start_ns=start_ns, end_ns=end_ns + 1, latency_op=protocol.latency_op
        )
        link = telemetry.link
        interval = median_spacing_s(controllers.codes(link.column("controller_id")), timestamps_ns(link.column("ts")))
        down = link.filter(pa.array(equals(link.column("event"), "snapshot") & ~link_up(link)))
        down = down.select(["controller_id", "ts"]).rename_columns(["controller_id", "detected_ts"])
        truth = pq.read_table(truth_path)
        return cls(controllers, detections, baselines, features, truth, start_ns, end_ns, interval, down)

    def events(self, kinds: tuple[str, ...], silent: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        return truth_events(self.truth, self.controllers, kinds, silent=silent)

    def failure_labels(self, protocol: Protocol, *, precursor_visible: bool = False) -> np.ndarray:
        """Fails within the horizon; or, with `precursor_visible`, only where the failure's true precursor had
        begun by the prediction time (what any precursor-based score could at best announce)."""
        codes, onsets = failure_events(self.truth, self.controllers)
        _, precursors = failure_events(self.truth, self.controllers, column="precursor_onset_ts")
        return failure_labels(
            codes,
            onsets,
            len(self.controllers),
            self.features.window_ends,
            horizon_ns=protocol.horizon_ns,
            min_lead_ns=int(protocol.min_lead_s * NS_PER_S),
            visible_from=precursors if precursor_visible else None,
        )

    def split_ns(self, protocol: Protocol) -> int:
        if protocol.split_h is not None:
            return self.start_ns + int(protocol.split_h * NS_PER_HOUR)
        middle = self.start_ns + (self.end_ns - self.start_ns) // 2
        return middle - middle % NS_PER_HOUR


@dataclass(frozen=True)
class Split:
    """Controllers × windows of one side of the protocol."""

    controllers: np.ndarray
    windows: np.ndarray

    def grid(self, grid: np.ndarray) -> np.ndarray:
        """The [controller, window] grid restricted to this split."""
        return grid[self.controllers][:, self.windows]

    def of(self, grid: np.ndarray) -> np.ndarray:
        """The [controller, window] grid restricted to this split, flattened."""
        return self.grid(grid).ravel()


@dataclass
class Report:
    """Rows of (section, metric, detector, baseline) in the order they were measured."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    early_warning: EarlyWarningModel | None = None  # fitted on the training side; the health score is its risk

    def add(self, section: str, metric: str, detector, baseline="") -> None:
        self.rows.append((section, metric, _fmt(detector), _fmt(baseline)))

    def events(self, section: str, detector: EventScore, baseline: EventScore, *, lead: bool = False) -> None:
        self.add(section, "true events", detector.events, baseline.events)
        self.add(section, "event recall", detector.recall, baseline.recall)
        self.add(section, "episode precision", detector.precision, baseline.precision)
        self.add(section, "F1", detector.f1, baseline.f1)
        if lead:  # lead time is the negative delay; its p90 is the 10th percentile of delays
            self.add(section, "median lead time (h)", -detector.median_delay_s / 3600, -baseline.median_delay_s / 3600)
            self.add(section, "p90 lead time (h)", -_p10(detector.delays_s) / 3600, -_p10(baseline.delays_s) / 3600)
        else:
            self.add(section, "median delay (s)", detector.median_delay_s, baseline.median_delay_s)
            self.add(section, "p90 delay (s)", detector.p90_delay_s, baseline.p90_delay_s)
        self.add(
            section,
            "false alarms per controller-day",
            detector.alarms_per_controller_day,
            baseline.alarms_per_controller_day,
        )

    def ranking(
        self, section: str, detector: RankingScore, baseline: RankingScore, gain: tuple[float, float] | None = None
    ) -> None:
        """Ranking figures; `gain` is the bootstrap interval of the PR-AUC gain over the baseline, if measured."""
        self.add(section, "positive / all controller-hours", f"{detector.positives} / {detector.total}")
        self.add(section, "PR-AUC (random = base rate)", detector.pr_auc, baseline.pr_auc)
        if gain is not None:
            self.add(section, GAIN, f"{detector.pr_auc - baseline.pr_auc:+.4f} ({gain[0]:+.4f} to {gain[1]:+.4f})")
        self.add(section, "base rate", detector.base_rate)
        self.add(section, "ROC-AUC", detector.roc_auc, baseline.roc_auc)

    def markdown(self) -> str:
        lines = ["| section | metric | detector | static baseline |", "|---|---|---:|---:|"]
        return "\n".join([*lines, *(f"| {' | '.join(row)} |" for row in self.rows)])


def _p10(values: np.ndarray) -> float:
    return float(np.percentile(values, 10)) if len(values) else float("nan")


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(int(value))
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def _drops(incidents: pa.Table) -> pa.Table:
    return incidents.filter(pa.array(equals(incidents.column("kind"), "drop")))


def _within(codes: np.ndarray, ts: np.ndarray, controllers: np.ndarray, period: tuple[int, int]) -> np.ndarray:
    return (codes >= 0) & controllers[np.maximum(codes, 0)] & (ts >= period[0]) & (ts <= period[1])


def _windows(in_scope: np.ndarray, period: tuple[int, int], protocol: Protocol) -> dict:
    """The event windows every detection figure is scored with: period, held-out controllers, budget, clock."""
    return {
        "period": period,
        "in_scope": in_scope,
        "detection_budget_s": protocol.detection_budget_s,
        "clock_tolerance_s": protocol.detection_clock_tolerance_s,
    }


def _detection(report: Report, run: Run, test: Split, period: tuple[int, int], protocol: Protocol) -> None:
    """Event-window scoring of the after-the-fact detectors (resets, link drops) beside their baselines."""

    def scored(truth_kind: str, alarms: pa.Table, silent: bool | None = None) -> EventScore:
        windows = _windows(test.controllers, period, protocol)
        return score_detections(
            run.truth,
            run.controllers,
            truth_kind,
            alarms,
            silent=silent,
            cooldown_s=protocol.detection_cooldown_s,
            **windows,
        )

    resets = run.detections.resets, run.baselines.resets
    report.events("resets", *(scored("controller_reset", a) for a in resets))
    for silent, label in ((True, "silent"), (False, "explicit")):
        detector, baseline = (scored("controller_reset", a, silent) for a in resets)
        report.add("resets", f"{label} resets: events", detector.events, baseline.events)
        report.add("resets", f"{label} resets: recall", detector.recall, baseline.recall)
        report.add("resets", f"{label} resets: median delay (s)", detector.median_delay_s, baseline.median_delay_s)
    false_silent = [
        false_silent_resets(run.truth, run.controllers, table, test.controllers, period, protocol) for table in resets
    ]
    report.add(
        "resets",
        "false silent (inferred) resets per 10,000 controller-days",
        *(10_000 * named.false_episodes / named.controller_days for named, _ in false_silent),
    )
    report.add(
        "resets",
        "the same, timed by their evidence's arrival (late revelations count)",
        *(10_000 * arrived.false_episodes / arrived.controller_days for _, arrived in false_silent),
    )
    report.add("resets", "controller-days scored", false_silent[0][0].controller_days)
    planned = run.detections.resets.column("planned").to_numpy(zero_copy_only=False)
    codes = run.controllers.codes(run.detections.resets.column("controller_id"))
    moments = timestamps_ns(run.detections.resets.column("detected_ts"))
    in_test = _within(codes, moments, test.controllers, period)
    report.add("resets", "planned (in a declared maintenance window)", int((planned & in_test).sum()))
    drops = _drops(run.detections.incidents), _drops(run.baselines.incidents)
    report.events("link drops", *(scored("link_drop", a) for a in drops))
    _outages(report, run, test.controllers, period)
    _confounders(report, run, test, period, protocol, resets, drops)


def false_silent_resets(
    truth: pa.Table,
    controllers: Controllers,
    resets: pa.Table,
    in_scope: np.ndarray,
    period: tuple[int, int],
    protocol: Protocol,
) -> tuple[EventScore, EventScore]:
    """The silent (inferred) resets among `resets` scored against every true reset in the event windows of every
    detection figure, (timed by the moment each names, `reset_ts`; by when its evidence arrived, `detected_ts`).

    A false silent reset is one with no true reset at the moment it names. A silent reset inside a collector
    outage is revealed only when the telemetry comes back, past any detection budget: timed by its arrival it
    counts as false (and its true reset as missed), though nothing in the fleet was reported that did not happen.
    The second score counts those late revelations as false too; the recall and delay figures keep them as late."""
    silent = resets.filter(resets.column("silent"))
    named = silent.set_column(silent.schema.get_field_index("detected_ts"), "detected_ts", silent.column("reset_ts"))
    windows = _windows(in_scope, period, protocol)
    return tuple(
        score_detections(
            truth, controllers, "controller_reset", alarms, cooldown_s=protocol.detection_cooldown_s, **windows
        )
        for alarms in (named, silent)
    )


# A controller's false event-rate anomaly: no true event of these kinds in the day its window counts.
_ANOMALY_TRUTH = {"reset_loop": ("controller_reset",), "flapping_link": ("link_drop", "link_retrain", "link_downgrade")}
# Link-down snapshots any of these explain: real outages, not SLI errors.
_OUTAGE_TRUTH = ("link_drop", "controller_reset", "rack_event")
_DAY_S = 86_400.0


def _confounders(
    report: Report,
    run: Run,
    test: Split,
    period: tuple[int, int],
    protocol: Protocol,
    resets: tuple[pa.Table, pa.Table],
    drops: tuple[pa.Table, pa.Table],
) -> None:
    """False resets, drops, anomalies and SLI errors per confounder kind (the truth says which caused which),
    detector beside the static baseline; "none" counts false alarms no confounder explains."""

    def causes(
        truth_kind, alarms: pa.Table, budget_s: float = protocol.detection_budget_s, exclude: tuple[str, ...] = ()
    ) -> dict[str, int]:
        windows = _windows(test.controllers, period, protocol) | {"detection_budget_s": budget_s}
        return false_alarm_causes(
            run.truth, run.controllers, truth_kind, alarms, kinds=CONFOUNDER_KINDS, exclude_causes=exclude, **windows
        )

    false_resets = [causes("controller_reset", table) for table in resets]
    false_drops = [causes("link_drop", table) for table in drops]
    anomalies = event_rate_anomalies(run.features)
    false_anomalies = dict.fromkeys((*CONFOUNDER_KINDS, "none"), 0)
    for kind, truth_kinds in _ANOMALY_TRUTH.items():
        rows = anomalies.filter(pa.array(equals(anomalies.column("kind"), kind)))
        alarms = rows.select(["subject", "window_end"]).rename_columns(["controller_id", "detected_ts"])
        for cause, count in causes(truth_kinds, alarms, _DAY_S).items():
            false_anomalies[cause] += count
    # A planned reset's downtime is maintenance: should it burn the availability budget, it is an SLI error.
    sli_errors = causes(_OUTAGE_TRUTH, run.link_down, exclude=("maintenance",))
    section = CONFOUNDERS
    for kind in (*CONFOUNDER_KINDS, "none"):
        report.add(section, f"{kind}: false resets", false_resets[0][kind], false_resets[1][kind])
        report.add(section, f"{kind}: false link drops", false_drops[0][kind], false_drops[1][kind])
        report.add(section, f"{kind}: false event-rate anomalies", false_anomalies[kind])
        report.add(section, f"{kind}: link-availability SLI errors (down snapshots)", sli_errors[kind])


def _outages(report: Report, run: Run, controllers: np.ndarray, period: tuple[int, int]) -> None:
    """Outage length and MTTR measured from telemetry, beside the true outage lengths (truth, not a baseline)."""
    incidents = run.detections.incidents
    codes = run.controllers.codes(incidents.column("controller_id"))
    keep = equals(incidents.column("kind"), "drop") & _within(
        codes, timestamps_ns(incidents.column("start_ts")), controllers, period
    )
    measured = numbers(incidents.column("outage_s"))[keep]
    truth = run.truth
    t_codes = run.controllers.codes(truth.column("controller_id"))
    onset, end = timestamps_ns(truth.column("onset_ts")), timestamps_ns(truth.column("end_ts"))
    t_keep = equals(truth.column("kind"), "link_drop") & (end > onset) & _within(t_codes, onset, controllers, period)
    true = (end[t_keep] - onset[t_keep]) / NS_PER_S
    section, note = "link drops (MTTR; right column = truth)", "measured vs true"
    report.add(section, f"median outage (s), {note}", np.nanmedian(measured), np.median(true))
    report.add(section, f"MTTR: mean outage (s), {note}", np.nanmean(measured), np.mean(true))


def _ceiling(report: Report, run: Run, test: Split, labels: np.ndarray, protocol: Protocol) -> None:
    """How much of the label any precursor could announce: a truth oracle that knows, at each prediction time,
    whether the coming failure's precursor has begun. Not a detector; it bounds what precursors can give."""
    visible = test.of(run.failure_labels(protocol, precursor_visible=True))
    section = "ceiling from truth (not a detector)"
    share = visible.sum() / max(labels.sum(), 1)
    report.add(section, "positive controller-hours whose precursor had begun", f"{share:.2%}")
    report.add(section, "ROC-AUC of an oracle knowing that", score_ranking(labels, visible.astype(float)).roc_auc)


def _thresholded(
    report: Report, section: str, labels: np.ndarray, alarm: np.ndarray, baseline: np.ndarray, protocol: Protocol
) -> None:
    """Controller-hour precision / recall / F1 / cost of an alarm rule."""
    costs = protocol.health_policy()

    def figures(a: np.ndarray) -> tuple[float, float, float, float]:
        tp, fp, fn = int((a & labels).sum()), int((a & ~labels).sum()), int((~a & labels).sum())
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        return precision, recall, f1, costs.missed_failure_cost * fn + costs.false_alarm_cost * fp

    metrics = (
        "controller-hour precision",
        "controller-hour recall",
        "controller-hour F1",
        f"cost ({costs.missed_failure_cost:g}·FN + {costs.false_alarm_cost:g}·FP)",
    )
    for metric, d, b in zip(metrics, figures(alarm), figures(baseline), strict=True):
        report.add(section, metric, d, b)


def _warning_events(
    report: Report, section: str, run: Run, test: Split, alarm: np.ndarray, baseline: np.ndarray, protocol: Protocol
) -> None:
    """Event windows [t - horizon, t - min lead] before each failure: recall, episode precision, lead time.

    Alarms come from every window from the test period on; precision counts only episodes whose horizon lies
    in the data, recall only failures whose whole look-back lies in the test period."""
    ends = run.features.window_ends
    first, last = int(ends[test.windows].min()), int(ends[test.windows].max())
    codes, onsets = failure_events(run.truth, run.controllers)
    keep = test.controllers[codes]
    controller_days = int(test.controllers.sum()) * int(test.windows.sum()) / 24

    def scored(grid: np.ndarray) -> EventScore:
        c, w = np.nonzero(grid & test.controllers[:, None] & (ends >= first)[None, :])
        return score_events(
            codes[keep],
            onsets[keep],
            c,
            ends[w],
            pre_ns=protocol.horizon_ns,
            post_ns=-int(protocol.min_lead_s * NS_PER_S),
            cooldown_ns=int(protocol.warning_cooldown_h * NS_PER_HOUR),
            controller_days=controller_days,
            events_counted=(first + protocol.horizon_ns, run.end_ns),
            episodes_counted=(first, last),
        )

    report.events(section, scored(alarm), scored(baseline), lead=True)


def _explained(report: Report, health: HealthScores, held: Split) -> None:
    """How exactly the held-out scores add up: the largest absolute residual of their sum."""
    residual = 100.0 - health.health - health.base_points - health.points.sum(axis=2)
    report.add(
        HEALTH,
        "largest residual of 100 − health − base points − Σ reason points",
        float(np.abs(held.of(residual)).max()),
    )
    report.add(HEALTH, "base points (risk floor of the healthiest controller)", health.base_points)


def protocol_splits(train: Run, test: Run, protocol: Protocol) -> tuple[Split, Split]:
    warmup = int(protocol.warmup_h * NS_PER_HOUR)
    train_ends, test_ends = train.features.window_ends, test.features.window_ends
    train_split = Split(
        ~held_out_controllers(train.controllers, protocol.test_fraction),
        (train_ends >= train.start_ns + warmup) & (train_ends + protocol.horizon_ns <= train.split_ns(protocol)),
    )
    test_split = Split(
        held_out_controllers(test.controllers, protocol.test_fraction),
        (test_ends >= max(test.split_ns(protocol), test.start_ns + warmup))
        & (test_ends + protocol.horizon_ns <= test.end_ns),
    )
    if train is test and (train_split.controllers & test_split.controllers).any():
        raise AssertionError("train and test controllers overlap")
    if not train_split.windows.any() or not test_split.windows.any():
        raise ValueError(
            "the runs are too short for the protocol: training needs warm-up + horizon before the split and "
            "testing a horizon after it (use runs of >= 120 h, or set --split-hours)"
        )
    return train_split, test_split


def evaluate(train: Run, test: Run, protocol: Protocol, progress: Callable[[str], None]) -> Report:
    """Every detector's held-out figures beside its baseline."""
    report = Report()
    fit, held = protocol_splits(train, test, protocol)
    period = (test.split_ns(protocol), test.end_ns)
    report.add("protocol", "train / test controllers", f"{int(fit.controllers.sum())} / {int(held.controllers.sum())}")
    report.add("protocol", "train / test windows (h)", f"{int(fit.windows.sum())} / {int(held.windows.sum())}")
    report.add("protocol", "link snapshot interval (s)", test.link_interval_s)

    progress("resets and link drops")
    _detection(report, test, held, period, protocol)

    progress("early warning and health score")
    train_labels, test_labels = train.failure_labels(protocol), test.failure_labels(protocol)
    y = held.of(test_labels)
    static = static_risk(test.features)
    baseline_ranking = score_ranking(y, held.of(static))

    def ranked(section: str, score: np.ndarray) -> None:
        """A predictor's ranking beside the baseline's, with the bootstrap interval of its PR-AUC gain."""
        grids = held.grid(test_labels), held.grid(score), held.grid(static)
        gain = pr_auc_gain_interval(*grids, seed=protocol.seed)
        report.ranking(section, score_ranking(y, held.of(score)), baseline_ranking, gain)

    model = train_early_warning(
        train.features,
        train_labels,
        fit.controllers,
        fit.windows,
        choose_threshold=protocol.health_policy().alarm_threshold,
        seed=protocol.seed,
    )
    report.early_warning = model
    health = score_health(model, test.features)
    _explained(report, health, held)
    ranked(HEALTH, health.risk())
    _ceiling(report, test, held, y, protocol)

    risk = model.risk(test.features)
    ranked(WARNING, risk)
    report.add(WARNING, "alarm threshold (cost-optimal, out-of-fold on train)", model.threshold, "count >= limit")
    _thresholded(report, WARNING, y, held.of(risk >= model.threshold), held.of(static >= 1.0), protocol)
    _warning_events(report, WARNING, test, held, risk >= model.threshold, static >= 1.0, protocol)

    progress("event-rate anomalies")
    anomalies = event_rate_anomalies(test.features)
    window_end = timestamps_ns(anomalies.column("window_end"))
    in_period = (window_end >= period[0]) & (window_end <= period[1])
    for kind in ("reset_loop", "flapping_link", "firmware_cohort"):
        rows = anomalies.filter(pa.array(in_period & equals(anomalies.column("kind"), kind)))
        subjects = sorted(set(rows.column("subject").to_pylist()))
        shown = ", ".join(subjects) if kind == "firmware_cohort" else f"{len(subjects)} controllers"
        report.add("event-rate anomalies (test period, whole fleet)", kind, shown or "none")
    return report


def controller_latency_slo(slos: Iterable[Slo]) -> Slo | None:
    """The spec's per-controller latency SLO, if it has one (the health score measures burn against it)."""
    for slo in slos:
        if slo.group_by == ("controller",) and isinstance(slo.sli, LatencySli):
            return slo
    return None
