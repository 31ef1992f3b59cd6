"""Pre-drawn fault schedule for the whole span: sparse arrays of (controller, time, ...) per fault family.

Faults are sparse, so drawing them all at construction costs little memory and lets every chunk know a fault's
end (and the truth table be complete) before the telemetry of that chunk is generated. Times are seconds from
the run start. Causal links are drawn here: storms and UEs force resets, link episodes end in downgrades and
surprise downs, rack power events cold-reset every controller in the rack.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ingest.contract import RESET_KINDS
from ingest.sim.config import SimConfig
from ingest.sim.confounders import Confounders
from ingest.sim.controller_traits import ControllerTraits, age_months_at, ageing_multiplier
from ingest.sim.fleet import Fleet
from ingest.sim.seeding import lognormal, rng_for
from ingest.sim.timeline import ControllerEvents, expand_ranges, inside_windows

# Why a controller reset: the first three are the causes `ResetKnobs.cause_shares` splits the reset process into.
RESET_CAUSES = (
    "sudden",
    "memory_degradation",
    "planned",
    "storm",
    "ue",
    "link_degradation",
    "rack_event",
    "maintenance",  # a reboot or firmware activation inside a declared maintenance window (confounders.py)
)
SUDDEN, MEMORY, PLANNED, STORM, UE, LINK, RACK, MAINTENANCE = range(len(RESET_CAUSES))
COLD = RESET_KINDS.index("cold")
FW_ACTIVATE = RESET_KINDS.index("fw_activate")
NO_TIME = np.nan


class _Events:
    """Shared behaviour of the event families: filtering every array by one mask."""

    times = ()  # the fields holding times at which the family produces telemetry rows

    def where(self, keep: np.ndarray):
        return type(self)(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def near(self, t0: float, t1: float):
        """The events with a row time in [t0, t1), give or take a second of record offsets."""
        keep = np.zeros(len(self), bool)
        for name in self.times:
            t = getattr(self, name)
            keep |= (t >= t0 - 1.0) & (t < t1 + 1.0)
        return self.where(keep)

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))


@dataclass(frozen=True)
class RackOutages(_Events):
    ctrl: np.ndarray
    rack: np.ndarray
    down: np.ndarray
    up: np.ndarray


@dataclass(frozen=True)
class Bursts(_Events):
    """Self-exciting CE bursts; those at or above the storm threshold are storms."""

    ctrl: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ce_per_s: np.ndarray
    parent_start: np.ndarray  # start of the burst that triggered this one, NaN for an immigrant
    storm: np.ndarray
    latency_multiplier: np.ndarray


@dataclass(frozen=True)
class UncorrectableErrors(_Events):
    times = ("t",)
    ctrl: np.ndarray
    t: np.ndarray
    precursor: np.ndarray  # CE ramp onset, NaN for a UE without precursor
    ramp_peak_per_s: np.ndarray
    dram_record: np.ndarray
    forces_reset: np.ndarray


@dataclass(frozen=True)
class CeRamps(_Events):
    """A rising CE rate from onset to end: the precursor of a UE or of a memory-caused reset (§2.3)."""

    ctrl: np.ndarray
    onset: np.ndarray
    end: np.ndarray
    peak_per_s: np.ndarray


@dataclass(frozen=True)
class Resets(_Events):
    times = ("t",)
    ctrl: np.ndarray
    t: np.ndarray
    up: np.ndarray  # re-probe: downtime ends
    kind: np.ndarray  # index into RESET_KINDS
    silent: np.ndarray
    cause: np.ndarray  # index into RESET_CAUSES
    precursor: np.ndarray
    ramp_peak_per_s: np.ndarray  # CE rate a memory-degradation ramp reaches; NaN for other causes
    episode: np.ndarray  # the link episode that caused it, -1 for other causes


@dataclass(frozen=True)
class LinkEpisodes(_Events):
    """Link degradation: visible CE rate ramps up from onset to end, then fizzles, downgrades or drops."""

    ctrl: np.ndarray
    onset: np.ndarray
    end: np.ndarray
    ce_peak_per_s: np.ndarray
    downgraded: np.ndarray
    dropped: np.ndarray
    reset: np.ndarray  # the episode ended in a controller reset rather than a drop


@dataclass(frozen=True)
class Retrains(_Events):
    times = ("t",)
    ctrl: np.ndarray
    t: np.ndarray
    precursor: np.ndarray


@dataclass(frozen=True)
class Downgrades(_Events):
    times = ("t",)
    ctrl: np.ndarray
    t: np.ndarray
    end: np.ndarray  # the next counter-epoch bump retrains at full width and speed; inf if none
    to_width: np.ndarray
    to_speed: np.ndarray
    precursor: np.ndarray


@dataclass(frozen=True)
class LinkDrops(_Events):
    times = ("down", "up")
    ctrl: np.ndarray
    down: np.ndarray
    up: np.ndarray
    precursor: np.ndarray  # NaN for a sudden drop
    episode: np.ndarray  # the degradation episode it ends, -1 for a sudden drop


@dataclass(frozen=True)
class Replays(_Events):
    """Records logged before an explicit reset and delivered in a burst after re-probe (telemetry.md §4)."""

    times = ("host_t",)
    ctrl: np.ndarray
    device_t: np.ndarray
    host_t: np.ndarray


@dataclass(frozen=True)
class FaultSchedule:
    racks: RackOutages
    bursts: Bursts
    ce_ramps: CeRamps
    ues: UncorrectableErrors
    resets: Resets
    episodes: LinkEpisodes
    retrains: Retrains
    downgrades: Downgrades
    drops: LinkDrops
    replays: Replays
    bumps: ControllerEvents  # every counter-epoch bump: resets and link-ups after a drop
    boots: ControllerEvents  # resets only: a link drop re-enumerates the device but does not reboot it
    host_down: ControllerEvents  # rack outage starts per controller (ends in racks.up)

    def near(self, t0: float, t1: float) -> FaultSchedule:
        """The schedule with its point-event families cut to what produces rows in [t0, t1)."""
        return replace(
            self,
            ues=self.ues.near(t0, t1),
            resets=self.resets.near(t0, t1),
            retrains=self.retrains.near(t0, t1),
            downgrades=self.downgrades.near(t0, t1),
            drops=self.drops.near(t0, t1),
            replays=self.replays.near(t0, t1),
        )


def poisson_times(rng: np.random.Generator, rate_per_s: np.ndarray, t0: np.ndarray, t1: float):
    """Homogeneous Poisson events per controller on [t0, t1): (controller, time), vectorized."""
    length = np.maximum(t1 - t0, 0.0)
    counts = rng.poisson(rate_per_s * length)
    ctrl = np.repeat(np.arange(rate_per_s.size), counts)
    return ctrl, t0[ctrl] + rng.random(ctrl.size) * length[ctrl]


def draw_schedule(
    config: SimConfig, fleet: Fleet, traits: ControllerTraits, confounders: Confounders | None = None
) -> FaultSchedule:
    rng = rng_for(config.seed, "schedule")
    span = config.span_s
    racks = _rack_outages(config, rng, fleet)
    host_down = ControllerEvents(racks.ctrl, racks.down, span)

    def alive(ctrl: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (t >= 0.0) & (t < span) & ~inside_windows(ctrl, t, host_down, racks.up)

    bursts = _bursts(config, rng, traits)
    bursts = bursts.where(alive(bursts.ctrl, bursts.start))
    ues = _ues(config, rng, traits)
    ues = ues.where(alive(ues.ctrl, ues.t))
    episodes, retrains, downgrades, drops = _link_chain(config, rng, fleet, traits)
    retrains = retrains.where(alive(retrains.ctrl, retrains.t))
    downgrades = downgrades.where(alive(downgrades.ctrl, downgrades.t))
    drops = drops.where(alive(drops.ctrl, drops.down))
    causes = _reset_causes(config, rng, traits, bursts, ues, episodes)
    resets = _resets(config, rng, racks, causes.where(alive(causes.ctrl, causes.t)))
    if confounders is not None:
        resets = _with_maintenance(config, resets, confounders)
    resets, drops = _without_overlaps(config, resets, drops)

    n_episodes = len(episodes)
    episodes = replace(
        episodes,
        dropped=np.isin(np.arange(n_episodes), drops.episode),
        reset=np.isin(np.arange(n_episodes), resets.episode),
    )
    # Episodes begun before the run still ramp into it. After this, `drops.episode` and `resets.episode` index
    # the episodes as drawn, before this filter.
    episodes = episodes.where((episodes.end >= 0.0) & (episodes.onset < span))
    memory = resets.cause == MEMORY
    ramped = ~np.isnan(ues.precursor)
    ce_ramps = CeRamps(
        ctrl=np.concatenate([ues.ctrl[ramped], resets.ctrl[memory]]),
        onset=np.concatenate([ues.precursor[ramped], resets.precursor[memory]]),
        end=np.concatenate([ues.t[ramped], resets.t[memory]]),
        peak_per_s=np.concatenate([ues.ramp_peak_per_s[ramped], resets.ramp_peak_per_s[memory]]),
    )
    bumps = ControllerEvents(np.concatenate([resets.ctrl, drops.ctrl]), np.concatenate([resets.t, drops.up]), span)
    following = bumps.next_after(downgrades.ctrl, downgrades.t)
    downgrades = replace(downgrades, end=_time_at(bumps, following))
    return FaultSchedule(
        racks=racks,
        bursts=bursts,
        ce_ramps=ce_ramps,
        ues=ues,
        resets=resets,
        episodes=episodes,
        retrains=retrains,
        downgrades=downgrades,
        drops=drops,
        replays=_replays(config, rng, resets),
        bumps=bumps,
        boots=ControllerEvents(resets.ctrl, resets.t, span),
        host_down=host_down,
    )


@dataclass(frozen=True)
class _ResetCauses(_Events):
    """Reset candidates before kinds, downtimes and the overlap rule are applied."""

    ctrl: np.ndarray
    t: np.ndarray
    cause: np.ndarray
    precursor: np.ndarray
    ramp_peak_per_s: np.ndarray
    episode: np.ndarray


def _reset_causes(
    config: SimConfig,
    rng: np.random.Generator,
    traits: ControllerTraits,
    bursts: Bursts,
    ues: UncorrectableErrors,
    episodes: LinkEpisodes,
) -> _ResetCauses:
    """Every non-rack reset with its cause and precursor: the reset process split by cause, storms, UEs that
    force a reset, and link episodes that end in one."""
    errors, knobs = config.errors, config.resets
    n = traits.age_s.size
    ctrl, t = poisson_times(
        rng, config.per_second(knobs.per_year) * traits.reset_multiplier, np.zeros(n), config.span_s
    )
    shares = np.asarray(knobs.cause_shares, float)
    cause = np.array([SUDDEN, MEMORY, PLANNED])[rng.choice(3, ctrl.size, p=shares / shares.sum())]
    memory = cause == MEMORY
    lead = _precursor_leads(config, rng, ctrl.size)
    peak = lognormal(rng, errors.ue_precursor_ce_per_min_median / 60.0, errors.ue_precursor_ce_per_min_sigma, ctrl.size)

    storm = bursts.storm & (rng.random(len(bursts)) < errors.storm_reset_probability)
    storm_at = rng.uniform(*errors.storm_reset_at, storm.sum())
    storm_t = bursts.start[storm] + storm_at * (bursts.end - bursts.start)[storm]
    forced = ues.forces_reset
    ue_t = ues.t[forced] + rng.uniform(*errors.ue_reset_delay_s, forced.sum())
    ue_precursor = np.where(np.isnan(ues.precursor), ues.t, ues.precursor)[forced]
    link = np.flatnonzero(episodes.reset)
    sizes = [ctrl.size, storm.sum(), forced.sum(), link.size]
    return _ResetCauses(
        ctrl=np.concatenate([ctrl, bursts.ctrl[storm], ues.ctrl[forced], episodes.ctrl[link]]),
        t=np.concatenate([t, storm_t, ue_t, episodes.end[link]]),
        cause=np.concatenate([cause, np.repeat([STORM, UE, LINK], sizes[1:])]),
        precursor=np.concatenate(
            [np.where(memory, t - lead, NO_TIME), bursts.start[storm], ue_precursor, episodes.onset[link]]
        ),
        ramp_peak_per_s=np.concatenate([np.where(memory, peak, NO_TIME), np.full(sum(sizes[1:]), NO_TIME)]),
        episode=np.concatenate([np.full(sum(sizes[:3]), -1), link]),
    )


def _precursor_leads(config: SimConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """CE-ramp onset → failure lead times, never under the protocol's 15 min minimum lead."""
    errors = config.errors
    median = errors.ue_lead_median_s * config.precursor_time_scale
    return np.maximum(errors.ue_lead_min_s, lognormal(rng, median, errors.ue_lead_sigma, n))


