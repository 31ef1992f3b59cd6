"""The pilot's jobs in the simulator: paired A/B cohorts, the performance model's direction per class, and jobs
killed exactly by the injected resets and link drops of their host (joined with the run's own fault truth)."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.job_model import JobKnobs
from tests.ingest.sim.runs import simulated

CONFIG = SimConfig(controllers=300, hours=12.0, seed=3, confounders=confounder_knobs("off"))


@pytest.fixture(scope="module")
def con():
    return simulated(CONFIG)[2]


def test_cohorts_are_paired_hosts_half_with_cxl_per_workload(con):
    hosts = con.execute(
        "SELECT workload, count(DISTINCT host) FILTER (memory_tier = 'cxl'), "
        "count(DISTINCT host) FILTER (memory_tier = 'local_dram') FROM jobs GROUP BY workload ORDER BY 1"
    ).fetchall()
    assert [row[0] for row in hosts] == ["analytics", "in_memory_db", "llm_kv_cache"]
    assert all(cxl == baseline > 0 for _, cxl, baseline in hosts)
    (mixed,) = con.execute(
        "SELECT count(*) FROM (SELECT host FROM jobs GROUP BY host HAVING count(DISTINCT memory_tier) > 1)"
    ).fetchone()
    assert mixed == 0


def test_every_killed_job_ends_at_a_reset_or_drop_of_its_host_and_baselines_only_at_power_loss(con):
    rows = con.execute(
        """WITH faults AS (
             SELECT i.host::VARCHAR AS host, t.onset_ts, t.kind::VARCHAR AS kind,
                    json_extract_string(t.details, '$.cause') AS cause
             FROM truth t JOIN inventory i USING (controller_id)
             WHERE t.kind IN ('controller_reset', 'link_drop'))
           SELECT j.memory_tier::VARCHAR, j.outcome::VARCHAR, count(*) AS jobs,
                  count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM faults f WHERE f.host = j.host::VARCHAR
                      AND abs(epoch(f.onset_ts) - epoch(j.end_ts)) < 0.001
                      AND f.kind = CASE j.outcome::VARCHAR WHEN 'killed_reset' THEN 'controller_reset'
                                   ELSE 'link_drop' END
                      AND (j.memory_tier::VARCHAR = 'cxl' OR f.cause = 'rack_event'))) AS explained
           FROM jobs j WHERE j.outcome::VARCHAR LIKE 'killed%' GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    killed = {(tier, outcome): (jobs, explained) for tier, outcome, jobs, explained in rows}
    assert killed[("cxl", "killed_reset")][0] > 0 and killed[("cxl", "killed_link_drop")][0] > 0
    assert ("local_dram", "killed_link_drop") not in killed
    assert all(jobs == explained for jobs, explained in killed.values())


def test_no_job_outlives_a_fault_that_takes_its_memory(con):
    (survivors,) = con.execute(
        """SELECT count(*) FROM jobs j JOIN inventory i ON i.host::VARCHAR = j.host::VARCHAR
           JOIN truth t ON t.controller_id = i.controller_id
           WHERE j.memory_tier::VARCHAR = 'cxl' AND t.kind IN ('controller_reset', 'link_drop')
             AND t.onset_ts > j.start_ts AND t.onset_ts < j.end_ts - INTERVAL 1 millisecond"""
    ).fetchone()
    assert survivors == 0


def _mean_time(con, workload: str, tier: str) -> float:
    return con.execute(
        "SELECT avg(epoch(end_ts) - epoch(start_ts)) FROM jobs WHERE outcome = 'completed' AND workload = ? "
        "AND memory_tier = ?",
        [workload, tier],
    ).fetchone()[0]


def test_capacity_bound_jobs_gain_from_cxl_and_latency_bound_ones_lose(con):
    assert _mean_time(con, "analytics", "cxl") < _mean_time(con, "analytics", "local_dram")
    assert _mean_time(con, "llm_kv_cache", "cxl") > _mean_time(con, "llm_kv_cache", "local_dram")


def test_jobs_off_gives_no_jobs_and_leaves_the_telemetry_alone():
    plain = dataclasses.replace(CONFIG, hours=1.0)
    _, with_jobs, _ = simulated(plain)
    _, without, _ = simulated(dataclasses.replace(plain, jobs=JobKnobs(enabled=False)))
    assert sum(c.jobs.num_rows for c in without) == 0 < sum(c.jobs.num_rows for c in with_jobs)
    for a, b in zip(with_jobs, without, strict=True):
        assert a.latency.equals(b.latency) and a.errors.equals(b.errors) and a.truth.equals(b.truth)
