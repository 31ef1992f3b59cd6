"""Controller resets, explicit and inferred, each with its detection time (telemetry.md §4).

An explicit reset is a `controller_reset` row. A silent one leaves no row: only a counter epoch that moves on, an
uptime that restarts, cumulative counters that start again from zero, and a hole in the snapshots while the device
was away. Each trace is evidence with the interval in which the reset must have happened; overlapping evidence is
one reset, detected when its first piece of evidence arrived. A hole alone is not a reset (a collector or rack
outage looks the same) unless the configuration says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import TS, described
from models.series import (
    NS_PER_S,
    NULL_TS,
    Controllers,
    epoch_deltas,
    equals,
    group_starts,
    numbers,
    order_by_controller_time,
    running_max_per_group,
    series_codes,
    timestamps_ns,
)

RESETS_SCHEMA = pa.schema(
    [
        described("controller_id", pa.string(), "the controller that reset", nullable=False),
        described("reset_ts", TS, "best estimate of when the controller went down (UTC)", nullable=False),
        described("detected_ts", TS, "arrival of the first evidence (UTC)", nullable=False),
        described(
            "silent",
            pa.bool_(),
            "true when no controller_reset row reported it: found from other evidence only",
            nullable=False,
        ),
        described("reset_kind", pa.string(), "the reset kind the explicit row reported; null when silent"),
        described(
            "evidence",
            pa.string(),
            "what revealed it, comma-separated: row, epoch, uptime, counter, gap",
            nullable=False,
        ),
        described(
            "planned",
            pa.bool_(),
            "true inside a declared maintenance window of the controller's host: intended, not a failure",
            nullable=False,
        ),
    ]
)

# Evidence kinds, strongest first: the reset time is taken from the strongest piece that carries one.
EVIDENCE = ("row", "uptime", "epoch", "counter", "gap")


@dataclass(frozen=True)
class ResetConfig:
    """Tunables; the snapshot interval itself is measured from the data."""

    # Uptime may lag wall-clock by polling jitter; a restart must undercut the expected uptime by more than this.
    uptime_tolerance_s: float = 30.0
    # A hole longer than this many snapshot intervals is a telemetry gap.
    gap_intervals: float = 2.5
    # Clock and rounding tolerance when evidence times are compared (uptime counts whole seconds).
    merge_slack_s: float = 2.0
    # Longest time from a reset (its row) to the device counting uptime again (media ready: up to 60 s).
    max_downtime_s: float = 120.0
    # How far the host's clock, which stamps the snapshots an uptime restart is timed from, may sit from the
    # device's, which stamps the reset row: NTP steps a clock off by seconds to minutes (issue 14's clock steps).
    host_clock_offset_s: float = 300.0
    # Count a telemetry gap without any other trace as a reset.
    gap_alone_is_reset: bool = False
    # A counter that falls must stay below its old value for this many rows: rows a host clock step put out
    # of order climb back above it (a back step of minutes spans a few link snapshots).
    counter_confirm_rows: int = 5
    # Which traces are used; ("row", "gap") with gap_alone_is_reset is the static heartbeat baseline.
    evidence: tuple[str, ...] = EVIDENCE


_COLUMNS = ("code", "lo", "hi", "detected", "kind", "epoch_lo", "epoch_hi", "reset_kind")
UNKNOWN_EPOCH = -1


@dataclass
class _Evidence:
    """Columns of evidence rows: the reset happened in [lo, hi] and opened an epoch in [epoch_lo, epoch_hi]
    (UNKNOWN_EPOCH when the trace does not say); `detected` is when the row carrying it arrived."""

    parts: list[dict[str, np.ndarray]]

    def add(self, kind: str, code, lo, hi, detected, *, epoch=None, epoch_lo=None, reset_kind=None) -> None:
        n = len(code)
        epoch = np.full(n, UNKNOWN_EPOCH) if epoch is None else np.asarray(epoch, np.int64)
        part = {
            "code": code,
            "lo": lo,
            "hi": hi,
            "detected": detected,
            "kind": np.full(n, EVIDENCE.index(kind)),
            "epoch_lo": epoch if epoch_lo is None else epoch_lo,
            "epoch_hi": epoch,
        }
        self.parts.append({name: np.asarray(v, np.int64) for name, v in part.items()})
        self.parts[-1]["reset_kind"] = np.asarray([None] * n if reset_kind is None else reset_kind, object)

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.parts:
            return {name: np.empty(0, object if name == "reset_kind" else np.int64) for name in _COLUMNS}
        return {name: np.concatenate([p[name] for p in self.parts]) for name in _COLUMNS}


def detect_resets(
    errors: pa.Table,
    link: pa.Table,
    controllers: Controllers,
    config: ResetConfig | None = None,
    link_drops: pa.Table | None = None,
    maintenance: pa.Table | None = None,
) -> pa.Table:
    """Explicit and inferred resets in RESETS_SCHEMA, one row per reset, sorted by controller and time.

    `link_drops` (link_events.INCIDENTS_SCHEMA) explain traces: re-enumeration after a drop also opens a new
    counter epoch, so an inferred reset whose traces coincide with a drop's start or link-up is that drop.
    `maintenance` (contract.MAINTENANCE_SCHEMA: controller_id, start_ts, end_ts) are declared maintenance windows:
    a reset inside one of its controller's is planned, not a failure.
    """
    config = config or ResetConfig()
    evidence = _Evidence([])
    _explicit_rows(errors, controllers, evidence)
    _epoch_changes(errors, link, controllers, evidence)
    _health_restarts(errors, controllers, config, evidence)
    _link_counter_restarts(link, controllers, config, evidence)
    arrays = evidence.arrays()
    used = np.isin(arrays["kind"], [EVIDENCE.index(kind) for kind in config.evidence])
    drops = _drop_times(link_drops, controllers) if link_drops is not None else {}
    resets = _merge({name: values[used] for name, values in arrays.items()}, controllers, config, drops)
    planned = np.zeros(resets.num_rows, dtype=bool)
    if maintenance is not None and maintenance.num_rows and resets.num_rows:
        planned = _in_maintenance(resets, maintenance)
    return resets.set_column(
        resets.schema.get_field_index("planned"), RESETS_SCHEMA.field("planned"), pa.array(planned)
    )


def _in_maintenance(resets: pa.Table, windows: pa.Table) -> np.ndarray:
    """Whether each reset's moment falls inside a maintenance window of its controller."""
    spans: dict[str, list[tuple[int, int]]] = {}
    starts, ends = timestamps_ns(windows.column("start_ts")), timestamps_ns(windows.column("end_ts"))
    for cid, start, end in zip(
        windows.column("controller_id").to_pylist(), starts.tolist(), ends.tolist(), strict=True
    ):
        spans.setdefault(cid, []).append((start, end))
    moments = timestamps_ns(resets.column("reset_ts")).tolist()
    return np.array(
        [
            any(lo <= t <= hi for lo, hi in spans.get(cid, ()))
            for cid, t in zip(resets.column("controller_id").to_pylist(), moments, strict=True)
        ],
        dtype=bool,
    )


