"""Telemetry confounders: what makes a real fleet's telemetry misbehave without any device fault.

Collector outages, agent restarts, planned host maintenance, host clock steps, 32-bit counter wraps and a counter
width change after a firmware update, partial telemetry and a firmware cohort whose baselines shift at rollout.
THE owner of the confounder profiles (`off`, `default`, `heavy`) and of their rates: `ConfounderKnobs.profile`
names the profile a run used so that the delivery knobs (late, out-of-order, duplicate batches) can follow it.

Rates are per host-day (or controller share) of *simulated* time and are not multiplied by `fault_acceleration`:
these are operational events, and a 6 h run must see each several times to test the detectors. Every rate below
is an ASSUMPTION unless it cites a source; magnitudes follow fault_model.md and the kernel's documented behaviour
where one exists. Planned maintenance resets enter the fault schedule (they are controller resets); every other
confounder edits the telemetry rows a chunk produced, vectorized per table. Each confounder has its own
`truth_faults` rows (kind, controller, start, end) so evaluation can say which false alarm it caused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import (
    CONFOUNDER_KINDS,
    HISTOGRAM_BASE,
    HISTOGRAM_SCALE,
    MAINTENANCE_SCHEMA,
    RESET_KINDS,
    bucket_index,
)
from ingest.sim.arrow_columns import timestamps
from ingest.sim.seeding import lognormal
from ingest.sim.timeline import ControllerEvents, expand_ranges, inside_windows

if TYPE_CHECKING:  # the fleet imports the config, which holds these knobs
    from ingest.sim.fleet import Fleet

CONFOUNDER_PROFILES = ("off", "default", "heavy")
DEFAULT_PROFILE = "default"
# Telemetry streams a partial outage can remove: health snapshots, link snapshots, latency histograms.
PARTIAL_STREAMS = ("health_snapshot", "link_snapshot", "latency")
COUNTER_MODULUS = 2**32
SECONDS_PER_DAY = 86_400.0
# Planned resets: a host reboot is a warm reset, a firmware activation is fw_activate (telemetry.md §4).
PLANNED_RESET_KINDS = (RESET_KINDS.index("warm"), RESET_KINDS.index("fw_activate"))


@dataclass(frozen=True)
class ConfounderKnobs:
    """One profile's rates and magnitudes. Build it with `confounder_knobs(profile)`, never field by field."""

    profile: str = DEFAULT_PROFILE
    # ASSUMPTION: a collector (agent host-side pipeline, scrape target) down for minutes to hours.
    collector_outage_per_host_day: float = 0.3
    collector_outage_median_s: float = 1200.0
    collector_outage_sigma: float = 1.0
    # ASSUMPTION: agent restarts (upgrades, OOM kills) are short: the next snapshot or two are missing.
    agent_restart_per_host_day: float = 0.5
    agent_restart_gap_s: tuple[float, float] = (20.0, 150.0)
    # ~10 % of interruptions are planned (fault_model.md §2.4 [V]); ASSUMPTION: a host-level maintenance window
    # (drain, firmware activation or warm reboot of every controller on the host) per host every ten days.
    maintenance_per_host_day: float = 0.1
    maintenance_window_s: float = 3600.0  # ASSUMPTION: a one-hour declared window
    maintenance_reset_at: tuple[float, float] = (0.2, 0.8)  # ASSUMPTION: the reboot falls inside the window
    # NTP steps the clock when the offset exceeds 128 ms (ntpd's step threshold; chrony's makestep is similar);
    # ASSUMPTION: a host's clock off by seconds to a minute for a while, stepped back when corrected.
    clock_step_per_host_day: float = 0.3
    clock_step_s: tuple[float, float] = (2.0, 50.0)  # magnitude, log-uniform; the sign is a coin flip
    clock_step_hold_median_s: float = 1800.0
    # Counters are 32-bit in the CXL health info (cor_vol_err_cnt) and in older firmware's AER tallies: they roll
    # over. ASSUMPTION: a share of controllers whose counters sit this close below 2^32 at the run start.
    counter_wrap_share: float = 0.05
    counter_wrap_headroom: float = 20.0  # counts left before the wrap, uniform in [1, headroom]
    # ASSUMPTION: half of those get a firmware update during the run that widens the link counters to 64 bits.
    counter_width_change_share: float = 0.5
    # ASSUMPTION: one record type missing from one host for a while (a broken exporter module).
    partial_per_host_day: float = 0.3
    partial_median_s: float = 1800.0
    partial_sigma: float = 0.8
    # ASSUMPTION: a firmware version rolled out mid-run shifts its cohort's latency and CE baselines.
    rollout_version: str = "2.6.0"
    rollout_at: float = 0.5  # share of the span
    rollout_latency_multiplier: float = 1.19  # ≈ 4 histogram buckets at scale 4 (2^(4/16))
    rollout_ce_per_hour: float = 2.0

    def __post_init__(self) -> None:
        if self.profile not in CONFOUNDER_PROFILES:
            raise ValueError(f"confounders must be one of {', '.join(CONFOUNDER_PROFILES)}, got {self.profile!r}")

    @property
    def enabled(self) -> bool:
        return self.profile != "off"