def _without_overlaps(config: SimConfig, resets: Resets, drops: LinkDrops) -> tuple[Resets, LinkDrops]:
    """Drop every reset or link drop that begins while an earlier outage on the same controller is still down
    or within `outage_guard_s` after it (a link cannot go down while it is down). Rack-power and maintenance
    resets always stay: the facility event or the declared reboot happened whatever the controller was doing."""
    ctrl = np.concatenate([resets.ctrl, drops.ctrl])
    start = np.concatenate([resets.t, drops.down])
    end = np.concatenate([resets.up, drops.up]) + config.resets.outage_guard_s
    if not ctrl.size:
        return resets, drops
    order = np.lexsort((start, ctrl))
    ctrl_sorted, start_sorted = ctrl[order], start[order]
    stride = 2.0 * (config.span_s + float(np.max(end, initial=0.0))) + 1.0
    running = np.maximum.accumulate(end[order] + ctrl_sorted * stride) - ctrl_sorted * stride
    previous_end = np.concatenate([[-np.inf], running[:-1]])
    first_of_controller = np.concatenate([[True], ctrl_sorted[1:] != ctrl_sorted[:-1]])
    blocked_sorted = ~first_of_controller & (start_sorted < previous_end)
    blocked = np.empty_like(blocked_sorted)
    blocked[order] = blocked_sorted
    keep_resets = ~blocked[: len(resets)] | np.isin(resets.cause, (RACK, MAINTENANCE))
    return resets.where(keep_resets), drops.where(~blocked[len(resets) :])