def _drop_times(incidents: pa.Table, controllers: Controllers) -> dict[int, np.ndarray]:
    """Sorted start and link-up times of each controller's drops that rows or counters (not states) prove."""
    kind = equals(incidents.column("kind"), "drop")
    evidence = np.asarray(incidents.column("evidence").to_pylist(), dtype=object)
    proven = kind & np.array([e != "state" for e in evidence], dtype=bool)
    codes = controllers.codes(incidents.column("controller_id"))[proven]
    start = timestamps_ns(incidents.column("start_ts"))[proven]
    end = timestamps_ns(incidents.column("end_ts"))[proven]
    times: dict[int, list[int]] = {}
    for code, t0, t1 in zip(codes.tolist(), start.tolist(), end.tolist(), strict=True):
        times.setdefault(code, []).extend(t for t in (t0, t1) if t != NULL_TS)
    return {code: np.sort(np.asarray(ts, np.int64)) for code, ts in times.items()}


def _explicit_rows(errors: pa.Table, controllers: Controllers, evidence: _Evidence) -> None:
    mask = equals(errors.column("record_type"), "controller_reset")
    rows = errors.filter(pa.array(mask))
    # At-least-once delivery may repeat a row: one reset per event_id.
    _, first = np.unique(rows.column("event_id").to_numpy(zero_copy_only=False), return_index=True)
    rows = rows.take(pa.array(np.sort(first)))
    ts = timestamps_ns(rows.column("ts"))
    device_ts = timestamps_ns(rows.column("device_ts"))
    when = np.where(device_ts != NULL_TS, device_ts, ts)
    kinds = np.asarray(rows.column("reset_kind").cast(pa.string()).to_pylist(), object)
    codes = controllers.codes(rows.column("controller_id"))
    epoch = numbers(rows.column("counter_epoch"), 0)
    evidence.add("row", codes, when, when, ts, epoch=epoch, reset_kind=kinds)