_RATES = (
    "collector_outage_per_host_day",
    "agent_restart_per_host_day",
    "maintenance_per_host_day",
    "clock_step_per_host_day",
    "counter_wrap_share",
    "partial_per_host_day",
)
HEAVY_RATE_MULTIPLIER = 4.0  # ASSUMPTION: a bad week in a large fleet


def confounder_knobs(profile: str = DEFAULT_PROFILE) -> ConfounderKnobs:
    """The knobs of one profile: `off` has no confounders, `heavy` 4x the rates and minute-long clock steps."""
    knobs = ConfounderKnobs(profile=profile)
    if profile == "off":
        return dataclasses.replace(knobs, **dict.fromkeys(_RATES, 0.0), rollout_at=1.0)
    if profile == "heavy":
        scaled = {name: getattr(knobs, name) * HEAVY_RATE_MULTIPLIER for name in _RATES}
        scaled["counter_wrap_share"] = min(1.0, scaled["counter_wrap_share"])
        return dataclasses.replace(knobs, **scaled, clock_step_s=(5.0, 240.0), rollout_latency_multiplier=1.41)
    return knobs


@dataclass(frozen=True)
class Confounders:
    """Sparse confounder events per controller (host-level ones expanded to every controller of the host)."""

    kind: np.ndarray  # index into CONFOUNDER_KINDS
    ctrl: np.ndarray
    start: np.ndarray  # seconds from the run start
    end: np.ndarray
    value: np.ndarray  # clock offset (s), stream index (partial), or NaN
    wrap_base: np.ndarray  # per controller: counts below 2^32 at the start (0 = no 32-bit wrap)
    width_change_s: np.ndarray  # per controller: when link counters widen to 64 bits (inf = never)
    rollout_s: float
    cohort: np.ndarray  # per controller: in the firmware cohort that is rolled out

    def of(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ctrl, start, end, value) of one kind."""
        keep = self.kind == CONFOUNDER_KINDS.index(kind)
        return self.ctrl[keep], self.start[keep], self.end[keep], self.value[keep]

    def planned_resets(
        self, knobs: ConfounderKnobs, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ctrl, time, reset kind) of the reset each controller takes inside its maintenance window."""
        ctrl, start, end, _ = self.of("maintenance")
        t = start + rng.uniform(*knobs.maintenance_reset_at, ctrl.size) * (end - start)
        kinds = np.asarray(PLANNED_RESET_KINDS)[rng.integers(0, len(PLANNED_RESET_KINDS), ctrl.size)]
        return ctrl, t, kinds


