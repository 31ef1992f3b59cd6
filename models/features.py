"""Per-controller window features: the one feature builder behind the health score, event-rate anomalies and early
warning.

Each window is one hour per controller by default; its features describe what was known at the window's end (the
prediction time) and use only telemetry received before it, so a model fed these features cannot peek ahead.
Counters become epoch-aware deltas (telemetry.md §4) measured against the time their rows cover (a delta read after
a collector gap spans the gap), discrete event rows are de-duplicated by event_id, and trailing sums over 1 h, 6 h
and 24 h give short- and long-term context. Ground truth is never an input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contract import (
    CXL_UE_BITS,
    DESCRIPTOR_THRESHOLD_EVENT,
    DESCRIPTOR_UNCORRECTABLE_EVENT,
    INVENTORY_SCHEMA,
    LINK_SCHEMA,
    TS,
    run_table_file,
)
from models.link_events import link_incidents, without_reset_downtime
from models.resets import detect_resets
from models.series import (
    NS_PER_HOUR,
    NS_PER_S,
    Controllers,
    epoch_deltas,
    equals,
    is_in,
    numbers,
    order_by_controller_time,
    series_codes,
    timestamps_ns,
)

# The latency columns features use: exact good/total counters, never the (large) bucket lists.
LATENCY_COLUMNS = ("window_start", "controller_id", "memory_tier", "op", "count", "over_slo")
HEALTH_COLUMNS = (
    "controller_id",
    "ts",
    "counter_epoch",
    "cor_vol_err_cnt",
    "device_temp_c",
    "health_status",
    "media_status",
    "additional_status",
    "life_used_pct",
)
HEALTH_BIT_NAMES = ("maintenance_needed", "performance_degraded", "replacement_needed", "capacity_degraded")
EVENT_COLUMNS = (
    "event_id",
    "controller_id",
    "ts",
    "record_type",
    "severity",
    "status",
    "descriptor",
    "overflow_count",
)
# CXL RAS uncorrectable status bits: the memory parity/ECC bits, and the link's REINIT threshold.
CXL_MEMORY_UE_BITS = sum(1 << bit for bit, name in CXL_UE_BITS.items() if name.startswith("Memory"))
CXL_LINK_UE_BITS = sum(1 << bit for bit, name in CXL_UE_BITS.items() if name.startswith("REINIT"))
LINK_CE_RECORDS = ("aer_event", "cxl_aer_ce")
LINK_COUNTERS = ("aer_cor_total", "cxl_crc_thresh_hits", "cxl_retry_thresh_hits", "recovery_entries")
# Per-bit AER counters add nothing the total does not say to these models.
AER_DETAIL_COUNTERS = ("rx_err", "bad_tlp", "bad_dllp", "replay_rollover", "replay_timeout")
# Only what detectors and features read is loaded: at fleet scale the rest is gigabytes.
ERRORS_COLUMNS = tuple(dict.fromkeys((*HEALTH_COLUMNS, *EVENT_COLUMNS, "device_ts", "reset_kind", "uptime_s")))
LINK_COLUMNS = tuple(
    name for name in LINK_SCHEMA.names if name not in ("host", "reason", "flit_mode", *AER_DETAIL_COUNTERS)
)
TRAILING_HOURS = (1, 6, 24)
LONG_RUN_HOURS = 168
LONG_RUN_SERIES = ("resets", "link_drops", "link_retrains", "ue_events", "threshold_events", "aer_cor_total")
# Series whose rise over the last day is a precursor (fault_model.md §2.3, §3 rule 5), and their feature names.
TREND_SERIES = {"ce": "ce", "aer_cor_total": "link_error"}
# Hours-since features saturate here: "long ago" and "never seen in this data" mean the same to a model.
HOURS_SINCE_CAP = 24.0
# The long form's column of each controller's firmware version (the cohort the features compare it with).
FIRMWARE_COLUMN = "firmware_version"

# What each feature says, for the features mart's column descriptions (`feature_description`). A per-window
# series (summed over windows) by its name; the features build_features derives from a series by name pattern.
SERIES_MEANINGS = {
    "ce": "corrected memory errors (deltas of the health snapshots' corrected-volatile counter)",
    "snapshots": "health snapshots received",
    "threshold_events": "CE threshold events (media records with the threshold descriptor bit)",
    "ue_events": "memory uncorrectable errors (uncorrectable media records, poison, CXL UEs with a memory bit)",
    "link_ue_events": "link uncorrectable errors (uncorrected AER events, CXL REINIT threshold UEs)",
    "link_ce_events": "link corrected-error records (AER and CXL RAS correctable)",
    "overflow_events": "events the device dropped from a full event log",
    "aer_cor_total": "AER correctable link errors (counter deltas, summed over ports)",
    "cxl_crc_thresh_hits": "CXL CRC threshold hits (counter deltas, summed over ports)",
    "cxl_retry_thresh_hits": "CXL retry threshold hits (counter deltas, summed over ports)",
    "recovery_entries": "entries into LTSSM Recovery (counter deltas, summed over ports)",
    "resets": "controller resets detected outside declared maintenance windows",
    "link_drops": "link drops detected",
    "link_retrains": "link retrains detected",
}
FEATURE_MEANINGS = {
    "temp_max_c": "highest device temperature in the last window with a snapshot, degrees C; NaN before the first",
    "maintenance_needed": "the health status's maintenance-needed bit, as last reported (0/1)",
    "performance_degraded": "the health status's performance-degraded bit, as last reported (0/1)",
    "replacement_needed": "the health status's replacement-needed bit, as last reported (0/1)",
    "capacity_degraded": "the health status's capacity-degraded bit, as last reported (0/1)",
    "media_abnormal": "media status other than normal, as last reported (0/1)",
    "temp_alarm": "temperature alarm as last reported: 0 normal, 1 warning, 2 critical",
    "life_used_pct": "device life used as last reported, percent; NaN before the first report",
    "link_bandwidth_lost": "share of the link's bandwidth lost to a speed or width downgrade as last seen, 0 to 1",
    "hours_since_reset": f"hours since the last detected controller reset, capped at {HOURS_SINCE_CAP:g}",
    "hours_since_link_drop": f"hours since the last detected link drop, capped at {HOURS_SINCE_CAP:g}",
    "age_days": "days since the controller was deployed",
    "dimm_count": "DIMMs behind the controller",
    "cohort_outage_ratio_24h": "log of the firmware cohort's share of controllers with a reset or link drop in the "
    "last 24 h over the fleet's, shrunk towards 0 for small cohorts",
}


def feature_description(name: str) -> str:
    """What the feature `name` holds (per controller, at the end of its window), from the name pattern that
    build_features gave it; a name without a pattern or a meaning raises KeyError, so a new feature needs one."""
    if match := re.fullmatch(r"(\w+)_per_day_7d", name):
        days = LONG_RUN_HOURS // 24
        meaning = SERIES_MEANINGS[match[1]]
        return f"{meaning}: per day over the last {days} days (the data's span while shorter), log(1 + rate)"
    if match := re.fullmatch(r"slo_bad_fraction_(\d+)h", name):
        return (
            f"share of the CXL tier's latency samples (the latency SLO's operation) over the SLO threshold in the "
            f"last {match[1]} h; 0 without samples"
        )
    if (match := re.fullmatch(r"(\w+)_(\d+)h", name)) and match[1] in SERIES_MEANINGS:
        return f"{SERIES_MEANINGS[match[1]]}: count in the last {match[2]} h, log(1 + count)"
    if match := re.fullmatch(r"(\w+)_trend", name):
        series = next(series for series, feature in TREND_SERIES.items() if feature == match[1])
        return (
            f"{SERIES_MEANINGS[series]}: per hour observed in the last 6 h against the 18 h before, log(1 + rate) "
            "difference; 0 while under an hour of the 18 h was observed"
        )
    return FEATURE_MEANINGS[name]


@dataclass(frozen=True)
class Telemetry:
    """The four telemetry tables of one fleet run: the contract columns the detectors read (see *_COLUMNS); any
    other column, such as the lake's kafka_* columns, may be present and is ignored."""

    errors: pa.Table
    link: pa.Table
    latency: pa.Table
    inventory: pa.Table
    maintenance: pa.Table | None = None  # declared maintenance windows, when the run publishes them

    @classmethod
    def from_run_dir(cls, run_dir: Path) -> Telemetry:
        """Read DIR/{errors,link,latency,inventory}.parquet (and maintenance.parquet when the run has one) as
        written by `leo-fleet simulate`."""
        tables = {}
        for name, columns in (
            ("errors", ERRORS_COLUMNS),
            ("link", LINK_COLUMNS),
            ("latency", LATENCY_COLUMNS),
            ("inventory", INVENTORY_SCHEMA.names),
        ):
            path = run_table_file(run_dir, name)
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: not a fleet run directory")
            tables[name] = pq.read_table(path, columns=list(columns))
        maintenance = run_table_file(run_dir, "maintenance")
        return cls(**tables, maintenance=pq.read_table(maintenance) if maintenance.exists() else None)

    def controllers(self) -> Controllers:
        return Controllers.of(self.inventory.column("controller_id"), self.errors.column("controller_id"))

    def span_ns(self) -> tuple[int, int]:
        """First and last telemetry timestamps."""
        ts = np.concatenate([timestamps_ns(self.errors.column("ts")), timestamps_ns(self.link.column("ts"))])
        return int(ts.min()), int(ts.max())


