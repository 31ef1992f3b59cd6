"""Dense per-(time step, controller) state for one chunk, derived from the sparse fault schedule.

Snapshot quantities (epoch, link state, cumulative counters) are read at each step's start time s_j; window
quantities (load, storms, CE and link-error increments) cover [s_j, s_j + interval). Increments of window j
show up in the counters of snapshot j+1, and a counter epoch that begins in between restarts them from 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.sim.config import SimConfig
from ingest.sim.controller_traits import ControllerTraits
from ingest.sim.fault_schedule import FaultSchedule
from ingest.sim.fleet import Fleet
from ingest.sim.seeding import sparse_poisson
from ingest.sim.timeline import ControllerEvents, Grid, segmented_cumsum, snapshot_steps, window_steps

# Cumulative counters carried per counter epoch: the link snapshot's plus the health snapshot's CE count.
AER_BITS = ("rx_err", "bad_tlp", "bad_dllp", "replay_rollover", "replay_timeout")
COUNTERS = (
    *AER_BITS,
    "cxl_crc_thresh_hits",
    "cxl_retry_thresh_hits",
    "reinit_thresh_hits",
    "link_down_count",
    "recovery_entries",
    "cor_vol_err_cnt",
)
CRC, RETRY, REINIT, LINK_DOWN, RECOVERY, CE = range(len(AER_BITS), len(COUNTERS))


@dataclass
class Carry:
    """What one chunk hands the next: epochs, last boot, counter values and increments not yet reported."""

    epoch: np.ndarray
    boot_s: np.ndarray
    counters: np.ndarray  # (counters, controllers) at the last snapshot
    pending: np.ndarray  # increments of the last window, reported at the next snapshot

    @classmethod
    def initial(cls, config: SimConfig, traits: ControllerTraits, rng: np.random.Generator) -> Carry:
        """Counters at the start reflect the uptime since the last boot (field, not accelerated)."""
        n = traits.boot_s.size
        uptime = -traits.boot_s
        counters = np.zeros((len(COUNTERS), n), np.int64)
        shares = np.asarray(config.link.ce_bit_shares) / np.sum(config.link.ce_bit_shares)
        counters[: len(AER_BITS)] = rng.poisson(np.outer(shares, traits.link_ce_per_s * uptime))
        ce_rate = traits.ce_noise_per_s + np.where(np.isneginf(traits.ce_fault_onset_s), traits.ce_fault_per_s, 0.0)
        counters[CE] = rng.poisson(np.minimum(ce_rate * uptime, 1e9))
        return cls(
            epoch=np.zeros(n, np.int64), boot_s=traits.boot_s.copy(), counters=counters, pending=np.zeros_like(counters)
        )


@dataclass(frozen=True)
class ChunkState:
    grid: Grid
    epoch: np.ndarray  # (T, C) at each snapshot
    uptime_s: np.ndarray
    host_up: np.ndarray  # the host is powered (rows can be produced at the snapshot)
    link_down: np.ndarray  # the snapshot falls inside a link outage or reset downtime
    latency_gap: np.ndarray  # the window overlaps an outage: no latency rows
    host_gap: np.ndarray  # (T, hosts): no local-DRAM rows
    width: np.ndarray
    speed: np.ndarray
    downgraded: np.ndarray
    degrading: np.ndarray  # a link degradation episode overlaps the window
    load: np.ndarray
    utilisation: np.ndarray  # demand over the current link's bandwidth
    host_load: np.ndarray  # (T, hosts)
    storm_multiplier: np.ndarray
    counters: np.ndarray  # (counters, T, C) at each snapshot
    increments: np.ndarray  # (counters, T, C) during each window


def build_chunk_state(
    config: SimConfig,
    fleet: Fleet,
    traits: ControllerTraits,
    schedule: FaultSchedule,
    grid: Grid,
    carry: Carry,
    rng: np.random.Generator,
) -> ChunkState:
    steps, n = grid.steps, fleet.size
    shape = (steps, n)
    s = schedule
    # Epochs and boots: a bump at time b is first seen by the snapshot at or after b.
    epoch, restart, boot = _epochs(grid, s, carry, shape)
    times = grid.times()

    host_up = ~_snapshot_mask(grid, shape, s.racks.ctrl, s.racks.down, s.racks.up)
    outage_ctrl = np.concatenate([s.drops.ctrl, s.resets.ctrl])
    outage_start = np.concatenate([s.drops.down, s.resets.t])
    outage_end = np.concatenate([s.drops.up, s.resets.up])
    link_down = _snapshot_mask(grid, shape, outage_ctrl, outage_start, outage_end)
    all_ctrl = np.concatenate([outage_ctrl, s.racks.ctrl])
    all_start, all_end = np.concatenate([outage_start, s.racks.down]), np.concatenate([outage_end, s.racks.up])
    latency_gap = _window_mask(grid, shape, all_ctrl, all_start, all_end)
    host_gap = _window_mask(grid, (steps, fleet.n_hosts), fleet.host[s.racks.ctrl], s.racks.down, s.racks.up)

    width = np.broadcast_to(fleet.max_width.astype(np.int16), shape).copy()
    speed = np.full(shape, 32.0, np.float32)
    owner, step = snapshot_steps(grid, s.downgrades.t, s.downgrades.end)
    np.minimum.at(width, (step, s.downgrades.ctrl[owner]), s.downgrades.to_width[owner])
    np.minimum.at(speed, (step, s.downgrades.ctrl[owner]), s.downgrades.to_speed[owner])
    downgraded = (width < fleet.max_width) | (speed < 32.0)
    width[link_down], speed[link_down] = 0, 0.0

    load = _load(config, traits, times, rng)
    bandwidth_share = np.maximum(width, 1) * speed / (fleet.max_width.astype(float) * 32.0)
    utilisation = np.minimum(load / np.maximum(bandwidth_share, 0.05), 1.0)
    host_load = _host_mean(load, fleet)

    link_rate = np.broadcast_to(traits.link_ce_per_s * grid.step_s, shape).copy()
    degrading = np.zeros(shape, bool)
    _add_ramp(grid, link_rate, degrading, s.episodes.ctrl, s.episodes.onset, s.episodes.end, s.episodes.ce_peak_per_s)
    ce_rate = _ce_expected(grid, traits, times)
    storm = np.ones(shape)
    owner, step, overlap = window_steps(grid, s.bursts.start, s.bursts.end)
    np.add.at(ce_rate, (step, s.bursts.ctrl[owner]), s.bursts.ce_per_s[owner] * overlap)
    np.maximum.at(storm, (step, s.bursts.ctrl[owner]), s.bursts.latency_multiplier[owner])
    ramps = s.ce_ramps
    _add_ramp(grid, ce_rate, None, ramps.ctrl, ramps.onset, ramps.end, ramps.peak_per_s)

    increments = _increments(config, grid, s, shape, link_rate, ce_rate, rng)
    shifted = np.concatenate([carry.pending[:, None, :], increments[:, :-1, :]], axis=1)
    shifted[:, restart] = 0
    counters, last = segmented_cumsum(shifted, restart, carry.counters, in_place=True)
    carry.epoch, carry.boot_s, carry.counters, carry.pending = epoch[-1], boot[-1], last, increments[:, -1, :]
    return ChunkState(
        grid=grid,
        epoch=epoch,
        uptime_s=times[:, None] - boot,
        host_up=host_up,
        link_down=link_down,
        latency_gap=latency_gap,
        host_gap=host_gap,
        width=width,
        speed=speed,
        downgraded=downgraded,
        degrading=degrading,
        load=load,
        utilisation=utilisation,
        host_load=host_load,
        storm_multiplier=storm,
        counters=counters,
        increments=increments,
    )


def _epochs(grid: Grid, s: FaultSchedule, carry: Carry, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counter epoch, "a new epoch starts here" and last boot per (step, controller).

    A bump at time b is first seen by the snapshot at or after b. Every bump opens a counter epoch; only resets
    reboot the controller (a link drop re-enumerates the device, its uptime runs on). Bumps are rare, so only the
    controllers that have one in this chunk are computed step by step; the rest keep the carried values.
    """
    epoch = np.broadcast_to(carry.epoch, shape).copy()
    boot = np.broadcast_to(carry.boot_s, shape).copy()
    restart = np.zeros(shape, bool)
    bump_steps, bump_ctrl, _ = _events_in(grid, s.bumps)
    if bump_ctrl.size:
        columns, local = np.unique(bump_ctrl, return_inverse=True)
        per_step = np.zeros((shape[0], columns.size), np.int64)
        np.add.at(per_step, (bump_steps, local), 1)
        epoch[:, columns] += np.cumsum(per_step, axis=0)
        restart[:, columns] = per_step > 0
    boot_steps, boot_ctrl, boot_t = _events_in(grid, s.boots)
    if boot_ctrl.size:
        columns, local = np.unique(boot_ctrl, return_inverse=True)
        latest = np.full((shape[0] + 1, columns.size), -np.inf)
        latest[0] = carry.boot_s[columns]
        np.maximum.at(latest, (boot_steps + 1, local), boot_t)
        boot[:, columns] = np.maximum.accumulate(latest, axis=0)[1:]
    return epoch, restart, boot