def maintenance_table(c: Confounders | None, fleet: Fleet, start_ns: int) -> pa.Table:
    """The declared maintenance windows as a change calendar publishes them: each host window once per controller
    on the host (the confounder events are already expanded so), sorted by host, start and controller."""
    if c is None:
        return MAINTENANCE_SCHEMA.empty_table()
    ctrl, start, end, _ = c.of("maintenance")
    host = fleet.host[ctrl]
    order = np.lexsort((ctrl, start, host))
    ctrl, host, start, end = ctrl[order], host[order], start[order], end[order]
    return pa.table(
        {
            "controller_id": fleet.controller_ids.take(pa.array(ctrl, pa.int64())).cast(pa.string()),
            "host": fleet.host_names.take(pa.array(host, pa.int64())).cast(pa.string()),
            "start_ts": timestamps(start_ns + np.rint(start * 1e9).astype(np.int64)),
            "end_ts": timestamps(start_ns + np.rint(end * 1e9).astype(np.int64)),
            "purpose": pa.array(["host_maintenance"] * ctrl.size, pa.string()),
        },
        schema=MAINTENANCE_SCHEMA,
    )


def draw_confounders(knobs: ConfounderKnobs, fleet: Fleet, span_s: float, rng: np.random.Generator) -> Confounders:
    """Every confounder of the run, drawn up front like the fault schedule (sparse, cheap)."""
    n_hosts = fleet.n_hosts
    per_day = 1.0 / SECONDS_PER_DAY
    parts = []

    def host_events(kind: str, rate_per_day: float, length: np.ndarray | None = None) -> None:
        count = rng.poisson(rate_per_day * span_s * per_day, n_hosts)
        host = np.repeat(np.arange(n_hosts), count)
        start = rng.uniform(0.0, span_s, host.size)
        parts.append((kind, host, start, length))

    host_events("collector_outage", knobs.collector_outage_per_host_day)
    host_events("agent_restart", knobs.agent_restart_per_host_day)
    host_events("maintenance", knobs.maintenance_per_host_day)
    host_events("clock_step", knobs.clock_step_per_host_day)
    host_events("partial_telemetry", knobs.partial_per_host_day)
    lengths = {
        "collector_outage": lambda n: lognormal(rng, knobs.collector_outage_median_s, knobs.collector_outage_sigma, n),
        "agent_restart": lambda n: rng.uniform(*knobs.agent_restart_gap_s, n),
        "maintenance": lambda n: np.full(n, knobs.maintenance_window_s),
        "clock_step": lambda n: lognormal(rng, knobs.clock_step_hold_median_s, 0.7, n),
        "partial_telemetry": lambda n: lognormal(rng, knobs.partial_median_s, knobs.partial_sigma, n),
    }
    values = {
        "clock_step": lambda n: np.exp(rng.uniform(*np.log(knobs.clock_step_s), n)) * rng.choice([-1.0, 1.0], n),
        "partial_telemetry": lambda n: rng.integers(0, len(PARTIAL_STREAMS), n).astype(float),
    }
    order = np.argsort(fleet.host, kind="stable")
    first = np.searchsorted(fleet.host[order], np.arange(n_hosts), side="left")
    last = np.searchsorted(fleet.host[order], np.arange(n_hosts), side="right") - 1
    kind_parts, ctrl_parts, start_parts, end_parts, value_parts = [], [], [], [], []
    for kind, host, start, _ in parts:
        length = lengths[kind](host.size)
        value = values[kind](host.size) if kind in values else np.full(host.size, np.nan)
        if kind == "clock_step":  # one offset at a time: a step starting while the clock is off is not drawn
            keep = _first_of_overlaps(host, start, start + length)
            host, start, length, value = host[keep], start[keep], length[keep], value[keep]
        owner, position = expand_ranges(first[host], last[host])
        kind_parts.append(np.full(owner.size, CONFOUNDER_KINDS.index(kind), np.int8))
        ctrl_parts.append(order[position])
        start_parts.append(start[owner])
        end_parts.append(np.minimum(start + length, span_s)[owner])
        value_parts.append(value[owner])

    n = fleet.size
    wrapped = rng.random(n) < knobs.counter_wrap_share
    wrap_base = np.where(wrapped, rng.uniform(1.0, knobs.counter_wrap_headroom, n).round(), 0.0)
    widened = wrapped & (rng.random(n) < knobs.counter_width_change_share)
    width_change_s = np.where(widened, rng.uniform(0.0, span_s, n), np.inf)
    changed = np.flatnonzero(widened)
    kind_parts.append(np.full(changed.size, CONFOUNDER_KINDS.index("counter_width_change"), np.int8))
    ctrl_parts.append(changed)
    start_parts.append(width_change_s[changed])
    end_parts.append(width_change_s[changed])
    value_parts.append(np.full(changed.size, np.nan))

    rollout_s = knobs.rollout_at * span_s
    cohort = np.zeros(n, bool)
    if knobs.rollout_version in fleet.firmware_names and rollout_s < span_s:
        cohort = fleet.firmware == fleet.firmware_names.index(knobs.rollout_version)
    members = np.flatnonzero(cohort)
    kind_parts.append(np.full(members.size, CONFOUNDER_KINDS.index("firmware_rollout"), np.int8))
    ctrl_parts.append(members)
    start_parts.append(np.full(members.size, rollout_s))
    end_parts.append(np.full(members.size, np.inf))
    value_parts.append(np.full(members.size, knobs.rollout_latency_multiplier))
    return Confounders(
        kind=np.concatenate(kind_parts),
        ctrl=np.concatenate(ctrl_parts).astype(np.int64),
        start=np.concatenate(start_parts),
        end=np.concatenate(end_parts),
        value=np.concatenate(value_parts),
        wrap_base=wrap_base,
        width_change_s=width_change_s,
        rollout_s=rollout_s,
        cohort=cohort,
    )


