"""leo.latency rows for one chunk: a read and a write histogram per controller and window, plus the per-host
local-DRAM baseline (memory_tier='local_dram', controller_id = host name) for comparison.

Latency follows load (queueing), the link (a downgraded link halves bandwidth, so the same demand queues more;
a degrading link replays) and CE storms (2-3x), as telemetry.md §5 and fault_model.md §1 describe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import HISTOGRAM_SCALE, LATENCY_OPS, LATENCY_SAMPLES_SCHEMA, LATENCY_SCHEMA, MEMORY_TIERS
from ingest.sim.arrow_columns import contract_table, dictionary, dictionary_block, strings, timestamps
from ingest.sim.chunk_state import ChunkState
from ingest.sim.config import SimConfig
from ingest.sim.controller_traits import ControllerTraits
from ingest.sim.fleet import Fleet
from ingest.sim.latency_model import Histograms, TemplateBank, median_bucket, raw_histograms

_GB = 1e9


@dataclass(frozen=True)
class LatencyOutput:
    latency: pa.Table
    samples: pa.Table | None


def queueing_multiplier(utilisation: np.ndarray, coefficient: float) -> np.ndarray:
    return 1.0 + coefficient * utilisation**2 / (1.0 - utilisation / 2.0)


def latency_rows(
    config: SimConfig,
    fleet: Fleet,
    traits: ControllerTraits,
    bank: TemplateBank,
    state: ChunkState,
    start_ns: int,
    rng: np.random.Generator,
) -> LatencyOutput:
    knobs = config.latency
    steps, n = state.load.shape
    levels = knobs.stress_levels
    # Cells are (step, entity): CXL controllers first, then one local-DRAM entity per host.
    local_util = knobs.local_dram_queueing_share * state.host_load
    cxl_median = traits.idle_p50_ns * queueing_multiplier(state.utilisation, knobs.queueing_coefficient)
    median = np.hstack(
        [
            cxl_median * state.storm_multiplier,
            traits.local_p50_ns * queueing_multiplier(local_util, knobs.queueing_coefficient),
        ]
    )
    stress = np.hstack([np.minimum(1.0, state.utilisation + knobs.degraded_link_stress * state.degrading), local_util])
    storm = np.hstack([state.storm_multiplier > 1.0, np.zeros(local_util.shape, bool)])
    shape = (np.rint(stress * (levels - 1)).astype(np.int32) + levels * storm).ravel()
    load = np.hstack([state.load, state.host_load]).ravel()
    level = np.rint(load * (bank.count_levels - 1)).astype(np.int32)
    first_step = round(state.grid.t0 / state.grid.step_s)
    baseline_due = (first_step + np.arange(steps))[:, None] % knobs.local_dram_every_windows == 0
    cell = np.flatnonzero(~np.hstack([state.latency_gap, state.host_gap | ~baseline_due]).ravel())
    # Rows are (cell, op): read then write.
    read_median = median.ravel()[cell]
    op_median = np.stack([read_median, read_median * knobs.write_multiplier], axis=1).ravel()
    if config.raw_samples:
        count = np.repeat(bank.level_counts[level[cell]], 2)
        hist, sample_row, sample_ns = raw_histograms(
            rng, bank.shapes, np.repeat(shape[cell], 2), count, op_median, knobs.slo_threshold_ns
        )
    else:
        first_variant = bank.template_id(shape[cell], level[cell], np.zeros(cell.size, np.int32))
        template = np.repeat(first_variant, 2) + rng.integers(0, bank.variants, 2 * cell.size, dtype=np.uint16)
        # Group rows by block of host names too, so huge fleets get cheap per-block host dictionaries.
        host_block = dictionary_block(np.repeat(_host_of_entity(fleet)[cell % (n + fleet.n_hosts)], 2))
        hist = bank.histograms(template, median_bucket(op_median), host_block)
    row_cell, op = cell[hist.order // 2], hist.order % 2
    entities = n + fleet.n_hosts
    step, entity = row_cell // entities, row_cell % entities
    names = pa.concat_arrays([fleet.controller_ids, fleet.host_names])
    window_ns = (start_ns + (state.grid.t0 + step * state.grid.step_s) * 1e9).astype(np.int64)
    moved_gb = (
        load * np.hstack([_controller_bandwidth_gbs(config, fleet, state), np.zeros(state.host_load.shape)]).ravel()
    )
    utilisation = np.hstack([state.utilisation, np.zeros(state.host_load.shape)]).ravel()
    cell_features = {"moved_bytes": moved_gb * _GB * state.grid.step_s, "utilisation": utilisation}
    row_features = {key: value[row_cell] for key, value in cell_features.items()}
    table = _table(config, fleet, hist, entity, op, names, window_ns, n, row_features)
    samples = None
    if config.raw_samples:
        sample_row = np.argsort(hist.order)[sample_row]  # samples were drawn in row order before sorting
        samples = contract_table(
            LATENCY_SAMPLES_SCHEMA,
            {
                "window_start": timestamps(window_ns[sample_row]),
                "controller_id": strings(entity[sample_row], names),
                "op": dictionary(op[sample_row], LATENCY_OPS),
                "latency_ns": pa.array(sample_ns, pa.float64()),
            },
            sample_ns.size,
        )
    return LatencyOutput(latency=table, samples=samples)


def _table(config, fleet, hist: Histograms, entity, op, names, window_ns, n_controllers, features) -> pa.Table:
    rows = entity.size
    read_share = config.load.read_share
    host = _host_of_entity(fleet)[entity]
    moved = features["moved_bytes"]
    columns = {
        "window_start": timestamps(window_ns),
        "window_s": pa.array(np.full(rows, config.interval_s, np.uint16)),
        "host": dictionary(host, fleet.host_names),
        "controller_id": strings(entity, names),
        "memory_tier": dictionary((entity >= n_controllers).astype(np.int16), MEMORY_TIERS),
        "head_or_ld": pa.array(np.zeros(rows, np.uint8)),
        "op": dictionary(op, LATENCY_OPS),
        "scale": pa.array(np.full(rows, HISTOGRAM_SCALE, np.int8)),
        "bucket_offset": pa.array(hist.bucket_offset, pa.int32()),
        "bucket_counts": hist.bucket_counts,
        "count": pa.array(hist.count, pa.uint64()),
        "sum_ns": pa.array(hist.sum_ns, pa.float64()),
        "min_ns": pa.array(hist.min_ns),
        "max_ns": pa.array(hist.max_ns),
        "slo_threshold_ns": pa.array(np.full(rows, config.latency.slo_threshold_ns, np.uint32)),
        "over_slo": pa.array(hist.over_slo, pa.uint64()),
        # Each op's row carries its own direction's bytes, so summing rows never double counts.
        "rd_bytes": pa.array((moved * (read_share * (op == 0))).astype(np.uint64)),
        "wr_bytes": pa.array((moved * ((1 - read_share) * (op == 1))).astype(np.uint64)),
        "backpressure_avg_pct": pa.array(np.clip((features["utilisation"] - 0.5) * 200, 0, 100).astype(np.uint8)),
    }
    return contract_table(LATENCY_SCHEMA, columns, rows)


def _host_of_entity(fleet: Fleet) -> np.ndarray:
    """Entities are the controllers, then one local-DRAM entity per host."""
    return np.concatenate([fleet.host, np.arange(fleet.n_hosts, dtype=fleet.host.dtype)])


def _controller_bandwidth_gbs(config: SimConfig, fleet: Fleet, state: ChunkState) -> np.ndarray:
    """Peak bandwidth per direction: the link (x16 Gen5 63 GB/s) or the two DDR5 channels, whichever is less."""
    link = config.load.link_gbps_x16_gen5 * fleet.max_width / 16.0
    return np.broadcast_to(np.minimum(link, 2 * config.load.ddr_gbps_per_channel), state.load.shape)