def _events_in(grid: Grid, events: ControllerEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first snapshot step, controller, time) of the events this chunk's snapshots see arrive."""
    t = events.t
    keep = (t > grid.t0 - grid.step_s) & (t <= grid.t0 + (grid.steps - 1) * grid.step_s)
    return grid.first_snapshot_at_or_after(t[keep]), events.controller[keep], t[keep]


def _snapshot_mask(grid: Grid, shape, ctrl, start, end) -> np.ndarray:
    mask = np.zeros(shape, bool)
    owner, step = snapshot_steps(grid, start, end)
    mask[step, ctrl[owner]] = True
    return mask


def _window_mask(grid: Grid, shape, ctrl, start, end) -> np.ndarray:
    mask = np.zeros(shape, bool)
    owner, step, _ = window_steps(grid, start, end)
    mask[step, ctrl[owner]] = True
    return mask


def _add_ramp(grid: Grid, rate: np.ndarray, flag: np.ndarray | None, ctrl, onset, end, peak_per_s) -> None:
    """Add a quadratically rising rate (onset → end) as expected counts per window."""
    owner, step, overlap = window_steps(grid, onset, end)
    middle = grid.t0 + (step + 0.5) * grid.step_s
    progress = np.clip((middle - onset[owner]) / np.maximum(end[owner] - onset[owner], 1.0), 0.0, 1.0)
    np.add.at(rate, (step, ctrl[owner]), peak_per_s[owner] * progress**2 * overlap)
    if flag is not None:
        flag[step, ctrl[owner]] = True


