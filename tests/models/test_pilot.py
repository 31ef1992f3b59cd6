"""models.pilot: the cluster bootstrap's interval covers a known ratio about as often as it says, a difference
whose interval holds 1 is "no difference shown", and the break-even premium prices CXL exactly at the baseline's
cost per job."""

from __future__ import annotations

import numpy as np
import pytest

from models.pilot import (
    NO_DIFFERENCE,
    Comparison,
    PilotSpec,
    PriceScenario,
    break_even_premium,
    cost_per_job,
    pooled_ratio,
)

SPEC = PilotSpec(resamples=400, confidence=0.9, seed=0, scenarios=())


def _cohort(rng: np.random.Generator, hosts: int, mean_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per host: summed time of its completed jobs and their count (exponential job times around `mean_s`)."""
    jobs = rng.integers(5, 30, hosts)
    return np.array([rng.exponential(mean_s, n).sum() for n in jobs]), jobs.astype(float)


def test_the_interval_covers_the_true_ratio_at_about_its_confidence():
    rng = np.random.default_rng(1)
    true_ratio, trials = 1.3, 200
    covered = 0
    for _ in range(trials):
        cxl, base = _cohort(rng, 20, 130.0), _cohort(rng, 20, 100.0)
        found = pooled_ratio(cxl, base, (int(cxl[1].sum()), int(base[1].sum())), SPEC, rng)
        covered += found.low <= true_ratio <= found.high
    # 90 % nominal; 200 trials put the observed share within about +-6 points of it (3 binomial standard errors).
    assert 0.82 <= covered / trials <= 0.97


def test_an_interval_holding_one_is_no_difference_and_one_beside_it_a_difference():
    assert Comparison(1.0, 1.0, 1.05, 0.97, 1.12, 10, 10).verdict("slower", "faster") == NO_DIFFERENCE
    assert Comparison(1.0, 1.0, 0.8, 0.7, 0.9, 10, 10).verdict("slower", "faster") == "CXL faster by 20.0%"
    assert Comparison(1.0, 1.0, 1.2, 1.1, 1.3, 10, 10).verdict("slower", "faster") == "CXL slower by 20.0%"


def test_the_break_even_premium_makes_cxl_cost_what_the_baseline_costs_per_job():
    scenario = PriceScenario("s", instance_per_hour=8.0, cxl_premium=0.3, cxl_overhead_per_hour=0.5)
    baseline = cost_per_job(host_hours=100.0, price_per_hour=8.0, completed=400)
    cxl_jobs_per_host_hour = 5.5
    premium = break_even_premium(scenario, baseline, cxl_jobs_per_host_hour)
    at_break_even = PriceScenario("b", 8.0, premium, 0.5)
    assert cost_per_job(100.0, at_break_even.cxl_host_per_hour(), 550) == pytest.approx(baseline)