def _epoch_changes(errors: pa.Table, link: pa.Table, controllers: Controllers, evidence: _Evidence) -> None:
    """The highest counter epoch seen on any row of either stream moves on: a reset since the previous row."""
    codes = np.concatenate(
        [controllers.codes(errors.column("controller_id")), controllers.codes(link.column("controller_id"))]
    )
    ts = np.concatenate([timestamps_ns(errors.column("ts")), timestamps_ns(link.column("ts"))])
    epochs = np.concatenate(
        [numbers(errors.column("counter_epoch"), 0), numbers(link.column("counter_epoch"), 0)]
    ).astype(np.int64)
    order = order_by_controller_time(codes, ts)
    order = order[codes[order] >= 0]
    codes, ts, epochs = codes[order], ts[order], epochs[order]
    first = group_starts(codes)
    high = running_max_per_group(epochs, first)
    moved = np.flatnonzero(~first & (high > np.roll(high, 1)))
    # Several resets between two rows move the epoch by several: each of those epochs is accounted for.
    evidence.add(
        "epoch", codes[moved], ts[moved - 1], ts[moved], ts[moved], epoch=high[moved], epoch_lo=high[moved - 1] + 1
    )


def _health_snapshots(errors: pa.Table, controllers: Controllers) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    mask = equals(errors.column("record_type"), "health_snapshot")
    snaps = errors.select(["controller_id", "ts", "uptime_s", "counter_epoch", "cor_vol_err_cnt"]).filter(
        pa.array(mask)
    )
    codes = controllers.codes(snaps.column("controller_id"))
    ts = timestamps_ns(snaps.column("ts"))
    order = order_by_controller_time(codes, ts)
    order = order[codes[order] >= 0]
    codes, ts, snaps = codes[order], ts[order], snaps.take(pa.array(order))
    first = _first_sending(codes, snaps)
    return codes[first], ts[first], snaps.filter(pa.array(first))


def _first_sending(sorted_codes: np.ndarray, snaps: pa.Table) -> np.ndarray:
    """Mask of the snapshots that are not a re-send: an agent that restarts sends its last snapshot again, later
    and unchanged (the same uptime and counters). Out of order behind newer snapshots its stale uptime would look
    like a restart; the device's uptime never repeats within an epoch, so an equal payload is that copy."""
    uptime = numbers(snaps.column("uptime_s"))
    keys = np.stack(
        [
            sorted_codes,
            numbers(snaps.column("counter_epoch"), 0).astype(np.int64),
            np.nan_to_num(uptime, nan=-1).astype(np.int64),
            numbers(snaps.column("cor_vol_err_cnt"), -1).astype(np.int64),
        ],
        axis=1,
    )
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, axis=0, return_index=True)[1]] = True  # rows are in time order: the original is first
    return first | np.isnan(uptime)