class ConfounderRows:
    """Applies the row-level confounders to one chunk's tables, and finds the counter wraps it produced."""

    def __init__(self, knobs: ConfounderKnobs, c: Confounders, fleet: Fleet, span_s: float, start_ns: int) -> None:
        self.knobs = knobs
        self.c = c
        self.fleet = fleet
        self.start_ns = start_ns
        self.span_s = span_s

        def windows(*kinds: str, stream: int | None = None) -> tuple[ControllerEvents, np.ndarray]:
            keep = np.isin(c.kind, [CONFOUNDER_KINDS.index(k) for k in kinds])
            if stream is not None:
                keep |= (c.kind == CONFOUNDER_KINDS.index("partial_telemetry")) & (c.value == stream)
            ctrl, start, end = merged_windows(c.ctrl[keep], c.start[keep], c.end[keep])
            return ControllerEvents(ctrl, start, span_s), end

        self.silent = {
            stream: windows("collector_outage", "agent_restart", stream=index)
            for index, stream in enumerate(PARTIAL_STREAMS)
        }
        ctrl, start, end, _ = c.of("agent_restart")
        # The agent re-sends the last snapshot it had before it stopped: rows within one cadence before the gap.
        self.restart_ctrl, self.restart_start, self.restart_end = ctrl, start, end
        self._before_restart: dict[float, ControllerEvents] = {}  # per snapshot cadence: sorted once, not per chunk
        step_ctrl, step_start, step_end, offset = c.of("clock_step")
        self.steps = ControllerEvents(step_ctrl, step_start, span_s)
        self.step_end, self.step_offset = step_end, offset
        self.wrap_seen = np.zeros(fleet.size, np.int64)  # wraps already reported per controller (health, link)
        self.link_wrap_seen = np.zeros(fleet.size, np.int64)
        # The first reading of each wrapping counter: the counter sits `wrap_base` counts below 2^32 there.
        self.first_cor = np.full(fleet.size, -1, np.int64)
        self.first_rx = np.full(fleet.size, -1, np.int64)

    # -- the chunk's tables ------------------------------------------------------------------------------

    def errors(self, table: pa.Table, interval_s: float) -> tuple[pa.Table, list[tuple[int, float, float]]]:
        ctrl, t = self._where(table, "ts")
        health = _equals(table, "record_type", "health_snapshot")
        epoch = table.column("counter_epoch").to_numpy()
        cor = table.column("cor_vol_err_cnt").fill_null(0).to_numpy().astype(np.int64)
        uptime = table.column("uptime_s").fill_null(0).to_numpy().astype(np.float64)
        cohort = health & self.c.cohort[ctrl] & (t >= self.c.rollout_s)
        extra = np.floor(self.knobs.rollout_ce_per_hour / 3600.0 * np.minimum(t - self.c.rollout_s, uptime))
        cor = cor + np.where(cohort, extra, 0).astype(np.int64)
        base = np.where(health & (epoch == 0), self.c.wrap_base[ctrl], 0).astype(np.int64)
        first = _first_reading(self.first_cor, ctrl, t, cor, base > 0)
        shifted = cor + np.where(base > 0, COUNTER_MODULUS - base - first, 0)
        wraps = self._wraps(ctrl, t, shifted // COUNTER_MODULUS, base > 0, self.wrap_seen)
        cor = np.where(health, shifted % COUNTER_MODULUS, cor)
        table = _set(table, "cor_vol_err_cnt", pa.array(cor.astype(np.uint32), mask=~health | _nulls(table)))
        table = self._resent(table, health, ctrl, t, interval_s)
        return self._stepped(
            self._dropped(table, "health_snapshot", "ts", ("record_type", "health_snapshot")), "ts"
        ), wraps

    def link(self, table: pa.Table, interval_s: float) -> tuple[pa.Table, list[tuple[int, float, float]]]:
        ctrl, t = self._where(table, "ts")
        epoch = table.column("counter_epoch").to_numpy()
        rx = table.column("rx_err").to_numpy().astype(np.int64)
        base = np.where(epoch == 0, self.c.wrap_base[ctrl], 0).astype(np.int64)
        first = _first_reading(self.first_rx, ctrl, t, rx, base > 0)
        full = rx + np.where(base > 0, 2 * COUNTER_MODULUS - base - first, 0)
        narrow = (base > 0) & (t < self.c.width_change_s[ctrl])
        wraps = self._wraps(ctrl, t, (full // COUNTER_MODULUS - 1) * narrow, narrow, self.link_wrap_seen)
        reported = np.where(narrow, full % COUNTER_MODULUS, full)
        total = table.column("aer_cor_total").to_numpy().astype(np.int64) - rx + reported
        table = _set(table, "rx_err", pa.array(reported.astype(np.uint64)))
        table = _set(table, "aer_cor_total", pa.array(total.astype(np.uint64)))
        snapshot = _equals(table, "event", "snapshot")
        table = self._resent(table, snapshot, ctrl, t, interval_s)
        return self._stepped(self._dropped(table, "link_snapshot", "ts", ("event", "snapshot")), "ts"), wraps

    def latency(self, table: pa.Table) -> pa.Table:
        ctrl, t = self._where(table, "window_start")
        cohort = (ctrl >= 0) & self.c.cohort[np.maximum(ctrl, 0)] & (t >= self.c.rollout_s)
        if cohort.any():
            table = _slower(table, cohort, self.knobs.rollout_latency_multiplier)
        # ASSUMPTION: histogram windows are cut by the agent's monotonic timer on the synchronised window grid, so
        # a clock step moves the snapshot and event timestamps, not the latency windows (a window on a stepped
        # clock would either leave the grid the rollups need or collide with the window before it).
        return self._dropped(table, "latency", "window_start")

    # -- helpers ------------------------------------------------------------------------------------------

    def _where(self, table: pa.Table, ts: str) -> tuple[np.ndarray, np.ndarray]:
        """Controller index (host-level rows: the host's first controller) and seconds from the start."""
        ids = table.column("controller_id")
        ctrl = pc.fill_null(pc.index_in(ids, value_set=self.fleet.controller_ids), -1).to_numpy().astype(np.int64)
        host_rows = ctrl < 0
        if host_rows.any():
            host = pc.index_in(ids, value_set=self.fleet.host_names).to_numpy(zero_copy_only=False)
            ctrl[host_rows] = self._host_first[host[host_rows].astype(np.int64)]
        t = (table.column(ts).cast(pa.int64()).to_numpy() - self.start_ns) / 1e9
        return ctrl, t

    @cached_property
    def _host_first(self) -> np.ndarray:
        first = np.full(self.fleet.n_hosts, -1, np.int64)
        first[self.fleet.host[::-1]] = np.arange(self.fleet.size)[::-1]
        return first

    def _dropped(self, table: pa.Table, stream: str, ts: str, eligible: tuple[str, str] | None = None) -> pa.Table:
        """Rows of `stream` (those whose column equals the value, or all) inside a silent window are not sent."""
        ctrl, t = self._where(table, ts)
        windows, end = self.silent[stream]
        gone = inside_windows(ctrl, t, windows, end)
        if eligible is not None:
            gone &= _equals(table, *eligible)
        return table.filter(pa.array(~gone)) if gone.any() else table

    def _resent(self, table: pa.Table, eligible: np.ndarray, ctrl: np.ndarray, t: np.ndarray, interval_s: float):
        """The snapshot just before each agent restart, sent again when the agent is back (at the gap's end, its
        payload unchanged: the same uptime and counters, a new message id)."""
        if not self.restart_ctrl.size:
            return table
        if interval_s not in self._before_restart:
            self._before_restart[interval_s] = ControllerEvents(
                self.restart_ctrl, self.restart_start - interval_s, self.span_s
            )
        before = self._before_restart[interval_s]
        position = before.latest(ctrl, t)
        again = eligible & inside_windows(ctrl, t, before, self.restart_start)
        if not again.any():
            return table
        back = self.restart_end[before.order][position[again]]
        copies = table.filter(pa.array(again))
        ts_type = table.schema.field("ts").type
        copies = _set(copies, "ts", pa.array(self.start_ns + np.rint(back * 1e9).astype(np.int64)).cast(ts_type))
        if "event_id" in table.column_names:
            ids = np.frombuffer(b"".join(copies.column("event_id").to_pylist()), np.uint8).reshape(-1, 16).copy()
            ids[:, 0] ^= 0xFF  # another id, derived so that the run stays reproducible
            copies = _set(copies, "event_id", pa.array([row.tobytes() for row in ids], pa.binary(16)))
        return pa.concat_tables([table, copies])

    def _stepped(self, table: pa.Table, ts: str) -> pa.Table:
        if not len(self.steps):
            return table
        ctrl, t = self._where(table, ts)
        position = self.steps.latest(ctrl, t)
        end = self.step_end[self.steps.order][np.maximum(position, 0)]
        offset = self.step_offset[self.steps.order][np.maximum(position, 0)]
        offset = np.where((position >= 0) & (t < end), offset, 0.0)
        if not offset.any():
            return table
        shifted = table.column(ts).cast(pa.int64()).to_numpy() + np.rint(offset * 1e9).astype(np.int64)
        return _set(table, ts, pa.array(shifted).cast(table.schema.field(ts).type))

    def _wraps(self, ctrl, t, count, eligible, seen) -> list[tuple[int, float, float]]:
        """(controller, last time before, first time after) of each wrap first visible in these rows, by controller.

        All controllers at once: the eligible rows sorted by controller then time, each controller's running maximum
        of the wrap count, and its first row above the count already reported (a loop over controllers would scan
        the chunk once per controller, and a chunk holds the whole fleet)."""
        rows = np.flatnonzero(eligible)
        if not rows.size:
            return []
        order = rows[np.lexsort((t[rows], ctrl[rows]))]
        c, ordered = ctrl[order], count[order]
        least = ordered.min()
        counts = ordered - least
        opens = np.concatenate([[True], c[1:] != c[:-1]])
        group, starts = np.cumsum(opens) - 1, np.flatnonzero(opens)
        lifted = c * (int(counts.max()) + 1)  # keeps each controller's running maximum its own
        running = np.maximum.accumulate(counts + lifted) - lifted + least
        above = np.flatnonzero(running > seen[c])
        firsts = above[np.unique(group[above], return_index=True)[1]]
        lasts = np.concatenate([starts[1:], [c.size]]) - 1
        seen[c[firsts]] = running[lasts[group[firsts]]]
        return [(int(c[i]), float(t[order[i - 1 if i > starts[group[i]] else i]]), float(t[order[i]])) for i in firsts]


def _first_of_overlaps(key: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mask of the windows that begin after every earlier window of the same key has ended."""
    keep = np.zeros(key.size, bool)
    if not key.size:
        return keep
    order = np.lexsort((start, key))
    k, s0, e0 = key[order], start[order], end[order]
    stride = 2.0 * float(np.max(np.abs(np.concatenate([s0, e0])))) + 1.0
    reach = np.maximum.accumulate(e0 + k * stride) - k * stride
    keep[order] = np.concatenate([[True], (k[1:] != k[:-1]) | (s0[1:] >= reach[:-1])])
    return keep


def merged_windows(ctrl: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, ...]:
    """Overlapping windows of a controller merged into one, so "inside the latest window" is "inside any"."""
    if not ctrl.size:
        return ctrl, start, end
    order = np.lexsort((start, ctrl))
    ctrl, start, end = ctrl[order], start[order], end[order]
    stride = 2.0 * float(np.max(np.abs(np.concatenate([start, end])))) + 1.0
    reach = np.maximum.accumulate(end + ctrl * stride) - ctrl * stride
    opens = np.concatenate([[True], (ctrl[1:] != ctrl[:-1]) | (start[1:] > reach[:-1])])
    group = np.cumsum(opens) - 1
    last = np.concatenate([np.flatnonzero(opens)[1:], [ctrl.size]]) - 1
    return ctrl[opens], start[opens], reach[last][: group[-1] + 1]


def _first_reading(first: np.ndarray, ctrl: np.ndarray, t: np.ndarray, value: np.ndarray, rows: np.ndarray):
    """Each row's controller's first reading of the counter (recorded in `first` the first time it is seen)."""
    order = np.flatnonzero(rows)[np.argsort(t[rows], kind="stable")]
    unseen, at = np.unique(ctrl[order], return_index=True)
    new = first[unseen] < 0
    first[unseen[new]] = value[order[at[new]]]
    return np.where(rows, first[np.maximum(ctrl, 0)], 0)


def _equals(table: pa.Table, column: str, value: str) -> np.ndarray:
    return pc.fill_null(pc.equal(table.column(column).cast(pa.string()), value), False).to_numpy(zero_copy_only=False)


def _nulls(table: pa.Table) -> np.ndarray:
    return table.column("cor_vol_err_cnt").is_null().to_numpy(zero_copy_only=False)


def _set(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), column)


def _slower(table: pa.Table, rows: np.ndarray, multiplier: float) -> pa.Table:
    """Shift the histograms of `rows` up by whole buckets (latency x multiplier), and the derived columns."""
    shift = round(math.log2(multiplier) * 2**HISTOGRAM_SCALE)
    factor = 2 ** (shift / 2**HISTOGRAM_SCALE)
    offset = table.column("bucket_offset").to_numpy().astype(np.int64)
    counts = pa.chunked_array(table.column("bucket_counts")).combine_chunks()
    lengths = pc.list_value_length(counts).to_numpy().astype(np.int64)
    row = np.repeat(np.arange(table.num_rows), lengths)
    position = np.arange(row.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    index = offset[row] + np.where(rows[row], shift, 0) + position
    thresholds, which = np.unique(table.column("slo_threshold_ns").to_numpy(), return_inverse=True)
    over_index = np.array([bucket_index(float(x)) for x in thresholds], np.int64)[which][row]
    values = pc.list_flatten(counts).to_numpy().astype(np.int64)
    over = np.bincount(row, weights=values * (index > over_index), minlength=table.num_rows).astype(np.int64)
    scale = np.where(rows, factor, 1.0)
    table = _set(table, "bucket_offset", pa.array((offset + np.where(rows, shift, 0)).astype(np.int32)))
    table = _set(table, "over_slo", pa.array(over.astype(np.uint64)))
    table = _set(table, "sum_ns", pa.array(table.column("sum_ns").to_numpy() * scale))
    # Whole nanoseconds inside their (shifted) first and last buckets: bucket i holds (base**i, base**(i+1)].
    new_offset = offset + np.where(rows, shift, 0)
    for name, bucket in (("min_ns", new_offset), ("max_ns", new_offset + lengths - 1)):
        value = np.rint(table.column(name).to_numpy().astype(np.float64) * scale)
        low, high = np.floor(HISTOGRAM_BASE**bucket) + 1, np.floor(HISTOGRAM_BASE ** (bucket + 1))
        table = _set(table, name, pa.array(np.clip(value, low, high).astype(np.uint32)))
    return table