@dataclass(frozen=True)
class Detections:
    """Event-level outputs that features summarise and evaluation scores: computed once per run."""

    resets: pa.Table
    incidents: pa.Table

    @classmethod
    def of(cls, telemetry: Telemetry, controllers: Controllers) -> Detections:
        return cls.from_tables(telemetry.errors, telemetry.link, controllers, telemetry.maintenance)

    @classmethod
    def from_tables(
        cls, errors: pa.Table, link: pa.Table, controllers: Controllers, maintenance: pa.Table | None = None
    ) -> Detections:
        """Link incidents and resets explain each other: a proven drop re-enumerates the device (a new counter
        epoch that is not a reset), and a reset takes the link down (a down state that is not a drop). Resets
        inside a declared maintenance window (`maintenance`, contract.MAINTENANCE_SCHEMA rows) are planned."""
        incidents = link_incidents(link, controllers)
        resets = detect_resets(errors, link, controllers, link_drops=incidents, maintenance=maintenance)
        return cls(resets=resets, incidents=without_reset_downtime(incidents, resets))


@dataclass(frozen=True)
class WindowFeatures:
    """values[c, w, f]: feature f of controller c at the end of window w (NaN = not observable)."""

    controllers: Controllers
    window_ends: np.ndarray  # int64 ns: the prediction time of each window
    names: tuple[str, ...]
    values: np.ndarray
    firmware: np.ndarray  # firmware version per controller (object array)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, :, self.names.index(name)]

    def rows(self, controller_mask: np.ndarray, window_mask: np.ndarray) -> np.ndarray:
        """Feature matrix [n_rows, n_features] of the selected controllers × windows (controller-major)."""
        return self.values[controller_mask][:, window_mask].reshape(-1, len(self.names))

    def to_table(self) -> pa.Table:
        """Long form: one row per controller and window, one column per feature."""
        n_c, n_w, _ = self.values.shape
        return pa.table(
            {
                "controller_id": self.controllers.ids.take(pa.array(np.repeat(np.arange(n_c), n_w))),
                "window_end": pa.array(np.tile(self.window_ends, n_c), pa.int64()).cast(TS),
                **{name: self.values[:, :, i].ravel() for i, name in enumerate(self.names)},
            }
        )

    def to_firmware_table(self) -> pa.Table:
        """`to_table` with each controller's firmware version: every column `from_table` needs."""
        firmware = np.repeat(self.firmware, len(self.window_ends)).astype(str)
        return self.to_table().append_column(FIRMWARE_COLUMN, pa.array(firmware, pa.string()))

    @classmethod
    def of_groups(cls, groups: Sequence[WindowFeatures]) -> WindowFeatures:
        """Features built a group of controllers at a time (same windows, groups in controller order) as one build
        over all of them: the cohort feature compares each controller with its firmware cohort across the fleet,
        so it is computed again over every group."""
        first = groups[0]
        values = np.concatenate([group.values for group in groups], axis=0)
        firmware = np.concatenate([group.firmware for group in groups])
        columns = {name: values[:, :, first.names.index(name)] for name in ("resets_24h", "link_drops_24h")}
        values[:, :, first.names.index(COHORT_FEATURE)] = _cohort_outage_ratio(columns, firmware)
        ids = pa.concat_arrays([group.controllers.ids for group in groups])
        return cls(Controllers(ids), first.window_ends, first.names, values, firmware)

    def windows_after(self, start_ns: int) -> WindowFeatures:
        """Only the windows that end after `start_ns` (the history a build read before its window is dropped)."""
        keep = self.window_ends > start_ns
        return WindowFeatures(self.controllers, self.window_ends[keep], self.names, self.values[:, keep], self.firmware)

    @classmethod
    def from_table(cls, table: pa.Table) -> WindowFeatures:
        """The dense form of `to_firmware_table` rows, so features computed once can be read back by every model.

        Windows are the distinct window ends present; a controller without a row in a window reads NaN there
        (not observable)."""
        controllers = Controllers.of(table.column("controller_id"))
        window_ends = np.unique(timestamps_ns(table.column("window_end")))
        return cls.from_parts(table.schema, controllers, window_ends, [table])

    @classmethod
    def from_parts(
        cls, schema: pa.Schema, controllers: Controllers, window_ends: np.ndarray, parts: Iterable[pa.Table]
    ) -> WindowFeatures:
        """`from_table` of rows that come in parts (`schema`'s, a day at a time, say) over known `controllers` and
        `window_ends`: memory holds the dense values and one part, not every row as Arrow. Where a controller's
        firmware differs between rows, the last row read gives it."""
        names = tuple(name for name in schema.names[2:] if name != FIRMWARE_COLUMN)
        values = np.full((len(controllers), len(window_ends), len(names)), np.nan)
        firmware = np.full(len(controllers), "unknown", dtype=object)
        for part in parts:
            codes = controllers.codes(part.column("controller_id"))
            windows = np.searchsorted(window_ends, timestamps_ns(part.column("window_end")))
            for index, name in enumerate(names):
                values[codes, windows, index] = numbers(part.column(name))
            firmware[codes] = np.asarray(part.column(FIRMWARE_COLUMN).to_pylist(), object)
        return cls(controllers, window_ends, names, values, firmware)


