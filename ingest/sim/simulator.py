"""The seeded Leo fleet simulator: vectorized over controllers and time, chunked over time.

Construction draws the fleet, the latent per-controller state and the fault schedule for the whole span (all
sparse), plus the latency template bank. `chunks()` then turns each time chunk into contract tables; memory
follows the chunk size, never the simulated span. One seed always yields identical tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from ingest.sim.chunk_state import Carry, build_chunk_state
from ingest.sim.config import SimConfig
from ingest.sim.confounders import ConfounderRows, draw_confounders, maintenance_table
from ingest.sim.controller_traits import draw_traits
from ingest.sim.error_rows import error_rows
from ingest.sim.fault_schedule import draw_schedule
from ingest.sim.fleet import build_fleet
from ingest.sim.jobs import JobTable
from ingest.sim.latency_model import TemplateBank
from ingest.sim.latency_rows import latency_rows
from ingest.sim.link_rows import link_rows
from ingest.sim.seeding import rng_for
from ingest.sim.timeline import Grid
from ingest.sim.truth import TruthTable


@dataclass(frozen=True)
class SimChunk:
    window_start: datetime
    window_end: datetime
    errors: pa.Table  # ERRORS_SCHEMA
    link: pa.Table  # LINK_SCHEMA
    latency: pa.Table  # LATENCY_SCHEMA
    truth: pa.Table  # TRUTH_FAULTS_SCHEMA rows for faults that begin in this chunk (end_ts filled in if known)
    samples: pa.Table | None  # LATENCY_SAMPLES_SCHEMA in raw_samples mode, else None
    jobs: pa.Table  # JOBS_SCHEMA rows of the pilot's jobs that ended in this chunk


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.fleet = build_fleet(config)
        self.inventory = self.fleet.to_table()
        self.traits = draw_traits(config, self.fleet)
        self._start_ns = int(config.start.timestamp()) * 10**9
        # With confounders off the run is exactly the clean simulation (no draw touches the other streams).
        confounders = None
        if config.confounders.enabled:
            rng = rng_for(config.seed, "confounders")
            confounders = draw_confounders(config.confounders, self.fleet, config.span_s, rng)
        self.confounders = confounders
        self.schedule = draw_schedule(config, self.fleet, self.traits, confounders)
        self.truth = TruthTable(config, self.schedule, self.fleet, confounders)
        self.maintenance = maintenance_table(confounders, self.fleet, self._start_ns)
        self.jobs = JobTable(config, self.fleet, self.schedule)
        self.templates = TemplateBank(config.latency, rng_for(config.seed, "templates"))
        self.chunk_intervals = config.resolved_chunk_intervals
        self.n_chunks = math.ceil(config.n_intervals / self.chunk_intervals)

    def chunks(self) -> Iterator[SimChunk]:
        config = self.config
        carry = Carry.initial(config, self.traits, rng_for(config.seed, "initial-counters"))
        rows = None
        if self.confounders is not None:
            rows = ConfounderRows(config.confounders, self.confounders, self.fleet, config.span_s, self._start_ns)
        for index in range(self.n_chunks):
            first = index * self.chunk_intervals
            steps = min(self.chunk_intervals, config.n_intervals - first)
            grid = Grid(t0=float(first * config.interval_s), step_s=float(config.interval_s), steps=steps)
            yield self._chunk(index, grid, carry, rows)

    def _chunk(self, index: int, grid: Grid, carry: Carry, rows: ConfounderRows | None) -> SimChunk:
        config = self.config
        rng = rng_for(config.seed, "chunk", index)
        state = build_chunk_state(config, self.fleet, self.traits, self.schedule, grid, carry, rng)
        latency = latency_rows(config, self.fleet, self.traits, self.templates, state, self._start_ns, rng)
        errors = error_rows(config, self.fleet, self.traits, self.schedule, state, self._start_ns, rng)
        link = link_rows(self.fleet, self.schedule, state, self._start_ns)
        truth = self.truth.between(grid.t0, grid.t_end, first=index == 0, last=index == self.n_chunks - 1)
        histograms = latency.latency
        if rows is not None:
            errors, health_wraps = rows.errors(errors, float(config.errors.health_snapshot_s))
            link, link_wraps = rows.link(link, float(config.interval_s))
            histograms = rows.latency(histograms)
            wraps = [self.truth.wraps(health_wraps, "cor_vol_err_cnt"), self.truth.wraps(link_wraps, "rx_err")]
            truth = pa.concat_tables([truth, *wraps])
        return SimChunk(
            window_start=config.start + timedelta(seconds=grid.t0),
            window_end=config.start + timedelta(seconds=grid.t_end),
            errors=errors,
            link=link,
            latency=histograms,
            truth=truth,
            samples=latency.samples,
            jobs=self.jobs.between(grid.t0, grid.t_end),  # every job reported ended within the span
        )