def _time_at(events: ControllerEvents, position: np.ndarray) -> np.ndarray:
    return np.where(position >= 0, events.t[np.maximum(position, 0)] if len(events) else 0.0, np.inf)


def _rack_outages(config: SimConfig, rng: np.random.Generator, fleet: Fleet) -> RackOutages:
    hosts_per_rack = np.bincount(fleet.rack_of_host)
    rate = config.per_second(config.racks.per_host_year) * hosts_per_rack
    rack, down = poisson_times(rng, rate, np.zeros(rate.size), config.span_s)
    up = down + lognormal(rng, config.racks.outage_median_s, config.racks.outage_sigma, rack.size)
    by_rack = np.argsort(fleet.rack, kind="stable")
    first = np.searchsorted(fleet.rack[by_rack], rack, side="left")
    last = np.searchsorted(fleet.rack[by_rack], rack, side="right") - 1
    event, position = expand_ranges(first, last)
    return RackOutages(ctrl=by_rack[position], rack=rack[event], down=down[event], up=up[event])


def _bursts(config: SimConfig, rng: np.random.Generator, traits: ControllerTraits) -> Bursts:
    """Hawkes cluster process: immigrant bursts on CE-faulty devices, each spawning Poisson offspring."""
    errors = config.errors
    span = config.span_s
    faulty = traits.ce_fault_onset_s < span
    rate = np.where(faulty, config.per_second(errors.burst_rate_per_year), 0.0)
    ctrl, start = poisson_times(rng, rate, np.maximum(traits.ce_fault_onset_s, 0.0), span)
    parents = [np.full(ctrl.size, NO_TIME)]
    all_ctrl, all_start = [ctrl], [start]
    while ctrl.size:
        children = rng.poisson(errors.burst_branching_ratio, ctrl.size)
        parent = np.repeat(np.arange(ctrl.size), children)
        child_start = start[parent] + rng.exponential(errors.burst_offspring_delay_s, parent.size)
        inside = child_start < span
        ctrl, start, parent_start = ctrl[parent][inside], child_start[inside], start[parent][inside]
        all_ctrl.append(ctrl)
        all_start.append(start)
        parents.append(parent_start)
    ctrl, start, parent_start = (np.concatenate(a) for a in (all_ctrl, all_start, parents))
    duration = lognormal(rng, errors.burst_duration_median_s, errors.burst_duration_sigma, ctrl.size)
    gain = lognormal(rng, errors.burst_gain_median, errors.burst_gain_sigma, ctrl.size)
    per_min = gain * traits.ce_fault_per_s[ctrl] * 60.0
    storm = per_min >= errors.storm_threshold_ce_per_min
    low, high = config.latency.storm_multiplier
    return Bursts(
        ctrl=ctrl,
        start=start,
        end=start + duration,
        ce_per_s=per_min / 60.0,
        parent_start=parent_start,
        storm=storm,
        latency_multiplier=np.where(storm, rng.uniform(low, high, ctrl.size), 1.0),
    )


