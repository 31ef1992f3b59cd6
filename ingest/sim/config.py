"""THE simulator configuration: every rate, share and shape of the synthetic fleet in one frozen dataclass tree.

Each knob cites its basis in ../shared/docs/fault_model.md (section and confidence tag) or telemetry.md, or is
marked `# ASSUMPTION: <analogue>` when no public value exists (fault_model.md §6 lists those). Event rates are
field rates per device-year; `SimConfig.fault_acceleration` multiplies every one of them so that hours of
simulated time contain the events of months of field experience. Durations (outages, bursts, lead times) are
physical and are NOT scaled.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.sim.confounders import ConfounderKnobs
from ingest.sim.job_model import JobKnobs

SECONDS_PER_YEAR = 365.25 * 86400.0
# Controller-intervals per chunk when `chunk_intervals` is 0 (auto): bounds memory and keeps per-chunk work
# constant whatever the fleet size, so cost stays linear in controllers.
AUTO_CHUNK_CONTROLLER_INTERVALS = 150_000


@dataclass(frozen=True)
class FleetKnobs:
    """Inventory layout: regions → racks → hosts → controllers."""

    regions: tuple[str, ...] = ("us-east", "us-west", "eu-central")  # ASSUMPTION: three-region fleet
    hosts_per_rack: int = 16  # ASSUMPTION: a 40-80 host rack (fault_model.md §2.4 [V]) at 2-4U per host
    # Weights for 1, 2, 3, 4 controllers per host. ASSUMPTION: Azure M-series-style hosts with 1-4 expanders.
    controllers_per_host_weights: tuple[float, ...] = (0.3, 0.5, 0.0, 0.2)
    aic_share: float = 0.6  # add-in card (x16) vs E3.S 2T (x8). ASSUMPTION: no public SKU mix
    aic_dimm_counts: tuple[int, ...] = (2, 4)  # ASSUMPTION: 2 DDR5 channels, 1-2 DIMMs per channel
    aic_dimm_sizes_gb: tuple[int, ...] = (64, 128, 256, 512)  # capacity up to 2 TB (telemetry.md §5 [LEO])
    e3s_capacities_gb: tuple[int, ...] = (128, 256, 512)  # CZ120-class modules (telemetry.md §5)
    e3s_dimm_equivalents: int = 2  # ASSUMPTION: soldered DRAM counted as two DIMM-equivalents
    firmware_versions: tuple[str, ...] = ("2.4.1", "2.5.0", "2.5.3", "2.6.0")  # ASSUMPTION: version names
    firmware_shares: tuple[float, ...] = (0.15, 0.25, 0.4, 0.2)  # ASSUMPTION: rollout state
    max_age_months: float = 36.0  # deployment dates spread over three years. ASSUMPTION


@dataclass(frozen=True)
class LoadKnobs:
    """Bandwidth utilisation that drives latency (telemetry.md §5: queueing dominates above ~70 %)."""

    base_beta: tuple[float, float] = (2.0, 3.0)  # per-controller mean utilisation ~ Beta. ASSUMPTION
    diurnal_amplitude: float = 0.2  # ASSUMPTION: day/night swing, phase per region
    noise_sigma: float = 0.06  # ASSUMPTION: per-window jitter
    link_gbps_x16_gen5: float = 63.0  # GB/s per direction, Gen5 x16 (telemetry.md §3.3 [PCIH])
    ddr_gbps_per_channel: float = 44.8  # DDR5-5600 x 8 bytes (telemetry.md §5)
    read_share: float = 2.0 / 3.0  # 2:1 read:write, Intel MLC convention (telemetry.md §5 [CZ120])


@dataclass(frozen=True)
class LatencyKnobs:
    """Latency histograms (telemetry.md §5 generator defaults, §6.3 layout)."""

    idle_p50_ns: tuple[float, float] = (220.0, 300.0)  # direct-attached x16 idle p50 (telemetry.md §5 inferred)
    local_dram_p50_ns: tuple[float, float] = (90.0, 120.0)  # local DRAM (telemetry.md §5 inferred)
    # The per-host local-DRAM baseline moves slowly, so it is sampled: one window in this many (both ops).
    local_dram_every_windows: int = 5  # ASSUMPTION: a baseline every 5 min at the default 60 s interval
    local_dram_queueing_share: float = 0.4  # ASSUMPTION: local DRAM has more bandwidth, so it queues less
    write_multiplier: float = 1.08  # ASSUMPTION: writes slightly slower (RwD carries data)
    body_sigma_idle: float = 0.065  # log-space spread: idle p99 ≈ 1.1-1.3x p50 (telemetry.md §5)
    body_sigma_loaded: float = 0.14  # at full load: p99/p99.9 2-4x idle p50 (telemetry.md §5)
    tail_weight_idle: float = 0.002  # ASSUMPTION: mixture share of slow accesses at idle
    tail_weight_loaded: float = 0.02  # ASSUMPTION: at full load (heavier-tailed than DRAM, telemetry.md §5)
    tail_median_multiplier: tuple[float, float] = (1.6, 2.2)  # ASSUMPTION: tail mode, idle → loaded
    tail_sigma: float = 0.3  # ASSUMPTION
    # p50 multiplier from queueing: 1 + a*u^2/(1-u/2): ≈1.5x at 70 %, ≈2x at 90 % (telemetry.md §5 inferred).
    queueing_coefficient: float = 0.66
    storm_multiplier: tuple[float, float] = (2.0, 3.0)  # CE storm latency 2-3x (fault_model.md §1 [A])
    storm_tail_weight: float = 0.06  # ASSUMPTION: storm handling stalls add slow accesses
    degraded_link_stress: float = 0.25  # ASSUMPTION: replays on a degrading link (>3x per replay, §2.5 [V])
    samples_per_window: tuple[int, int] = (1024, 8192)  # ASSUMPTION: sampled accesses per window, idle → full
    slo_threshold_ns: int = 1024  # on a bucket boundary at every scale (telemetry.md §6.3)
    # Template bank resolution (performance, not physics): stress levels, count levels, noise variants.
    stress_levels: int = 16
    count_levels: int = 7
    template_variants: int = 4


@dataclass(frozen=True)
class ErrorKnobs:
    """DRAM errors behind the controller: CEs, bursts and storms, UEs (fault_model.md §1, §2.1-2.3)."""

    ce_fault_per_dimm_year: float = 0.08  # P(>=1 CE)/DIMM-year >8 % (fault_model.md §1 [A])
    ce_initial_faulty_share: float = 0.08  # ASSUMPTION: prevalence at start (≈1/3 machines/yr, §2.1 [S])
    ce_rate_median_per_month: float = 67.0  # mean ≈3,700/month, mean/median ≈55 (§1 [D][A])
    ce_rate_sigma: float = 2.83  # lognormal sigma giving mean/median 55: sqrt(2 ln 55) (§1 [D])
    ce_noise_median_per_year: float = 0.2  # ASSUMPTION: sporadic CEs on healthy devices (noise, §4); with the
    # faulty share this keeps ≈1/3 of controllers erroring per field year (§2.1 [S])
    ce_noise_sigma: float = 1.5  # ASSUMPTION
    burst_rate_per_year: float = 6.0  # ASSUMPTION [NF]: immigrant bursts per CE-faulty device (Hawkes)
    burst_branching_ratio: float = 0.5  # ASSUMPTION [NF]: offspring bursts per burst (CE→CE 13-200x, §1 [V])
    burst_offspring_delay_s: float = 1800.0  # ASSUMPTION [NF]: mean delay of a triggered burst
    burst_duration_median_s: float = 300.0  # ASSUMPTION [NF]
    burst_duration_sigma: float = 0.8  # ASSUMPTION [NF]
    # A burst multiplies the device's own (accelerated) CE rate (self-excitation of its fault), so bursts and
    # storms concentrate on the heavy-tailed devices. ASSUMPTION [NF]: gain, lognormal.
    burst_gain_median: float = 30.0
    burst_gain_sigma: float = 1.2
    # A burst at or above this rate is a storm. ASSUMPTION: Linux CMCI storm threshold, 15 CMCIs/s.
    storm_threshold_ce_per_min: float = 900.0
    # ASSUMPTION: storms cause ≈ half of memory-caused resets (§2.2 [A] 56 %): at the default rates this makes
    # storm-caused resets about as many as UE-caused ones.
    storm_reset_probability: float = 0.015
    cme_threshold: int = 256  # ASSUMPTION: programmable CE threshold per THRESHOLD_EVENT record
    event_log_records_per_min: float = 2.0  # ASSUMPTION: log drain capacity; the excess overflows
    ce_alert_threshold: int = 20_000  # ASSUMPTION: corrected-volatile alert (cxl-set-alert-config, §3 rule 4)
    dram_record_share: float = 0.5  # ASSUMPTION: share of media records reported as DRAM (vs General Media)
    ue_per_year: float = 0.015  # ≈1.3 %/machine-yr, 0.05-0.39 %/DIMM-yr (fault_model.md §2.1 [S])
    ue_no_precursor_share: float = 0.38  # 30-45 % of UEs without CE precursor (§1 [A], 43 % upper bound)
    # ASSUMPTION [NF]: CE-ramp onset → UE lead time. No measured distribution exists (§2.3); IBM predicts UEs
    # "weeks in advance" from CE logs [A] and SmartMem labels a 7-day window [V], so the ramp spans a day or more.
    ue_lead_median_s: float = 60 * 3600.0
    ue_lead_sigma: float = 0.5  # ASSUMPTION [NF]: most leads between ~1 and ~6 days
    ue_lead_min_s: float = 900.0  # SmartMem protocol lead 15 min (§2.3 [V])
    # ASSUMPTION [NF]: CE rate reached just before the UE, within the range CE-faulty devices show anyway (§1: mean
    # ≈3,700/month), so a ramp stands out by its rise more than by its level.
    ue_precursor_ce_per_min_median: float = 10.0
    ue_precursor_ce_per_min_sigma: float = 1.2  # ASSUMPTION [NF]: some ramps stay faint (hard to tell from noise)
    ue_reset_probability: float = 0.5  # ASSUMPTION: a UE often forces a reset (Reset Needed, §3 rule 4)
    ue_reset_delay_s: tuple[float, float] = (1.0, 30.0)  # ASSUMPTION: UE → Reset Needed → reset, uniform
    storm_reset_at: tuple[float, float] = (0.2, 1.0)  # ASSUMPTION: a storm's reset lands in this part of it
    patrol_scrub_share: float = 0.3  # ASSUMPTION: share of CE records found by patrol scrub, not host reads
    age_flat_months: float = 10.0  # flat 0-10 months (fault_model.md §1 [V])
    age_plateau_months: float = 18.0  # ramp 10-18 months then plateau (§1 [V])
    age_plateau_multiplier: float = 1.8  # ASSUMPTION: plateau height (newer density ≈1.8x, §2.1 [A])
    health_snapshot_s: int = 300  # telemetry.md §6.1: every 60-300 s (inferred cadence)


@dataclass(frozen=True)
class LinkKnobs:
    """The link degradation chain (fault_model.md §3 rule 5; transition rates are ASSUMPTIONs [NF])."""

    # Visible correctable AER per hour on a healthy link: most spec-level replays are not logged (§2.5 [V]).
    background_ce_median_per_hour: float = 0.3  # ASSUMPTION
    background_ce_sigma: float = 1.5  # ASSUMPTION: some healthy links are noisy ("expected", §2.5 [V])
    episode_per_year: float = 0.3  # ASSUMPTION [NF]: degradation episodes per link-year
    # ASSUMPTION [NF]: precursor ramp length. Meta tracks correctable-AER rates over windows up to a day (§2.5 [V])
    # and failure predictors work on day-to-week windows (§2.3): a link degrades over about a day, not minutes.
    episode_duration_median_s: float = 48 * 3600.0
    episode_duration_sigma: float = 0.5  # ASSUMPTION [NF]: most episodes ~20 h to ~5 days
    # ASSUMPTION [NF]: "orders of magnitude above background" (§1) at the episode's end: 120/h against 0.3/h; early
    # in the ramp it is within reach of the noisy healthy links ("expected", §2.5 [V]).
    degraded_ce_per_min_median: float = 2.0
    degraded_ce_per_min_sigma: float = 1.2  # ASSUMPTION [NF]
    retrains_per_episode: float = 2.0  # ASSUMPTION [NF]: mean retrains during an episode
    retrain_at: tuple[float, float] = (0.3, 1.0)  # ASSUMPTION [NF]: retrains fall in this part of the episode
    downgrade_at: tuple[float, float] = (0.5, 1.0)  # ASSUMPTION [NF]: the downtrain falls in this part
    downgrade_probability: float = 0.4  # ASSUMPTION [NF]: episode → width/speed downtrain
    width_downgrade_share: float = 0.6  # ASSUMPTION [NF]: width halving vs 32→16 GT/s
    drop_probability: float = 0.35  # ASSUMPTION [NF]: episode → surprise down
    # ASSUMPTION [NF]: episode → the controller needs a reset (CXL reset / hot reset after link errors, §3 rule 4).
    reset_probability: float = 0.15
    # ASSUMPTION [NF]: drops with no precursor (connector, cable): about 1 drop in 8 (no link data exists; UEs,
    # the nearest analogue, are 30-45 % precursor-free, §2.3 [A], but a link's errors are counted before it drops).
    sudden_drop_per_year: float = 0.015
    outage_median_s: float = 20.0  # ASSUMPTION [NF]: surprise down → link up
    outage_sigma: float = 1.0  # ASSUMPTION [NF]
    crc_threshold_hit_per_ce: float = 0.02  # ASSUMPTION: CXL CRC threshold hits per visible CE
    retry_threshold_hit_per_ce: float = 0.01  # ASSUMPTION: CXL retry threshold hits per visible CE
    # Share of visible CEs by AER bit: RxErr, BadTLP, BadDLLP, Rollover, Timeout. ASSUMPTION (§3.1 bits).
    ce_bit_shares: tuple[float, ...] = (0.45, 0.15, 0.25, 0.03, 0.12)


@dataclass(frozen=True)
class ResetKnobs:
    """Controller resets (fault_model.md §2.4; the CXL rate itself is [NF])."""

    # ASSUMPTION [D]: between I/O-board 0.007-0.023 and all-cause 0.56 per host-year (§2.4); before the
    # firmware-cohort and lemon multipliers, which raise the fleet mean about 3x.
    per_year: float = 0.1
    # Causes of those resets: sudden (no precursor: firmware hang, power glitch), memory degradation (a CE ramp
    # first, like a UE's), planned firmware activation (~10 % of interruptions are planned, §2.4 [V]). Storms,
    # UEs, degrading links and rack events add resets of their own. ASSUMPTION [NF] for the split of the
    # unplanned rest: §1 has ≈half of memory-caused resets from CE storms (§2.2 [A]); sudden resets are kept at
    # 20 % of unplanned resets, below the 30-45 % of precursor-free UEs (§2.3 [A]): a controller's hang has more
    # telemetry behind it (CEs, link errors) than a DIMM's first UE.
    cause_shares: tuple[float, float, float] = (0.18, 0.72, 0.1)
    # Shares of warm, cold, hot, cxl_reset, flr, sbr for unplanned resets (RESET_KINDS order without
    # fw_activate, which is what a planned reset is). ASSUMPTION.
    kind_shares: tuple[float, ...] = (0.3, 0.15, 0.05, 0.2, 0.15, 0.15)
    silent_share: float = 0.2  # ASSUMPTION: resets with no reset record (only counter/uptime discontinuity)
    boot_age_s: tuple[float, float] = (3600.0, 30 * 86400.0)  # ASSUMPTION: uptime at the run start, uniform
    downtime_median_s: float = 8.0  # ASSUMPTION: re-probe within seconds (Memory_Info_Valid 1 s, §4 [CPCI])
    downtime_sigma: float = 0.8  # ASSUMPTION
    cold_downtime_multiplier: float = 4.0  # ASSUMPTION: cold resets retrain memory (media ready ≤60 s)
    # ASSUMPTION: after an outage (reset downtime, link down) the device is stable for at least this long, so
    # outages never overlap and each is attributable: a link cannot drop while it is already down.
    outage_guard_s: float = 300.0
    replay_window_s: float = 120.0  # ASSUMPTION: undrained log window replayed after re-probe (§4 inferred)
    replay_records_mean: float = 5.0  # ASSUMPTION: records in the post-reset burst
    # Firmware cohorts with an elevated reset rate: (version, multiplier). ASSUMPTION [NF] (§1).
    firmware_multipliers: tuple[tuple[str, float], ...] = (("2.5.0", 4.0),)
    lemon_share: float = 0.05  # "3 of 63 nodes > 50 % of exclusions" (fault_model.md §2.4 [A])
    lemon_multiplier: float = 20.0  # 5 % at 20x ≈ half of all resets and link episodes (§2.4 [A])


@dataclass(frozen=True)
class RackKnobs:
    """Correlated rack/PDU events (fault_model.md §1: ~20 rack failures per 1,800 hosts per year [V])."""

    per_host_year: float = 20.0 / 1800.0  # rack failures per host-year, scaled by hosts in the rack [V]
    outage_median_s: float = 600.0  # ASSUMPTION: power lost to restored
    outage_sigma: float = 0.7  # ASSUMPTION


@dataclass(frozen=True)
class SimConfig:
    """One simulated run: fleet size, span, cadence, seed and every knob of the fault model."""

    controllers: int = 200
    hours: float = 6.0
    interval_s: int = 60  # latency window and link-snapshot cadence
    seed: int = 0
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # simulated clock start (fixed, for reproducibility)
    chunk_intervals: int = 0  # time steps per chunk; 0 = auto (about AUTO_CHUNK_CONTROLLER_INTERVALS per chunk)
    raw_samples: bool = False  # test mode: also emit raw per-access latency samples (small fleets only)
    # ASSUMPTION: compresses field experience so hours of simulation contain months of events. Applied to
    # every event rate (faults, CEs, bursts, UEs, resets, link episodes, rack events). Default 1000: one
    # simulated hour ≈ 6 weeks of field time, so a 200-controller x 6 h run has dozens of resets and drops.
    fault_acceleration: float = 1000.0
    # ASSUMPTION: precursor durations (CE ramps, link degradation episodes) are physical up to this acceleration
    # and compressed by reference/acceleration above it. Without that, at 1000x every link would be inside
    # several days-long degradation episodes at once (rate x duration), which no field fleet shows.
    precursor_reference_acceleration: float = 50.0
    fleet: FleetKnobs = field(default_factory=FleetKnobs)
    load: LoadKnobs = field(default_factory=LoadKnobs)
    latency: LatencyKnobs = field(default_factory=LatencyKnobs)
    errors: ErrorKnobs = field(default_factory=ErrorKnobs)
    link: LinkKnobs = field(default_factory=LinkKnobs)
    resets: ResetKnobs = field(default_factory=ResetKnobs)
    racks: RackKnobs = field(default_factory=RackKnobs)
    # Telemetry confounders; `confounder_knobs(profile)` builds them (default profile: "default").
    confounders: ConfounderKnobs = field(default_factory=ConfounderKnobs)
    jobs: JobKnobs = field(default_factory=JobKnobs)  # the pilot's A/B cohorts (ingest/sim/job_model.py)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """Cross-field rules, as sentences a user can act on."""
        found = []
        if self.controllers < 1:
            found.append(f"controllers must be at least 1, got {self.controllers}")
        if not 1 <= self.interval_s <= 3600 or 3600 % self.interval_s:
            found.append(f"interval {self.interval_s} s must divide 3600 (e.g. 10, 30, 60, 300)")
        elif self.hours * 3600 < self.interval_s:
            found.append(f"hours ({self.hours:g}) must cover at least one {self.interval_s} s interval")
        if self.chunk_intervals < 0:
            found.append(f"chunk_intervals must be 0 (auto) or positive, got {self.chunk_intervals}")
        if not 0 < self.fault_acceleration < float("inf"):
            found.append(f"fault_acceleration must be positive and finite, got {self.fault_acceleration}")
        return found + self.jobs.problems()

    @property
    def n_intervals(self) -> int:
        return int(self.hours * 3600 // self.interval_s)

    @property
    def span_s(self) -> float:
        return float(self.n_intervals * self.interval_s)

    @property
    def resolved_chunk_intervals(self) -> int:
        if self.chunk_intervals:
            return min(self.chunk_intervals, self.n_intervals)
        return max(1, min(self.n_intervals, AUTO_CHUNK_CONTROLLER_INTERVALS // self.controllers))

    @property
    def precursor_time_scale(self) -> float:
        """Factor on precursor durations: 1 up to the reference acceleration, then reference / acceleration."""
        return min(1.0, self.precursor_reference_acceleration / self.fault_acceleration)

    def per_second(self, per_year: float) -> float:
        """A field rate per device-year as a rate per simulated second, after acceleration."""
        return per_year * self.fault_acceleration / SECONDS_PER_YEAR

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples → lists, datetime → ISO 8601) for run.json."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
