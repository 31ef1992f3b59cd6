"""The pilot's performance model: how long a job takes on a host with or without CXL memory expansion.

A host runs `slots_per_host` jobs side by side, each with an equal share of the host's memory. A job needs
`footprint` GB:

- capacity: what does not fit in the slot's memory spills (to storage, or is recomputed), and every spilled
  share of the footprint costs `spill_penalty` times the job's base time: slowdown_spill = 1 + spill_penalty x
  spilled share. A baseline host has only its local DRAM, so capacity-bound jobs spill there; a CXL-expanded host
  spills only beyond local DRAM plus its CXL share.
- latency: on a CXL-expanded host the share of the footprint that sits in CXL memory (what overflows local DRAM,
  and at least `cxl_page_share`, what the kernel's tiering places there anyway) is slower by the CXL-to-DRAM
  latency ratio, and a job stalls on memory latency for `latency_sensitivity` of its time: slowdown_latency =
  1 + latency_sensitivity x CXL share x (latency ratio - 1).

A job's time to solution is its base time (lognormal per class) times both slowdowns; `effect_scale` multiplies
every penalty (0: CXL changes nothing, the A/B test's null). The latency ratio comes from the latency knobs the
telemetry uses (LatencyKnobs: idle CXL p50 over local-DRAM p50), so jobs and latency histograms agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.contract import JOB_WORKLOADS


@dataclass(frozen=True)
class WorkloadKnobs:
    """One workload class: its memory footprint, its base time and how it reacts to CXL memory."""

    name: str  # one of JOB_WORKLOADS
    footprint_median_gb: float
    footprint_sigma: float
    duration_median_s: float
    duration_sigma: float
    latency_sensitivity: float  # share of the job's time stalled on memory latency
    spill_penalty: float  # extra base times per share of the footprint spilled


# ASSUMPTION (no public per-job figures): in-memory databases of ~100 GB that are moderately latency-bound and
# pay heavily for paging (storage ~4x slower); KV caches for LLM inference that fit a slot but are latency-bound,
# and recompute what does not fit (1.5x); analytics jobs larger than a slot, bandwidth- more than latency-bound,
# that spill to local SSD (2x). The workload classes are those CXL pilots name (issue 19).
DEFAULT_WORKLOADS = (
    WorkloadKnobs("in_memory_db", 96.0, 0.5, 1200.0, 0.5, 0.5, 3.0),
    WorkloadKnobs("llm_kv_cache", 48.0, 0.4, 600.0, 0.5, 0.8, 1.5),
    WorkloadKnobs("analytics", 160.0, 0.6, 3600.0, 0.6, 0.15, 2.0),
)


@dataclass(frozen=True)
class JobKnobs:
    """The pilot's A/B cohorts and jobs (docs/pilot.md)."""

    enabled: bool = True
    local_dram_gb_per_host: float = 512.0  # ASSUMPTION: a two-socket host with 8 x 64 GB DDR5 RDIMMs
    slots_per_host: int = 4  # ASSUMPTION: jobs run side by side, each with a quarter of the host's memory
    # ASSUMPTION: the share of a job's pages a CXL-expanded host places in CXL memory even when local DRAM has room
    # (weighted interleave / tiering defaults); what overflows local DRAM goes there too.
    cxl_page_share: float = 0.2
    failure_probability: float = 0.01  # ASSUMPTION: jobs that fail on their own, whatever the memory
    effect_scale: float = 1.0  # multiplies every CXL effect: 0 makes both cohorts alike (the null)
    workloads: tuple[WorkloadKnobs, ...] = DEFAULT_WORKLOADS  # in JOB_WORKLOADS order

    def problems(self) -> list[str]:
        found = []
        if tuple(w.name for w in self.workloads) != JOB_WORKLOADS:
            found.append(f"job workloads must be exactly {', '.join(JOB_WORKLOADS)}")
        if self.slots_per_host < 1 or self.local_dram_gb_per_host <= 0:
            found.append("jobs need at least one slot per host and some local DRAM")
        if not 0 <= self.cxl_page_share <= 1 or not 0 <= self.failure_probability < 1 or self.effect_scale < 0:
            found.append("job shares must lie in [0, 1] and effect_scale must not be negative")
        return found


def slowdown(
    knobs: JobKnobs,
    latency_sensitivity: np.ndarray,
    spill_penalty: np.ndarray,
    footprint_gb: np.ndarray,
    cxl_gb_per_slot: np.ndarray,
    latency_ratio: float,
) -> np.ndarray:
    """Time to solution over base time per job (arrays per job, each class's coefficients repeated); the slot's
    CXL memory `cxl_gb_per_slot` is 0 on baseline hosts."""
    local = knobs.local_dram_gb_per_host / knobs.slots_per_host
    overflow = np.maximum(0.0, footprint_gb - local)
    on_cxl = np.minimum(cxl_gb_per_slot, np.maximum(overflow, knobs.cxl_page_share * footprint_gb))
    on_cxl = np.where(cxl_gb_per_slot > 0, on_cxl, 0.0)
    spilled = np.maximum(0.0, footprint_gb - local - cxl_gb_per_slot)
    scale = knobs.effect_scale
    spill = 1.0 + scale * spill_penalty * spilled / footprint_gb
    latency = 1.0 + scale * latency_sensitivity * (on_cxl / footprint_gb) * (latency_ratio - 1.0)
    return spill * latency