def _ues(config: SimConfig, rng: np.random.Generator, traits: ControllerTraits) -> UncorrectableErrors:
    """UEs by thinning an ageing-modulated hazard; a configured share arrive with no CE precursor."""
    errors = config.errors
    n = traits.age_s.size
    ctrl, t = poisson_times(
        rng,
        np.full(n, config.per_second(errors.ue_per_year) * errors.age_plateau_multiplier),
        np.zeros(n),
        config.span_s,
    )
    accept = ageing_multiplier(age_months_at(config, traits.age_s[ctrl], t), errors) / errors.age_plateau_multiplier
    keep = rng.random(ctrl.size) < accept
    ctrl, t = ctrl[keep], t[keep]
    with_precursor = rng.random(ctrl.size) >= errors.ue_no_precursor_share
    lead = _precursor_leads(config, rng, ctrl.size)
    peak_per_s = errors.ue_precursor_ce_per_min_median / 60.0
    return UncorrectableErrors(
        ctrl=ctrl,
        t=t,
        precursor=np.where(with_precursor, t - lead, NO_TIME),
        ramp_peak_per_s=lognormal(rng, peak_per_s, errors.ue_precursor_ce_per_min_sigma, ctrl.size),
        dram_record=rng.random(ctrl.size) < errors.dram_record_share,
        forces_reset=rng.random(ctrl.size) < errors.ue_reset_probability,
    )