def _health_restarts(errors: pa.Table, controllers: Controllers, config: ResetConfig, evidence: _Evidence) -> None:
    """Uptime restarts, corrected-error counters starting again, and telemetry gaps in the health snapshots."""
    codes, ts, snaps = _health_snapshots(errors, controllers)
    cont = ~group_starts(codes)[1:]  # row i+1 continues row i's controller
    if not cont.any():  # at most one snapshot per controller: nothing restarts, no interval to measure
        return
    prev_ts, cur_ts, cur_codes = ts[:-1][cont], ts[1:][cont], codes[1:][cont]
    uptime = numbers(snaps.column("uptime_s"))
    expected = uptime[:-1][cont] + (cur_ts - prev_ts) / NS_PER_S
    # Uptime is the device's own clock: it only falls when the device restarts. Measured against the host's
    # clock alone, a host clock step forward would look like a restart, so a shortfall needs the uptime to fall
    # or to exceed any clock offset: across a collector outage of hours a restarted device's uptime can end
    # above the last one seen, yet far below the time that passed.
    current = uptime[1:][cont]
    restarted = (current + config.uptime_tolerance_s < expected) & (
        (current < uptime[:-1][cont]) | (current + config.host_clock_offset_s < expected)
    )
    went_down = cur_ts - (current * NS_PER_S).astype(np.int64)
    sel = np.flatnonzero(restarted)
    # The uptime pins the moment to within polling jitter, clamped to the interval it must lie in.
    moment = np.clip(went_down[sel], prev_ts[sel], cur_ts[sel])
    epochs = numbers(snaps.column("counter_epoch"), 0).astype(np.int64)
    epoch, before = epochs[1:][cont][sel], epochs[:-1][cont][sel]
    # The reset opened one of the epochs after the previous snapshot's (a link drop in between opens another);
    # an epoch that did not move says nothing more than the epoch itself.
    evidence.add(
        "uptime", cur_codes[sel], moment, moment, cur_ts[sel], epoch=epoch, epoch_lo=np.minimum(before + 1, epoch)
    )

    counts = numbers(snaps.column("cor_vol_err_cnt"), 0)
    deltas = epoch_deltas(codes, epochs, counts)
    sel = np.flatnonzero(_lasting(codes, counts, deltas.decreased, config.counter_confirm_rows)[1:][cont])
    evidence.add("counter", cur_codes[sel], prev_ts[sel], cur_ts[sel], cur_ts[sel])

    interval_ns = float(np.median(cur_ts - prev_ts))
    sel = np.flatnonzero(cur_ts - prev_ts > config.gap_intervals * interval_ns)
    evidence.add("gap", cur_codes[sel], prev_ts[sel], cur_ts[sel], cur_ts[sel])


def _link_counter_restarts(link: pa.Table, controllers: Controllers, config: ResetConfig, evidence: _Evidence) -> None:
    """The link's cumulative AER total falls within one epoch: the device-side counters were zeroed."""
    mask = equals(link.column("event"), "snapshot")
    snaps = link.select(["controller_id", "port", "ts", "counter_epoch", "aer_cor_total"]).filter(pa.array(mask))
    codes = controllers.codes(snaps.column("controller_id"))
    series = series_codes(codes, snaps.column("port"))
    ts = timestamps_ns(snaps.column("ts"))
    order = order_by_controller_time(series, ts)
    order = order[codes[order] >= 0]
    series, ts = series[order], ts[order]
    epochs = numbers(snaps.column("counter_epoch"), 0)[order]
    totals = numbers(snaps.column("aer_cor_total"), 0)[order]
    deltas = epoch_deltas(series, epochs, totals)
    sel = np.flatnonzero(_lasting(series, totals, deltas.decreased, config.counter_confirm_rows))
    evidence.add("counter", codes[order][sel], ts[sel - 1], ts[sel], ts[sel])


