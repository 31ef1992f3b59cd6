"""The pilot's A/B statistics and cost model: CXL-expanded hosts against local-DRAM baselines (docs/pilot.md).

Jobs on one host share its memory and its faults, so they are not independent: intervals come from a cluster
bootstrap that resamples hosts, not jobs (seeded, so a report is reproducible). A difference is a ratio CXL /
baseline; when its interval contains 1 the report says "no difference shown", never a win. A report makes several
comparisons (classes x metrics), so its intervals are simultaneous (Bonferroni): with no difference anywhere, the
chance that any of them shows one is at most 1 - confidence, not that chance per comparison. Cost is host-hours
times the host's price per hour over the jobs that completed: killed and failed jobs cost hours and deliver
nothing. Everything here is pure; pipelines/reports/pilot.py reads the lake and pilot.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_DIFFERENCE = "no difference shown"


@dataclass(frozen=True)
class PriceScenario:
    """Prices of one scenario: the host's instance price, the CXL expansion's premium on it, and the operational
    overhead of running CXL hosts. `rollback`: the CXL hosts' expansion is switched off (they keep their price but
    run like the baseline)."""

    name: str
    instance_per_hour: float  # a baseline host, currency per hour
    cxl_premium: float  # the CXL-expanded host's extra price, a share of instance_per_hour
    cxl_overhead_per_hour: float = 0.0  # operations (firmware, monitoring, spares) per CXL host-hour
    rollback: bool = False

    def cxl_host_per_hour(self) -> float:
        return self.instance_per_hour * (1.0 + self.cxl_premium) + self.cxl_overhead_per_hour


@dataclass(frozen=True)
class PilotSpec:
    """pilot.yaml: the bootstrap's settings and the price scenarios."""

    resamples: int
    confidence: float
    seed: int
    scenarios: tuple[PriceScenario, ...]


@dataclass(frozen=True)
class Comparison:
    """CXL / baseline ratio of a per-host-pooled quantity, with its bootstrap interval and the jobs behind it."""

    cxl: float
    baseline: float
    ratio: float
    low: float
    high: float
    cxl_jobs: int
    baseline_jobs: int

    @property
    def shown(self) -> bool:
        return not self.low <= 1.0 <= self.high

    def verdict(self, higher_is: str, lower_is: str) -> str:
        """`higher_is` / `lower_is` name what a ratio above / below 1 means (e.g. "slower" / "faster")."""
        if not np.isfinite(self.ratio) or not self.shown:
            return NO_DIFFERENCE
        word = higher_is if self.ratio > 1 else lower_is
        return f"CXL {word} by {abs(self.ratio - 1):.1%}"


def simultaneous(confidence: float, comparisons: int) -> float:
    """Per-interval confidence that keeps the family-wise one at `confidence` over `comparisons` intervals."""
    return 1.0 - (1.0 - confidence) / max(comparisons, 1)


def host_weights(hosts: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each host is drawn in each bootstrap resample (resamples x hosts)."""
    if hosts == 0:
        return np.zeros((resamples, 0))
    return rng.multinomial(hosts, np.full(hosts, 1.0 / hosts), size=resamples).astype(float)


def pooled_ratio(
    cxl: tuple[np.ndarray, np.ndarray],
    baseline: tuple[np.ndarray, np.ndarray],
    jobs: tuple[int, int],
    spec: PilotSpec,
    rng: np.random.Generator,
) -> Comparison:
    """Ratio of pooled numerator / denominator per cohort (e.g. summed time over completed jobs, per host), CXL over
    baseline, with a percentile interval from resampling each cohort's hosts."""

    def estimate(parts: tuple[np.ndarray, np.ndarray], weights: np.ndarray) -> np.ndarray:
        numerator, denominator = (np.asarray(p, float) for p in parts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (weights @ numerator) / (weights @ denominator)

    point = [estimate(parts, np.ones((1, len(parts[0]))))[0] for parts in (cxl, baseline)]
    draws = [estimate(parts, host_weights(len(parts[0]), spec.resamples, rng)) for parts in (cxl, baseline)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = draws[0] / draws[1]
    tail = (1.0 - spec.confidence) / 2.0
    finite = ratios[np.isfinite(ratios)]
    low, high = np.quantile(finite, [tail, 1.0 - tail]) if finite.size else (np.nan, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = point[0] / point[1] if point[1] else np.nan
    return Comparison(float(point[0]), float(point[1]), float(ratio), float(low), float(high), jobs[0], jobs[1])


def cost_per_job(host_hours: float, price_per_hour: float, completed: int) -> float:
    """What one completed job cost: every host-hour paid for, over the jobs that completed."""
    return host_hours * price_per_hour / completed if completed else float("nan")


def cost_per_gb_hour(host_hours: float, price_per_hour: float, gb_hours: float) -> float:
    """What one GB-hour of memory the jobs used cost (all jobs, completed or not)."""
    return host_hours * price_per_hour / gb_hours if gb_hours else float("nan")


def break_even_premium(scenario: PriceScenario, baseline_cost_per_job: float, cxl_jobs_per_host_hour: float) -> float:
    """The CXL premium (share of the instance price) at which a CXL host's cost per completed job equals the
    baseline's: instance x (1 + p) + overhead = baseline cost per job x CXL jobs per host-hour."""
    if not np.isfinite(baseline_cost_per_job) or not scenario.instance_per_hour:
        return float("nan")
    affordable = baseline_cost_per_job * cxl_jobs_per_host_hour - scenario.cxl_overhead_per_hour
    return affordable / scenario.instance_per_hour - 1.0