def _resets(config: SimConfig, rng: np.random.Generator, racks: RackOutages, causes: _ResetCauses) -> Resets:
    """Kinds, silence and downtime for every reset; power returning after a rack event is a cold reset, and a
    planned reset is a firmware activation."""
    knobs = config.resets
    shares = np.asarray(knobs.kind_shares, float)
    unplanned = rng.choice(shares.size, len(causes), p=shares / shares.sum())
    kind = np.concatenate([np.full(len(racks), COLD), np.where(causes.cause == PLANNED, FW_ACTIVATE, unplanned)])
    silent = np.concatenate([np.zeros(len(racks), bool), rng.random(len(causes)) < knobs.silent_share])
    ctrl = np.concatenate([racks.ctrl, causes.ctrl])
    t = np.concatenate([racks.up, causes.t])
    downtime = lognormal(rng, knobs.downtime_median_s, knobs.downtime_sigma, ctrl.size)
    downtime *= np.where(kind == COLD, knobs.cold_downtime_multiplier, 1.0)
    none = np.full(len(racks), NO_TIME)
    return Resets(
        ctrl=ctrl,
        t=t,
        up=t + downtime,
        kind=kind.astype(np.int8),
        silent=silent,
        cause=np.concatenate([np.full(len(racks), RACK), causes.cause]).astype(np.int8),
        precursor=np.concatenate([none, causes.precursor]),
        ramp_peak_per_s=np.concatenate([none, causes.ramp_peak_per_s]),
        episode=np.concatenate([np.full(len(racks), -1), causes.episode]),
    )


