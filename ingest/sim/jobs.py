"""leo.jobs rows: the pilot's paired A/B cohorts running the three workload classes, and the jobs faults killed.

Hosts pair up in fleet order (two neighbours in one rack); a seeded coin gives one of each pair CXL expansion
(its controllers' memory online for jobs) and leaves the other on local DRAM only, the baseline; each pair runs one
workload class, classes dealt out evenly. Every host runs `slots_per_host` jobs back to back; a job's time comes
from the performance model (ingest/sim/job_model.py). A job dies with its host's memory, from the simulator's
own fault schedule: on a CXL-expanded host any reset or link drop of one of its controllers kills the jobs running
then (their memory is interleaved over the controllers); a baseline host loses its jobs only when the host itself
loses power (a rack event's resets). A killed or failed job's slot stays idle until the job's planned end (the
scheduler's recovery), so the schedule of later jobs does not depend on faults. The whole span is drawn up front,
vectorised over slots, and each chunk takes the jobs that ended in it; jobs still running at the end are not
reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import JOB_OUTCOMES, JOB_WORKLOADS, JOBS_SCHEMA, MEMORY_TIERS
from ingest.sim.arrow_columns import contract_table, dictionary, strings, timestamps
from ingest.sim.config import SimConfig
from ingest.sim.fault_schedule import RACK, FaultSchedule
from ingest.sim.fleet import Fleet
from ingest.sim.job_model import slowdown
from ingest.sim.seeding import rng_for

CXL, LOCAL_DRAM = MEMORY_TIERS.index("cxl"), MEMORY_TIERS.index("local_dram")
COMPLETED, FAILED, KILLED_RESET, KILLED_LINK_DROP = (JOB_OUTCOMES.index(o) for o in JOB_OUTCOMES)
_BLOCK = 32  # jobs drawn per slot and round


@dataclass(frozen=True)
class Cohorts:
    """Per pilot host (hosts 0 .. 2 x pairs - 1; an odd last host sits out): CXL-expanded or not, its class."""

    cxl: np.ndarray  # bool per host
    workload: np.ndarray  # index into JOB_WORKLOADS per host


def draw_cohorts(n_hosts: int, rng: np.random.Generator) -> Cohorts:
    pairs = n_hosts // 2
    pair = np.arange(2 * pairs) // 2
    first_is_cxl = rng.random(pairs) < 0.5
    cxl = np.where(np.arange(2 * pairs) % 2 == 0, first_is_cxl[pair], ~first_is_cxl[pair])
    workload = rng.permutation(np.arange(pairs) % len(JOB_WORKLOADS))[pair]
    return Cohorts(cxl=cxl, workload=workload.astype(np.int16))


def latency_ratio(config: SimConfig) -> float:
    """CXL over local-DRAM idle p50, the midpoints of the ranges the latency telemetry draws from."""
    return float(np.mean(config.latency.idle_p50_ns) / np.mean(config.latency.local_dram_p50_ns))


class JobTable:
    """Every job of the run that ended within the span, sorted by end, sliced per chunk by end."""

    def __init__(self, config: SimConfig, fleet: Fleet, schedule: FaultSchedule) -> None:
        knobs = config.jobs
        rng = rng_for(config.seed, "jobs")
        cohorts = draw_cohorts(fleet.n_hosts if knobs.enabled else 0, rng)
        span = config.span_s
        slots = knobs.slots_per_host
        host = np.repeat(np.arange(cohorts.cxl.size), slots)
        cxl_gb_host = np.bincount(fleet.host, weights=fleet.capacity_gb.astype(float), minlength=fleet.n_hosts)
        cxl_gb_slot = np.where(cohorts.cxl[host], cxl_gb_host[host] / slots, 0.0)
        classes = knobs.workloads
        w = cohorts.workload[host]

        def per_slot(name: str) -> np.ndarray:
            return np.array([getattr(c, name) for c in classes], float)[w]

        start, end, footprint, slot_of = _back_to_back(
            rng,
            span,
            footprint=(per_slot("footprint_median_gb"), per_slot("footprint_sigma")),
            duration=(per_slot("duration_median_s"), per_slot("duration_sigma")),
            slowdown_of=lambda slot, gb: slowdown(
                knobs,
                per_slot("latency_sensitivity")[slot][:, None],
                per_slot("spill_penalty")[slot][:, None],
                gb,
                cxl_gb_slot[slot][:, None],
                latency_ratio(config),
            ),
        )
        job_host = host[slot_of]
        outcome = np.full(start.size, COMPLETED, np.int16)
        failed = rng.random(start.size) < knobs.failure_probability
        end = np.where(failed, start + rng.random(start.size) * (end - start), end)
        outcome[failed] = FAILED
        kill_t, kill_kind = _first_kill(schedule, fleet, cohorts.cxl, job_host, start, end)
        killed = kill_t < end
        end = np.where(killed, kill_t, end)
        outcome[killed] = kill_kind[killed]
        done = end < span
        order = np.argsort(end[done], kind="stable")
        index = np.flatnonzero(done)[order]
        self.end_s = end[index]
        start_ns = int(config.start.timestamp()) * 10**9
        job_host = job_host[index]
        sequence = np.arange(start.size)[index]  # unique per run: drawn in one sequence over slots and rounds
        names = strings(job_host, fleet.host_names)
        start_epoch_s = int(config.start.timestamp()) + np.floor(start[index]).astype(np.int64)
        start_s = pc.cast(pa.array(start_epoch_s), pa.string())
        tier = np.where(cohorts.cxl[job_host], CXL, LOCAL_DRAM).astype(np.int16)
        columns = {
            # host/start epoch second/sequence: unique across runs too, as a scheduler's id is across days (the
            # natural key of raw.jobs: two fleet runs in one lake share host names)
            "job_id": pc.binary_join_element_wise(names, start_s, pc.cast(pa.array(sequence), pa.string()), "/"),
            "controller_id": names,
            "host": dictionary(job_host, fleet.host_names),
            "workload": dictionary(cohorts.workload[job_host], JOB_WORKLOADS),
            "memory_tier": dictionary(tier, MEMORY_TIERS),
            "footprint_gb": pa.array(footprint[index].astype(np.float32)),
            "host_memory_gb": pa.array(
                (knobs.local_dram_gb_per_host + np.where(tier == CXL, cxl_gb_host[job_host], 0.0)).astype(np.float32)
            ),
            "start_ts": timestamps(start_ns + np.rint(start[index] * 1e9).astype(np.int64)),
            "end_ts": timestamps(start_ns + np.rint(self.end_s * 1e9).astype(np.int64)),
            "outcome": dictionary(outcome[index], JOB_OUTCOMES),
        }
        self.table = contract_table(JOBS_SCHEMA, columns, index.size)

    def between(self, t0_s: float, t1_s: float) -> pa.Table:
        """The jobs that ended in [t0, t1)."""
        lo, hi = np.searchsorted(self.end_s, [t0_s, t1_s], side="left")
        return self.table.slice(lo, hi - lo)


def _back_to_back(
    rng: np.random.Generator,
    span: float,
    footprint: tuple[np.ndarray, np.ndarray],
    duration: tuple[np.ndarray, np.ndarray],
    slowdown_of: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jobs per slot one after another from a random offset until the span is covered: (start, planned end,
    footprint, slot) per job, drawn a block of rounds at a time for every slot still inside the span."""
    slots = duration[0].size
    t = rng.random(slots) * duration[0]
    parts = []
    while True:
        active = np.flatnonzero(t < span)
        if not active.size:
            break
        shape = (active.size, _BLOCK)
        gb = footprint[0][active, None] * np.exp(footprint[1][active, None] * rng.standard_normal(shape))
        base = duration[0][active, None] * np.exp(duration[1][active, None] * rng.standard_normal(shape))
        took = base * slowdown_of(active, gb)
        ends = t[active, None] + np.cumsum(took, axis=1)
        starts = ends - took
        keep = starts < span
        parts.append((starts[keep], ends[keep], gb[keep], np.broadcast_to(active[:, None], shape)[keep]))
        t[active] = ends[:, -1]
    if not parts:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _first_kill(
    schedule: FaultSchedule, fleet: Fleet, cxl: np.ndarray, host: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Time and outcome of the first fault in [start, end) that takes each job's memory (inf, completed: none)."""
    resets, drops = schedule.resets, schedule.drops
    t = np.concatenate([resets.t, drops.down])
    on_host = fleet.host[np.concatenate([resets.ctrl, drops.ctrl]).astype(np.int64)]
    kind = np.concatenate([np.full(len(resets.t), KILLED_RESET), np.full(len(drops.down), KILLED_LINK_DROP)])
    host_power = np.concatenate([resets.cause == RACK, np.zeros(len(drops.down), bool)])
    pilot = on_host < cxl.size
    t, on_host, kind, host_power = t[pilot], on_host[pilot], kind[pilot], host_power[pilot]
    kills = host_power | cxl[on_host]
    t, on_host, kind = t[kills], on_host[kills], kind[kills]
    if not t.size or not start.size:
        return np.full(start.size, np.inf), np.full(start.size, COMPLETED, np.int16)
    stride = max(float(end.max()), float(t.max())) + 1.0  # every time lies in [0, stride): keys never overlap
    keys = on_host * stride + t
    order = np.argsort(keys, kind="stable")
    keys, t, on_host, kind = keys[order], t[order], on_host[order], kind[order]
    at = np.minimum(np.searchsorted(keys, host * stride + start, side="left"), keys.size - 1)
    hit = (on_host[at] == host) & (t[at] >= start) & (t[at] < end)
    return np.where(hit, t[at], np.inf), np.where(hit, kind[at], COMPLETED).astype(np.int16)
