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
from ingest.controller_traits import ControllerTraits, age_months_at, ageing_multiplier
from ingest.fleet import Fleet
from ingest.seeding import lognormal, rng_for
from ingest.sim_config import SimConfig
from ingest.timeline import ControllerEvents, expand_ranges, inside_windows

RESET_CAUSES = ("random", "storm", "ue", "rack_event")
COLD = RESET_KINDS.index("cold")
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
class Resets(_Events):
    times = ("t",)
    ctrl: np.ndarray
    t: np.ndarray
    up: np.ndarray  # re-probe: downtime ends
    kind: np.ndarray  # index into RESET_KINDS
    silent: np.ndarray
    cause: np.ndarray  # index into RESET_CAUSES
    precursor: np.ndarray


@dataclass(frozen=True)
class LinkEpisodes(_Events):
    """Link degradation: visible CE rate ramps up from onset to end, then fizzles, downgrades or drops."""

    ctrl: np.ndarray
    onset: np.ndarray
    end: np.ndarray
    ce_peak_per_s: np.ndarray
    downgraded: np.ndarray
    dropped: np.ndarray


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
    ues: UncorrectableErrors
    resets: Resets
    episodes: LinkEpisodes
    retrains: Retrains
    downgrades: Downgrades
    drops: LinkDrops
    replays: Replays
    bumps: ControllerEvents  # every counter-epoch bump: resets and link-ups after a drop
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