def _with_maintenance(config: SimConfig, resets: Resets, confounders: Confounders) -> Resets:
    """The resets planned inside each maintenance window: reported (never silent), no precursor."""
    rng = rng_for(config.seed, "maintenance-resets")
    ctrl, t, kind = confounders.planned_resets(config.confounders, rng)
    downtime = lognormal(rng, config.resets.downtime_median_s, config.resets.downtime_sigma, ctrl.size)
    none = np.full(ctrl.size, NO_TIME)
    planned = Resets(
        ctrl=ctrl,
        t=t,
        up=t + downtime,
        kind=kind.astype(np.int8),
        silent=np.zeros(ctrl.size, bool),
        cause=np.full(ctrl.size, MAINTENANCE, np.int8),
        precursor=none,
        ramp_peak_per_s=none,
        episode=np.full(ctrl.size, -1),
    )
    return Resets(
        **{f.name: np.concatenate([getattr(resets, f.name), getattr(planned, f.name)]) for f in fields(Resets)}
    )


def _link_chain(config: SimConfig, rng: np.random.Generator, fleet: Fleet, traits: ControllerTraits):
    """Episodes of rising link errors → retrains → downgrade → surprise down, plus sudden drops."""
    link = config.link
    span = config.span_s
    zeros = np.zeros(fleet.size)
    # Episodes start before the run too, so the fleet is already degrading at t = 0 as it would be in the field
    # (a stationary start): far enough back that almost every episode ending inside the run is drawn.
    median = link.episode_duration_median_s * config.precursor_time_scale
    lookback = median * np.exp(3.0 * link.episode_duration_sigma)
    rate = config.per_second(link.episode_per_year) * traits.link_multiplier
    ctrl, onset = poisson_times(rng, rate, np.full(fleet.size, -lookback), span)
    n = ctrl.size
    duration = lognormal(rng, median, link.episode_duration_sigma, n)
    downgraded = rng.random(n) < link.downgrade_probability
    outcome = rng.random(n)
    dropped = outcome < link.drop_probability
    episodes = LinkEpisodes(
        ctrl=ctrl,
        onset=onset,
        end=onset + duration,
        ce_peak_per_s=lognormal(rng, link.degraded_ce_per_min_median / 60.0, link.degraded_ce_per_min_sigma, n),
        downgraded=downgraded,
        dropped=dropped,
        reset=~dropped & (outcome < link.drop_probability + link.reset_probability),
    )
    owner = np.repeat(np.arange(n), rng.poisson(link.retrains_per_episode, n))
    retrains = Retrains(
        ctrl=ctrl[owner],
        t=onset[owner] + duration[owner] * rng.uniform(*link.retrain_at, owner.size),
        precursor=onset[owner],
    )
    by_width = rng.random(n) < link.width_downgrade_share
    max_width = fleet.max_width[ctrl].astype(np.int64)
    downgrades = Downgrades(
        ctrl=ctrl,
        t=onset + duration * rng.uniform(*link.downgrade_at, n),
        end=np.full(n, np.inf),
        to_width=np.where(by_width, max_width // 2, max_width),
        to_speed=np.where(by_width, 32.0, 16.0),
        precursor=onset,
    ).where(downgraded)
    sudden_ctrl, sudden_t = poisson_times(
        rng, config.per_second(link.sudden_drop_per_year) * traits.link_multiplier, zeros, span
    )
    down = np.concatenate([episodes.end[dropped], sudden_t])
    drops = LinkDrops(
        ctrl=np.concatenate([ctrl[dropped], sudden_ctrl]),
        down=down,
        up=down + lognormal(rng, link.outage_median_s, link.outage_sigma, down.size),
        precursor=np.concatenate([onset[dropped], np.full(sudden_ctrl.size, NO_TIME)]),
        episode=np.concatenate([np.flatnonzero(dropped), np.full(sudden_ctrl.size, -1)]),
    )
    return episodes, retrains, downgrades, drops


def _replays(config: SimConfig, rng: np.random.Generator, resets: Resets) -> Replays:
    explicit = np.flatnonzero(~resets.silent & (resets.cause != RACK))
    owner = np.repeat(explicit, rng.poisson(config.resets.replay_records_mean, explicit.size))
    return Replays(
        ctrl=resets.ctrl[owner],
        device_t=resets.t[owner] - rng.uniform(0.0, config.resets.replay_window_s, owner.size),
        host_t=resets.up[owner] + rng.uniform(0.0, 2.0, owner.size),
    )