def _lasting(sorted_codes: np.ndarray, values: np.ndarray, decreased: np.ndarray, rows: int) -> np.ndarray:
    """The decreases that last: zeroed counters stay below their old value, while rows a host clock step put out
    of order climb back above it within a few rows."""
    n = len(values)
    lasting = decreased.copy()
    previous = np.roll(values, 1)
    for ahead in range(1, rows + 1):
        later = np.full(n, -np.inf)
        head = max(n - ahead, 0)  # fewer rows than `ahead` (a live round's first minutes): none has a later row
        later[:head] = np.where(sorted_codes[ahead:] == sorted_codes[:head], values[ahead:], -np.inf)
        lasting &= later < previous
    return lasting


def _merge(
    ev: dict[str, np.ndarray], controllers: Controllers, config: ResetConfig, drops: dict[int, np.ndarray]
) -> pa.Table:
    """Group evidence per controller into resets.

    Rows and uptime restarts pin a reset to a moment, so a reset loop stays a loop however tight. Interval
    evidence (epoch, counter, gap) joins the reset whose moments it contains, which can only make detection
    earlier. Resets without a row that coincide with a proven link drop are that drop.
    """
    order = np.lexsort((ev["lo"], ev["code"]))
    ev = {name: values[order] for name, values in ev.items()}
    codes = ev["code"].astype(np.int64)
    rows = []
    for lo, hi in zip(*_group_ranges(codes), strict=True):
        for members in _clusters(ev, np.arange(lo, hi), config):
            row = _reset_row(ev, members, config, drops.get(int(codes[lo])))
            if row is not None:
                rows.append((int(codes[lo]), *row))
    columns = list(zip(*rows, strict=True)) if rows else [[]] * 6
    unplanned = pa.array(np.zeros(len(rows), dtype=bool))
    return pa.table(
        {
            "controller_id": controllers.ids.take(pa.array(columns[0], pa.int64())),
            "reset_ts": pa.array(columns[1], pa.int64()).cast(TS),
            "detected_ts": pa.array(columns[2], pa.int64()).cast(TS),
            "silent": pa.array(columns[3], pa.bool_()),
            "reset_kind": pa.array(columns[4], pa.string()),
            "evidence": pa.array(columns[5], pa.string()),
            "planned": unplanned,  # set by detect_resets when a maintenance calendar is given
        },
        schema=RESETS_SCHEMA,
    ).sort_by([("controller_id", "ascending"), ("reset_ts", "ascending")])