def draw_schedule(config: SimConfig, fleet: Fleet, traits: ControllerTraits) -> FaultSchedule:
    rng = rng_for(config.seed, "schedule")
    span = config.span_s
    racks = _rack_outages(config, rng, fleet)
    host_down = ControllerEvents(racks.ctrl, racks.down, span)

    def alive(ctrl: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (t < span) & ~inside_windows(ctrl, t, host_down, racks.up)

    bursts = _bursts(config, rng, traits)
    bursts = bursts.where(alive(bursts.ctrl, bursts.start))
    ues = _ues(config, rng, traits)
    ues = ues.where(alive(ues.ctrl, ues.t))
    episodes, retrains, downgrades, drops = _link_chain(config, rng, fleet, traits)
    episodes = episodes.where(alive(episodes.ctrl, episodes.onset))
    retrains = retrains.where(alive(retrains.ctrl, retrains.t))
    downgrades = downgrades.where(alive(downgrades.ctrl, downgrades.t))
    drops = drops.where(alive(drops.ctrl, drops.down))

    storm = bursts.storm & (rng.random(len(bursts)) < config.errors.storm_reset_probability)
    errors = config.errors
    storm_at = rng.uniform(*errors.storm_reset_at, storm.sum())
    storm_t = bursts.start[storm] + storm_at * (bursts.end - bursts.start)[storm]
    ue_t = ues.t[ues.forces_reset] + rng.uniform(*errors.ue_reset_delay_s, ues.forces_reset.sum())
    random_ctrl, random_t = poisson_times(
        rng, config.per_second(config.resets.per_year) * traits.reset_multiplier, np.zeros(fleet.size), span
    )
    ctrl = np.concatenate([bursts.ctrl[storm], ues.ctrl[ues.forces_reset], random_ctrl])
    t = np.concatenate([storm_t, ue_t, random_t])
    cause = np.repeat([1, 2, 0], [storm.sum(), ues.forces_reset.sum(), random_ctrl.size])
    ue_precursor = np.where(np.isnan(ues.precursor), ues.t, ues.precursor)[ues.forces_reset]
    precursor = np.concatenate([bursts.start[storm], ue_precursor, np.full(random_ctrl.size, NO_TIME)])
    keep = alive(ctrl, t)
    resets = _resets(config, rng, racks, ctrl[keep], t[keep], cause[keep], precursor[keep])

    bump_ctrl = np.concatenate([resets.ctrl, drops.ctrl])
    bumps = ControllerEvents(bump_ctrl, np.concatenate([resets.t, drops.up]), span)
    following = bumps.next_after(downgrades.ctrl, downgrades.t)
    downgrades = replace(downgrades, end=_time_at(bumps, following))
    return FaultSchedule(
        racks=racks,
        bursts=bursts,
        ues=ues,
        resets=resets,
        episodes=episodes,
        retrains=retrains,
        downgrades=downgrades,
        drops=drops,
        replays=_replays(config, rng, resets),
        bumps=bumps,
        host_down=host_down,
    )


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
    lead = np.maximum(errors.ue_lead_min_s, lognormal(rng, errors.ue_lead_median_s, errors.ue_lead_sigma, ctrl.size))
    return UncorrectableErrors(
        ctrl=ctrl,
        t=t,
        precursor=np.where(with_precursor, t - lead, NO_TIME),
        ramp_peak_per_s=lognormal(rng, errors.ue_precursor_ce_per_min_median / 60.0, 1.0, ctrl.size),
        dram_record=rng.random(ctrl.size) < errors.dram_record_share,
        forces_reset=rng.random(ctrl.size) < errors.ue_reset_probability,
    )


def _resets(
    config: SimConfig,
    rng: np.random.Generator,
    racks: RackOutages,
    ctrl: np.ndarray,
    t: np.ndarray,
    cause: np.ndarray,
    precursor: np.ndarray,
) -> Resets:
    """Kinds, silence and downtime for every reset; power returning after a rack event is a cold reset."""
    knobs = config.resets
    shares = np.asarray(knobs.kind_shares, float)
    kind = np.concatenate([np.full(len(racks), COLD), rng.choice(len(RESET_KINDS), ctrl.size, p=shares / shares.sum())])
    silent = np.concatenate([np.zeros(len(racks), bool), rng.random(ctrl.size) < knobs.silent_share])
    ctrl = np.concatenate([racks.ctrl, ctrl])
    t = np.concatenate([racks.up, t])
    downtime = lognormal(rng, knobs.downtime_median_s, knobs.downtime_sigma, ctrl.size)
    downtime *= np.where(kind == COLD, knobs.cold_downtime_multiplier, 1.0)
    return Resets(
        ctrl=ctrl,
        t=t,
        up=t + downtime,
        kind=kind.astype(np.int8),
        silent=silent,
        cause=np.concatenate([np.full(len(racks), RESET_CAUSES.index("rack_event")), cause]).astype(np.int8),
        precursor=np.concatenate([np.full(len(racks), NO_TIME), precursor]),
    )


def _link_chain(config: SimConfig, rng: np.random.Generator, fleet: Fleet, traits: ControllerTraits):
    """Episodes of rising link errors → retrains → downgrade → surprise down, plus sudden drops."""
    link = config.link
    span = config.span_s
    zeros = np.zeros(fleet.size)
    ctrl, onset = poisson_times(rng, config.per_second(link.episode_per_year) * traits.link_multiplier, zeros, span)
    n = ctrl.size
    duration = lognormal(rng, link.episode_duration_median_s, link.episode_duration_sigma, n)
    downgraded = rng.random(n) < link.downgrade_probability
    dropped = rng.random(n) < link.drop_probability
    episodes = LinkEpisodes(
        ctrl=ctrl,
        onset=onset,
        end=onset + duration,
        ce_peak_per_s=lognormal(rng, link.degraded_ce_per_min_median / 60.0, link.degraded_ce_per_min_sigma, n),
        downgraded=downgraded,
        dropped=dropped,
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
    )
    return episodes, retrains, downgrades, drops


def _replays(config: SimConfig, rng: np.random.Generator, resets: Resets) -> Replays:
    explicit = np.flatnonzero(~resets.silent & (resets.cause != RESET_CAUSES.index("rack_event")))
    owner = np.repeat(explicit, rng.poisson(config.resets.replay_records_mean, explicit.size))
    return Replays(
        ctrl=resets.ctrl[owner],
        device_t=resets.t[owner] - rng.uniform(0.0, config.resets.replay_window_s, owner.size),
        host_t=resets.up[owner] + rng.uniform(0.0, 2.0, owner.size),
    )