class _Grid:
    """Dense [controller, window] accumulation of row-level values."""

    def __init__(self, n_controllers: int, start_ns: int, n_windows: int, window_ns: int) -> None:
        self.shape = (n_controllers, n_windows)
        self.start_ns, self.window_ns = start_ns, window_ns

    def cells(self, codes: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell index of each row and whether it falls on the grid."""
        window = (ts - self.start_ns) // self.window_ns
        valid = (codes >= 0) & (window >= 0) & (window < self.shape[1])
        return np.where(valid, codes * self.shape[1] + window, 0), valid

    def total(self, codes: np.ndarray, ts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        cell, valid = self.cells(codes, ts)
        w = valid.astype(np.float64) if weights is None else np.where(valid, np.nan_to_num(weights), 0.0)
        return np.bincount(cell, weights=w, minlength=self.shape[0] * self.shape[1]).reshape(self.shape)

    def maximum(self, codes: np.ndarray, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        cell, valid = self.cells(codes, ts)
        valid &= ~np.isnan(values)
        out = np.full(self.shape[0] * self.shape[1], np.nan)
        np.fmax.at(out, cell[valid], values[valid])
        return out.reshape(self.shape)


def _trailing(per_window: np.ndarray, hours: int, window_h: float) -> np.ndarray:
    """Sum of the last `hours` worth of windows up to and including each window."""
    k = max(1, round(hours / window_h))
    cumulative = np.cumsum(per_window, axis=1)
    shifted = np.zeros_like(cumulative)
    shifted[:, k:] = cumulative[:, :-k]
    return cumulative - shifted


def _observed(per_window: np.ndarray, covered: np.ndarray | None, hours: int, window_h: float) -> np.ndarray:
    """Trailing sum over `hours`; for a counter series (`covered`: the hours its rows arriving in each window cover),
    scaled down to `hours` where the rows cover more: the first delta read after a collector outage holds the
    increments of the whole gap, not of the last hour."""
    total = _trailing(per_window, hours, window_h)
    if covered is None:
        return total
    return total * hours / np.maximum(_trailing(covered, hours, window_h), hours)


def _trend(per_window: np.ndarray, covered: np.ndarray, window_h: float) -> np.ndarray:
    """The last 6 h against the 18 h before, each per hour its counter rows actually covered: a log ratio, 0 when
    both are quiet, and 0 while the 18 h before cover under an hour (no history yet, or a collector outage): a
    missing day read as a quiet one made every controller with corrected errors look like a rising ramp in a
    lake's first day, and the gap's increments, read at its end, like a jump."""
    recent, recent_h = _trailing(per_window, 6, window_h), _trailing(covered, 6, window_h)
    before = _trailing(per_window, 24, window_h) - recent
    before_h = _trailing(covered, 24, window_h) - recent_h
    with np.errstate(invalid="ignore", divide="ignore"):
        rise = np.log1p(recent / np.maximum(recent_h, 1)) - np.log1p(before / before_h)
    return np.where(before_h >= 1, rise, 0.0)


def _covered_hours(codes: np.ndarray, ts: np.ndarray, grid: _Grid) -> np.ndarray:
    """Per [controller, window], the hours since the controller's previous row that its rows arriving in the window
    cover (0 for its first row): a counter delta spans exactly that time, gaps included."""
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    spacing = np.zeros(len(ts))
    same = codes[1:] == codes[:-1]
    spacing[1:] = np.where(same, (ts[1:] - ts[:-1]) / NS_PER_HOUR, 0.0)
    return grid.total(codes, ts, spacing)


def _hours_since(window_ends: np.ndarray, event_ts: list[np.ndarray]) -> np.ndarray:
    """Hours from the latest event before each window end; HOURS_SINCE_CAP when there is none."""
    out = np.full((len(event_ts), len(window_ends)), HOURS_SINCE_CAP)
    for c, ts in enumerate(event_ts):
        if len(ts):
            idx = np.searchsorted(ts, window_ends, side="left") - 1  # strictly before the window's end
            seen = idx >= 0
            out[c, seen] = np.minimum((window_ends[seen] - ts[idx[seen]]) / NS_PER_HOUR, HOURS_SINCE_CAP)
    return out


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """Carry the last observed value forward along windows (NaN until the first observation)."""
    n_w = values.shape[1]
    idx = np.where(~np.isnan(values), np.arange(n_w), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return np.take_along_axis(values, idx, axis=1)


def _per_controller_ts(codes: np.ndarray, ts: np.ndarray, n: int) -> list[np.ndarray]:
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    bounds = np.searchsorted(codes, np.arange(n + 1))
    return [ts[bounds[c] : bounds[c + 1]] for c in range(n)]


def build_features(
    telemetry: Telemetry,
    detections: Detections,
    controllers: Controllers,
    *,
    start_ns: int,
    end_ns: int,
    window_s: int = 3600,
    latency_op: str = "read",
) -> WindowFeatures:
    """Features of every controller for every full window in [start, end).

    `latency_op` is the operation of the per-controller latency SLO (slos.yaml), whose SLI the features carry.
    """
    window_ns = window_s * NS_PER_S
    n_w = max(0, (end_ns - start_ns) // window_ns)
    grid = _Grid(len(controllers), start_ns, n_w, window_ns)
    window_ends = start_ns + window_ns * (np.arange(n_w) + 1)
    window_h = window_s / 3600
    per_window: dict[str, np.ndarray] = {}
    covered: dict[str, np.ndarray] = {}  # per counter series: the hours its rows cover (_covered_hours)
    state: dict[str, np.ndarray] = {}

    _health_features(telemetry.errors, controllers, grid, per_window, covered, state)
    _event_row_features(telemetry.errors, controllers, grid, per_window)
    _link_features(telemetry.link, controllers, grid, per_window, covered, state)
    _latency_features(telemetry.latency, controllers, grid, per_window, latency_op)

    resets = detections.resets.filter(pa.array(~planned_resets(detections.resets)))
    reset_codes = controllers.codes(resets.column("controller_id"))
    reset_ts = timestamps_ns(resets.column("detected_ts"))
    per_window["resets"] = grid.total(reset_codes, reset_ts)
    incidents = detections.incidents
    inc_codes = controllers.codes(incidents.column("controller_id"))
    inc_ts = timestamps_ns(incidents.column("detected_ts"))
    for kind in ("drop", "retrain"):
        mask = equals(incidents.column("kind"), kind)
        per_window[f"link_{kind}s"] = grid.total(inc_codes[mask], inc_ts[mask])

    features: dict[str, np.ndarray] = {}
    for name, values in per_window.items():
        if name in ("slo_bad", "slo_total"):
            continue
        for hours in TRAILING_HOURS:
            features[f"{name}_{hours}h"] = np.log1p(_observed(values, covered.get(name), hours, window_h))
    # Long-run rates tell a lemon or a chronically noisy link from a one-off: a week of history, per day
    # (less while the data is younger than a week).
    observed_days = np.minimum(LONG_RUN_HOURS, window_h * (np.arange(n_w) + 1)) / 24
    for name in LONG_RUN_SERIES:
        week = _observed(per_window[name], covered.get(name), LONG_RUN_HOURS, window_h)
        features[f"{name}_per_day_7d"] = np.log1p(week / observed_days)
    for hours in (1, 24):
        bad = _trailing(per_window["slo_bad"], hours, window_h)
        total = _trailing(per_window["slo_total"], hours, window_h)
        features[f"slo_bad_fraction_{hours}h"] = np.where(total > 0, bad / np.maximum(total, 1), 0.0)
    # Trends: a degrading DIMM or link announces itself by a rate that keeps rising over hours to days.
    for name in TREND_SERIES:
        features[f"{TREND_SERIES[name]}_trend"] = _trend(per_window[name], covered[name], window_h)
    features.update(state)
    features["hours_since_reset"] = _hours_since(
        window_ends, _per_controller_ts(reset_codes, reset_ts, len(controllers))
    )
    drops = equals(incidents.column("kind"), "drop")
    features["hours_since_link_drop"] = _hours_since(
        window_ends, _per_controller_ts(inc_codes[drops], inc_ts[drops], len(controllers))
    )
    inventory = _inventory_features(telemetry.inventory, controllers, window_ends)
    features.update(inventory.pop("features"))
    features[COHORT_FEATURE] = _cohort_outage_ratio(features, inventory["firmware"])
    names = tuple(features)
    values = np.stack([features[n] for n in names], axis=2) if names else np.empty((len(controllers), n_w, 0))
    return WindowFeatures(controllers, window_ends, names, values, inventory["firmware"])


def planned_resets(resets: pa.Table) -> np.ndarray:
    """Mask of the resets (models.resets.RESETS_SCHEMA) inside a declared maintenance window. A host's window
    resets every controller on it: counted as resets, they raised the reset and cohort features of whole hosts and,
    as observed failures, taught the lake's early-warning model which hosts were serviced. Neither feature nor
    label counts them (the truth label leaves maintenance out too)."""
    return numbers(resets.column("planned"), 0) > 0


def _health_features(
    errors: pa.Table, controllers: Controllers, grid: _Grid, per_window: dict, covered: dict, state: dict
) -> None:
    """Corrected-error deltas, temperature and status bits from the periodic health snapshots."""
    snaps = errors.select(list(HEALTH_COLUMNS)).filter(
        pa.array(equals(errors.column("record_type"), "health_snapshot"))
    )
    codes = controllers.codes(snaps.column("controller_id"))
    ts = timestamps_ns(snaps.column("ts"))
    order = order_by_controller_time(codes, ts)
    snaps, codes, ts = snaps.take(pa.array(order)), codes[order], ts[order]
    deltas = epoch_deltas(codes, numbers(snaps.column("counter_epoch"), 0), numbers(snaps.column("cor_vol_err_cnt"), 0))
    per_window["ce"] = grid.total(codes, ts, deltas.values)
    covered["ce"] = _covered_hours(codes, ts, grid)
    per_window["snapshots"] = grid.total(codes, ts)
    state["temp_max_c"] = _forward_fill(grid.maximum(codes, ts, numbers(snaps.column("device_temp_c"))))
    status = numbers(snaps.column("health_status"), 0).astype(np.int64)
    for bit, name in enumerate(HEALTH_BIT_NAMES):
        flagged = ((status >> bit) & 1).astype(np.float64)
        state[name] = np.nan_to_num(_forward_fill(grid.maximum(codes, ts, flagged)))
    media_bad = (numbers(snaps.column("media_status"), 0) != 0).astype(np.float64)
    state["media_abnormal"] = np.nan_to_num(_forward_fill(grid.maximum(codes, ts, media_bad)))
    additional = numbers(snaps.column("additional_status"), 0).astype(np.int64)
    state["temp_alarm"] = np.nan_to_num(_forward_fill(grid.maximum(codes, ts, ((additional >> 2) & 3).astype(float))))
    state["life_used_pct"] = _forward_fill(grid.maximum(codes, ts, numbers(snaps.column("life_used_pct"))))


def _event_row_features(errors: pa.Table, controllers: Controllers, grid: _Grid, per_window: dict) -> None:
    """Counts of discrete records, once per event_id, in the window they arrived in."""
    events = errors.select(list(EVENT_COLUMNS)).filter(
        pa.array(~equals(errors.column("record_type"), "health_snapshot"))
    )
    _, first = np.unique(events.column("event_id").to_numpy(zero_copy_only=False), return_index=True)
    events = events.take(pa.array(np.sort(first)))
    codes = controllers.codes(events.column("controller_id"))
    ts = timestamps_ns(events.column("ts"))
    record = events.column("record_type")
    descriptor = numbers(events.column("descriptor"), 0).astype(np.int64)
    status = numbers(events.column("status"), 0).astype(np.int64)
    media = is_in(record, ("general_media", "dram"))
    threshold = media & (descriptor & DESCRIPTOR_THRESHOLD_EVENT > 0)
    per_window["threshold_events"] = grid.total(codes[threshold], ts[threshold])
    cxl_ue = equals(record, "cxl_aer_ue")
    memory_ue = memory_ue_rows(events)
    per_window["ue_events"] = grid.total(codes[memory_ue], ts[memory_ue])
    severity = events.column("severity")
    uncorrected = is_in(severity, ("uncorrected_nonfatal", "uncorrected_fatal"))
    link_ue = (equals(record, "aer_event") & uncorrected) | (cxl_ue & (status & CXL_LINK_UE_BITS > 0))
    per_window["link_ue_events"] = grid.total(codes[link_ue], ts[link_ue])
    link_ce = is_in(record, LINK_CE_RECORDS) & equals(severity, "corrected")
    per_window["link_ce_events"] = grid.total(codes[link_ce], ts[link_ce])
    overflow = equals(record, "overflow")
    per_window["overflow_events"] = grid.total(
        codes[overflow], ts[overflow], numbers(events.column("overflow_count"), 1)[overflow]
    )


# The error records that can be a memory UE; `memory_ue_rows` decides which of them are.
UE_RECORDS = ("general_media", "dram", "poison", "cxl_aer_ue")


def memory_ue_rows(events: pa.Table) -> np.ndarray:
    """Mask of the error rows that are memory UEs: uncorrectable media records, poison, CXL UEs with a memory
    bit. The link's own UEs (surprise down, REINIT threshold) are not: they describe a drop, not the DRAM behind
    the controller. The `ue_events` features and the early warning's observed failures both count these."""
    record = events.column("record_type")
    descriptor = numbers(events.column("descriptor"), 0).astype(np.int64)
    status = numbers(events.column("status"), 0).astype(np.int64)
    return (
        (is_in(record, ("general_media", "dram")) & (descriptor & DESCRIPTOR_UNCORRECTABLE_EVENT > 0))
        | equals(record, "poison")
        | (equals(record, "cxl_aer_ue") & (status & CXL_MEMORY_UE_BITS > 0))
    )


def _link_features(
    link: pa.Table, controllers: Controllers, grid: _Grid, per_window: dict, covered: dict, state: dict
) -> None:
    """Link-error counter deltas per port (summed) and whether the link ran degraded at the window's end."""
    columns = [
        "controller_id",
        "port",
        "ts",
        "counter_epoch",
        "cur_speed_gts",
        "max_speed_gts",
        "cur_width",
        "max_width",
    ]
    snaps = link.select([*columns, *LINK_COUNTERS]).filter(pa.array(equals(link.column("event"), "snapshot")))
    codes = controllers.codes(snaps.column("controller_id"))
    series = series_codes(codes, snaps.column("port"))
    ts = timestamps_ns(snaps.column("ts"))
    order = order_by_controller_time(series, ts)
    codes, series, ts = codes[order], series[order], ts[order]

    def ordered(name: str, fill: float = np.nan) -> np.ndarray:  # numpy, not an Arrow take of every column
        return numbers(snaps.column(name), fill)[order]

    epochs = ordered("counter_epoch", 0)
    link_hours = _covered_hours(codes, ts, grid)  # the ports of a controller are read together
    for name in LINK_COUNTERS:
        deltas = epoch_deltas(series, epochs, ordered(name, 0))
        per_window[name] = grid.total(codes, ts, deltas.values)
        covered[name] = link_hours
    speed_ratio = ordered("cur_speed_gts") / ordered("max_speed_gts")
    width_ratio = ordered("cur_width") / ordered("max_width")
    # Bandwidth lost to a downgrade, 0..1, as last seen (a link that is down reports its last trained values).
    lost = 1.0 - np.clip(speed_ratio * width_ratio, 0.0, 1.0)
    state["link_bandwidth_lost"] = np.nan_to_num(_forward_fill(grid.maximum(codes, ts, lost)))


def _latency_features(latency: pa.Table, controllers: Controllers, grid: _Grid, per_window: dict, op: str) -> None:
    """Exact over-SLO and total sample counts of the CXL tier (good/total SLI inputs, never percentiles)."""
    rows = latency.filter(pa.array(equals(latency.column("memory_tier"), "cxl") & equals(latency.column("op"), op)))
    codes = controllers.codes(rows.column("controller_id"))
    ts = timestamps_ns(rows.column("window_start"))
    per_window["slo_bad"] = grid.total(codes, ts, numbers(rows.column("over_slo"), 0))
    per_window["slo_total"] = grid.total(codes, ts, numbers(rows.column("count"), 0))


def _inventory_features(inventory: pa.Table, controllers: Controllers, window_ends: np.ndarray) -> dict:
    codes = controllers.codes(inventory.column("controller_id"))
    keep = codes >= 0
    n_c, n_w = len(controllers), len(window_ends)
    deployed = np.full(n_c, np.nan)
    deployed[codes[keep]] = timestamps_ns(inventory.column("deployed_at"))[keep].astype(np.float64)
    firmware = np.full(n_c, "unknown", dtype=object)
    firmware[codes[keep]] = np.asarray(inventory.column("firmware_version").cast(pa.string()).to_pylist(), object)[keep]
    dimms = np.full(n_c, np.nan)
    dimms[codes[keep]] = numbers(inventory.column("dimm_count"))[keep]
    age_days = (window_ends[None, :] - deployed[:, None]) / (86_400 * NS_PER_S)
    return {
        "features": {"age_days": age_days, "dimm_count": np.repeat(dimms[:, None], n_w, axis=1)},
        "firmware": firmware,
    }


# Pseudo-controllers at the fleet rate added to every cohort: a small cohort needs real evidence to look bad.
COHORT_PRIOR_EVENTS = 2.0
COHORT_FEATURE = "cohort_outage_ratio_24h"


def _cohort_outage_ratio(features: Mapping[str, np.ndarray], firmware: np.ndarray) -> np.ndarray:
    """The cohort feature from the trailing day's reset and link-drop features: controllers with any outage, not
    outages, so one lemon does not make its whole cohort look bad."""
    outages = (features["resets_24h"] > 0) | (features["link_drops_24h"] > 0)
    return _cohort_ratio(outages.astype(np.float64), firmware)


def _cohort_ratio(events: np.ndarray, firmware: np.ndarray) -> np.ndarray:
    """log of (cohort's share of controllers with events) / (fleet's), shrunk towards 0 for small cohorts."""
    names, cohort = np.unique(firmware.astype(str), return_inverse=True)
    fleet_rate = events.sum(axis=0) / max(len(firmware), 1)
    prior_rate = np.maximum(fleet_rate, 1.0 / max(len(firmware), 1))
    out = np.zeros_like(events)
    for i in range(len(names)):
        members = cohort == i
        pooled = events[members].sum(axis=0) + COHORT_PRIOR_EVENTS * prior_rate
        out[members] = np.log(pooled / (members.sum() + COHORT_PRIOR_EVENTS) / prior_rate)
    return out


# What each feature series counts, in words, for reasons an operator reads (describe_feature).
SERIES_WORDS = {
    "ce": "corrected memory errors",
    "snapshots": "health snapshots",
    "threshold_events": "memory error-threshold events",
    "ue_events": "uncorrectable memory errors",
    "link_ue_events": "uncorrectable link errors",
    "link_ce_events": "correctable link error records",
    "overflow_events": "error-log overflows",
    "aer_cor_total": "correctable AER link errors",
    "cxl_crc_thresh_hits": "CXL CRC threshold hits",
    "cxl_retry_thresh_hits": "CXL retry threshold hits",
    "recovery_entries": "link recovery entries",
    "resets": "controller resets",
    "link_drops": "link drops",
    "link_retrains": "link retrains",
}
_FLAG_WORDS = {
    **{name: f"health status: {name.replace('_', ' ')}" for name in HEALTH_BIT_NAMES},
    "media_abnormal": "media status abnormal",
}


def describe_feature(name: str, value: float) -> tuple[str, str]:
    """(what the feature measures, its value with units): trailing counts and daily rates are stored as log1p,
    so they are shown back as counts."""
    if np.isnan(value):
        return name.replace("_", " "), "not observed"
    for series, words in SERIES_WORDS.items():
        for hours in TRAILING_HOURS:
            if name == f"{series}_{hours}h":
                return f"{words} in the last {hours} h", f"{np.expm1(value):,.0f}"
        if name == f"{series}_per_day_7d":
            return f"{words} per day over the last 7 d", f"{np.expm1(value):,.1f}"
    if name.startswith("slo_bad_fraction_"):
        hours = name.removeprefix("slo_bad_fraction_").removesuffix("h")
        return f"CXL reads over the latency SLO in the last {hours} h", f"{value:.2%}"
    if name in ("ce_trend", "link_error_trend"):
        what = "corrected memory errors" if name == "ce_trend" else "correctable link errors"
        return f"rise of {what} (log rate, last 6 h against the 18 h before)", f"{value:+.2f}"
    if name in _FLAG_WORDS:
        return _FLAG_WORDS[name], "yes" if value >= 0.5 else "no"
    if name.startswith("hours_since_"):
        what = "reset" if name == "hours_since_reset" else "link drop"
        shown = f"none in {HOURS_SINCE_CAP:.0f} h" if value >= HOURS_SINCE_CAP else f"{value:.1f} h"
        return f"time since the last {what}", shown
    units = {  # (what, format of the value); the cohort ratio is stored as a log
        "temp_max_c": ("device temperature (max of the hour)", "{:.0f} °C"),
        "temp_alarm": ("temperature alarm level (0-3)", "{:.0f}"),
        "life_used_pct": ("rated life used", "{:.0f} %"),
        "link_bandwidth_lost": ("link bandwidth lost to a downgrade", "{:.0%}"),
        "age_days": ("time since deployment", "{:.0f} d"),
        "dimm_count": ("DIMMs behind the controller", "{:.0f}"),
    }
    if name == "cohort_outage_ratio_24h":
        return "firmware cohort's share of controllers with an outage in 24 h, against the fleet's", (
            f"{np.exp(value):.1f}x"
        )
    what, shown = units.get(name, (name.replace("_", " "), "{:.3g}"))
    return what, shown.format(value)