def _group_ranges(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(group_starts(sorted_codes))
    # No evidence at all (a quiet window) has no groups, not one empty group.
    ends = np.append(starts[1:], len(sorted_codes)) if len(starts) else starts
    return starts, ends


_PRECISE = (EVIDENCE.index("row"), EVIDENCE.index("uptime"))


def _clusters(ev: dict[str, np.ndarray], idx: np.ndarray, config: ResetConfig) -> list[list[int]]:
    """One controller's evidence (sorted by lo) grouped into resets.

    Every row is a reset (rows are de-duplicated upstream), and so is every uptime restart; an uptime restart
    belongs to the nearest row of a counter epoch it may have opened when the device came back within
    `max_downtime_s` of it, give or take the host's clock offset (the row is timed by the device, the uptime
    restart by the host's snapshots). Interval evidence then joins the first reset it is consistent with (time,
    and epoch when known), or forms resets from overlapping intervals.
    """
    slack = int(config.merge_slack_s * NS_PER_S)
    offset = slack + int(config.host_clock_offset_s * NS_PER_S)
    downtime = int(config.max_downtime_s * NS_PER_S)
    kinds = ev["kind"][idx]
    anchors: list[list[int]] = [[i] for i in idx[kinds == EVIDENCE.index("row")].tolist()]
    taken = np.zeros(len(anchors), dtype=bool)
    for i in idx[kinds == EVIDENCE.index("uptime")].tolist():
        match = [
            j
            for j, a in enumerate(anchors[: len(taken)])
            if not taken[j]
            and ev["epoch_lo"][i] <= ev["epoch_hi"][a[0]] <= ev["epoch_hi"][i]
            and ev["lo"][i] - downtime - offset <= ev["lo"][a[0]] <= ev["lo"][i] + offset
        ]
        if match:
            nearest = min(match, key=lambda j: abs(int(ev["lo"][anchors[j][0]]) - int(ev["lo"][i])))
            anchors[nearest].append(i)
            taken[nearest] = True
        else:
            anchors.append([i])
    anchors.sort(key=lambda members: int(ev["lo"][members[0]]))
    first = np.array([min(ev["lo"][m] for m in a) for a in anchors], dtype=np.int64)
    last = np.array([max(ev["lo"][m] for m in a) for a in anchors], dtype=np.int64)
    epoch = np.array([ev["epoch_hi"][a[0]] for a in anchors], dtype=np.int64)
    loose: list[list[int]] = []
    reach = np.iinfo(np.int64).min
    for i in idx[~np.isin(kinds, _PRECISE)].tolist():
        margin, fits = slack, np.ones(len(anchors), dtype=bool)
        if ev["epoch_hi"][i] != UNKNOWN_EPOCH:
            # The epoch names the reset, so the rows' host clock may be as far off as for an uptime restart.
            margin, fits = offset, (epoch >= ev["epoch_lo"][i]) & (epoch <= ev["epoch_hi"][i])
        fits &= (last >= ev["lo"][i] - margin) & (first <= ev["hi"][i] + margin)
        if fits.any():
            anchors[int(np.argmax(fits))].append(i)
        elif loose and ev["lo"][i] <= reach:
            loose[-1].append(i)
            reach = max(reach, int(ev["hi"][i]) + slack)
        else:
            loose.append([i])
            reach = int(ev["hi"][i]) + slack
    return anchors + loose


def _reset_row(ev: dict[str, np.ndarray], members: list[int], config: ResetConfig, drop_times: np.ndarray | None):
    """(reset_ts, detected_ts, silent, reset_kind, evidence) of one cluster, or None if it is not a reset."""
    members = np.asarray(members)
    kinds = ev["kind"][members]
    if not config.gap_alone_is_reset and (kinds == EVIDENCE.index("gap")).all():
        return None
    explicit = members[kinds == EVIDENCE.index("row")]
    lo, hi = int(ev["lo"][members].max()), int(ev["hi"][members].min())
    if not len(explicit) and drop_times is not None:
        slack = int(config.merge_slack_s * NS_PER_S)
        after = drop_times[np.searchsorted(drop_times, int(ev["lo"][members].min()) - slack) :]
        if len(after) and after[0] <= int(ev["hi"][members].max()) + slack:
            return None
    strongest = members[np.argmin(kinds)]
    # A precise moment when there is one; else the middle of the interval every trace agrees on.
    moment = int(ev["lo"][strongest]) if kinds.min() in _PRECISE else (lo + max(hi, lo)) // 2
    arrivals = ev["detected"][members]
    if kinds.min() in _PRECISE:
        # A row stamped before the moment it reveals came from a host clock stepped back: it was not the first news.
        after = arrivals[arrivals >= moment - int(config.merge_slack_s * NS_PER_S)]
        arrivals = after if len(after) else arrivals
    detected = int(arrivals.min())
    return (
        # Uptime-based estimates are whole seconds; a reset cannot postdate the evidence that revealed it.
        min(moment, detected),
        detected,
        not len(explicit),
        ev["reset_kind"][explicit[0]] if len(explicit) else None,
        ",".join(EVIDENCE[k] for k in sorted(set(kinds.tolist()))),
    )
