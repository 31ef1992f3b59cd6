"""The latent per-controller state that drives every precursor and event (never written to telemetry).

Heavy-tailed CE propensity, lemon devices, firmware-cohort and ageing multipliers, noisy healthy links,
baseline latency and load: fault_model.md §1 "draw a per-device fault propensity from a heavy-tailed law;
keep most devices at zero".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.sim.config import ErrorKnobs, SimConfig
from ingest.sim.fleet import Fleet
from ingest.sim.seeding import lognormal, rng_for

_MONTH_S = 30.44 * 86400.0
_NEVER = np.inf


@dataclass(frozen=True)
class ControllerTraits:
    lemon: np.ndarray
    reset_multiplier: np.ndarray  # firmware cohort x lemon
    link_multiplier: np.ndarray  # lemon
    ce_fault_onset_s: np.ndarray  # -inf: faulty at start; +inf: never within the span
    ce_fault_per_s: np.ndarray  # CE rate once the fault is active (accelerated)
    ce_noise_per_s: np.ndarray  # sporadic CEs on every device, healthy or not
    link_ce_per_s: np.ndarray  # visible correctable AER on a healthy link
    idle_p50_ns: np.ndarray
    local_p50_ns: np.ndarray  # per host: the local-DRAM baseline
    base_load: np.ndarray
    load_phase: np.ndarray  # fraction of a day, per region
    age_s: np.ndarray  # field age at the run start
    boot_s: np.ndarray  # last boot before the run start (negative seconds)
    health_phase: np.ndarray  # health snapshots are staggered across controllers


def ageing_multiplier(age_months: np.ndarray, knobs: ErrorKnobs) -> np.ndarray:
    """Flat, then a linear ramp, then a plateau; no infant mortality (fault_model.md §1 [V])."""
    ramp = (np.asarray(age_months) - knobs.age_flat_months) / (knobs.age_plateau_months - knobs.age_flat_months)
    return 1.0 + (knobs.age_plateau_multiplier - 1.0) * np.clip(ramp, 0.0, 1.0)


def age_months_at(config: SimConfig, age_s: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Field age at simulated time t: the run's clock is accelerated, so ageing is too."""
    return (age_s + config.fault_acceleration * t_s) / _MONTH_S


def draw_traits(config: SimConfig, fleet: Fleet) -> ControllerTraits:
    rng = rng_for(config.seed, "traits")
    n = fleet.size
    errors, resets = config.errors, config.resets
    lemon = rng.random(n) < resets.lemon_share
    lemon_factor = np.where(lemon, resets.lemon_multiplier, 1.0)
    cohort = dict(resets.firmware_multipliers)
    firmware_factor = np.array([cohort.get(name, 1.0) for name in fleet.firmware_names])[fleet.firmware]
    age_s = (config.start.timestamp() * 1e9 - fleet.deployed_at_ns) / 1e9

    onset = _ce_fault_onsets(config, rng, fleet.dimm_count.astype(float), age_s)
    ce_fault_per_s = config.per_second(12.0 * lognormal(rng, errors.ce_rate_median_per_month, errors.ce_rate_sigma, n))
    ce_noise_per_s = config.per_second(lognormal(rng, errors.ce_noise_median_per_year, errors.ce_noise_sigma, n))
    link = config.link
    link_ce_per_s = lognormal(rng, link.background_ce_median_per_hour, link.background_ce_sigma, n) / 3600.0
    low, high = config.latency.idle_p50_ns
    idle_p50 = rng.uniform(low, high, n)
    base_load = rng.beta(*config.load.base_beta, n)
    local_p50 = rng.uniform(*config.latency.local_dram_p50_ns, fleet.n_hosts)
    load_phase = fleet.region.astype(float) / max(len(fleet.region_names), 1)
    boot_s = -rng.uniform(*config.resets.boot_age_s, n)
    period = health_period_steps(config)
    return ControllerTraits(
        lemon=lemon,
        reset_multiplier=firmware_factor * lemon_factor,
        link_multiplier=lemon_factor,
        ce_fault_onset_s=onset,
        ce_fault_per_s=ce_fault_per_s,
        ce_noise_per_s=ce_noise_per_s,
        link_ce_per_s=link_ce_per_s,
        idle_p50_ns=idle_p50,
        local_p50_ns=local_p50,
        base_load=base_load,
        load_phase=load_phase,
        age_s=age_s,
        boot_s=boot_s,
        health_phase=rng.integers(0, period, n),
    )


def health_period_steps(config: SimConfig) -> int:
    return max(1, round(config.errors.health_snapshot_s / config.interval_s))


def _ce_fault_onsets(config: SimConfig, rng: np.random.Generator, dimms: np.ndarray, age_s: np.ndarray) -> np.ndarray:
    """First CE-fault onset per controller: a prevalence at the start plus an ageing-modulated hazard.

    The hazard (per DIMM-year, fault_model.md §1) is sampled by thinning against the plateau rate.
    """
    errors = config.errors
    n = dimms.size
    onset = np.full(n, _NEVER)
    onset[rng.random(n) < errors.ce_initial_faulty_share] = -np.inf
    rate_max = config.per_second(errors.ce_fault_per_dimm_year) * dimms * errors.age_plateau_multiplier
    t = np.zeros(n)
    pending = np.flatnonzero(np.isinf(onset) & (onset > 0))
    while pending.size:
        t[pending] += rng.exponential(1.0 / rate_max[pending])
        pending = pending[t[pending] < config.span_s]
        accept_p = ageing_multiplier(age_months_at(config, age_s[pending], t[pending]), errors)
        accepted = rng.random(pending.size) * errors.age_plateau_multiplier < accept_p
        onset[pending[accepted]] = t[pending[accepted]]
        pending = pending[~accepted]
    return onset