def _ce_expected(grid: Grid, traits: ControllerTraits, times: np.ndarray) -> np.ndarray:
    """Expected CEs per window from the device's fault (once active) and its noise floor."""
    active = np.clip((times[:, None] + grid.step_s - traits.ce_fault_onset_s) / grid.step_s, 0.0, 1.0)
    return (active * traits.ce_fault_per_s + traits.ce_noise_per_s) * grid.step_s


def _load(config: SimConfig, traits: ControllerTraits, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    knobs = config.load
    phases, region = np.unique(traits.load_phase, return_inverse=True)
    day = np.sin(2 * np.pi * (times[:, None] / 86400.0 + phases))[:, region]
    noise = knobs.noise_sigma * rng.standard_normal((times.size, traits.base_load.size))
    return np.clip(traits.base_load + knobs.diurnal_amplitude * day + noise, 0.01, 0.99)


def _host_mean(load: np.ndarray, fleet: Fleet) -> np.ndarray:
    steps = load.shape[0]
    index = (np.arange(steps)[:, None] * fleet.n_hosts + fleet.host).ravel()
    total = np.bincount(index, weights=load.ravel(), minlength=steps * fleet.n_hosts)
    return total.reshape(steps, fleet.n_hosts) / np.bincount(fleet.host, minlength=fleet.n_hosts)


def _increments(config, grid, s: FaultSchedule, shape, link_rate, ce_rate, rng) -> np.ndarray:
    """Counter increments per window; link errors are split by AER bit only where any occurred."""
    increments = np.zeros((len(COUNTERS), *shape), np.int64)
    visible = sparse_poisson(rng, link_rate)
    step, ctrl = np.nonzero(visible)
    total = visible[step, ctrl]
    shares = np.asarray(config.link.ce_bit_shares) / np.sum(config.link.ce_bit_shares)
    increments[: len(AER_BITS), step, ctrl] = rng.multinomial(total, shares).T
    increments[CRC, step, ctrl] = rng.binomial(total, config.link.crc_threshold_hit_per_ce)
    increments[RETRY, step, ctrl] = rng.binomial(total, config.link.retry_threshold_hit_per_ce)
    increments[CE] = sparse_poisson(rng, ce_rate)
    for counter, ctrl_events, t_events in (
        (REINIT, s.drops.ctrl[~np.isnan(s.drops.precursor)], s.drops.down[~np.isnan(s.drops.precursor)]),
        (LINK_DOWN, s.drops.ctrl, s.drops.down),
        (RECOVERY, s.retrains.ctrl, s.retrains.t),
    ):
        inside = (t_events >= grid.t0) & (t_events < grid.t_end)
        np.add.at(increments[counter], (grid.step_of(t_events[inside]), ctrl_events[inside]), 1)
    return increments
