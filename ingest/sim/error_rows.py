"""leo.errors rows for one chunk: periodic health snapshots, then discrete RAS events (telemetry.md §1-§4).

CEs never appear one row per error: they surface as THRESHOLD_EVENT media records (with `cme_count`), as the
cumulative `cor_vol_err_cnt` of health snapshots and, when a storm outruns the event log, as overflow rows.
Explicit resets log a `controller_reset` row; silent ones log nothing. After re-probe, records logged before the
reset arrive in a burst: host `ts` at re-probe, `device_ts` at the original time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.contract import (
    AER_CORRECTABLE_BITS,
    AER_UNCORRECTABLE_BITS,
    CXL_CE_BITS,
    CXL_UE_BITS,
    DESCRIPTOR_THRESHOLD_EVENT,
    DESCRIPTOR_UNCORRECTABLE_EVENT,
    ERRORS_SCHEMA,
    HDR_FLAG_MAINTENANCE_NEEDED,
    HDR_FLAG_PERMANENT_CONDITION,
    LOG_TYPES,
    RECORD_TYPES,
    RESET_KINDS,
    SEVERITIES,
)
from ingest.sim.arrow_columns import codes, contract_table, dictionary, strings, timestamps, uuids
from ingest.sim.chunk_state import AER_BITS, CE, CRC, RETRY, ChunkState
from ingest.sim.config import SimConfig
from ingest.sim.controller_traits import ControllerTraits, health_period_steps
from ingest.sim.fault_schedule import FaultSchedule
from ingest.sim.fleet import Fleet
from ingest.sim.timeline import inside_windows

_RECORD = codes(RECORD_TYPES)
_SEVERITY = codes(SEVERITIES)
_LOG = codes(LOG_TYPES)
# Which status-bit table decodes a row's `status`, by (record type, severity class).
_BIT_TABLES = {
    ("aer_event", True): AER_CORRECTABLE_BITS,
    ("aer_event", False): AER_UNCORRECTABLE_BITS,
    ("cxl_aer_ce", True): CXL_CE_BITS,
    ("cxl_aer_ue", False): CXL_UE_BITS,
}
_ERROR_NAMES = sorted({name for table in _BIT_TABLES.values() for name in table.values()})
_HOST_DELAY_S = (0.001, 0.05)  # event record pulled by the host shortly after the device logged it
_AER_BIT_POSITIONS = dict(zip(AER_BITS, (0, 6, 7, 8, 12), strict=True))  # RxErr, BadTLP, BadDLLP, Rollover, Timeout
_CXL_CRC_BIT, _CXL_RETRY_BIT, _CXL_MEM_ECC_UE_BIT, _CXL_REINIT_BIT, _AER_SDES_BIT = 2, 3, 7, 8, 5
_STATUS_ALARM_CE = 1 << 4  # additional_status bit4: corrected-volatile count alarm
_HEALTH_MAINTENANCE, _HEALTH_PERF_DEGRADED = 1 << 0, 1 << 1
_GM_ECC, _GM_SCRUB, _DRAM_SCRUB = 0, 4, 1
_HOST_READ, _INTERNAL_SCRUB = 1, 5
_TIMESTAMP_COLUMNS = ("device_ts", "overflow_first_ts", "overflow_last_ts")
_DICT_COLUMNS = {"log_type": LOG_TYPES, "reset_kind": RESET_KINDS}


def _part(ctrl, t, record: str, severity: str, **fields) -> dict:
    n = len(ctrl)
    return {
        "ctrl": np.asarray(ctrl, np.int64),
        "t": np.asarray(t, float),
        "record": np.full(n, _RECORD[record]),
        "severity": np.full(n, _SEVERITY[severity]),
        **{k: np.broadcast_to(v, (n,)) for k, v in fields.items()},
    }


def error_rows(
    config: SimConfig,
    fleet: Fleet,
    traits: ControllerTraits,
    s: FaultSchedule,
    state: ChunkState,
    start_ns: int,
    rng: np.random.Generator,
) -> pa.Table:
    grid = state.grid
    snapshots = _merge([_health_snapshots(config, traits, state, rng)])
    parts = [*_threshold_records(config, fleet, state, rng), *_link_error_records(state, rng)]
    for part in _scheduled_records(config, fleet, s.near(grid.t0, grid.t_end), rng):
        inside = (part["t"] >= grid.t0) & (part["t"] < grid.t_end)
        parts.append({key: _rows_of(value, inside) for key, value in part.items()})
    events = _merge(parts)
    keep = ~inside_windows(events["ctrl"], events["t"], s.host_down, s.racks.up)
    order = np.flatnonzero(keep)[np.argsort(events["t"][keep], kind="stable")]
    events = {key: _rows_of(value, order) for key, value in events.items()}
    events["epoch"] = s.bumps.count_at_or_before(events["ctrl"], events["t"])
    # Health snapshots (already in time order) form one record batch, the discrete events another.
    return pa.concat_tables([_table(fleet, rows, start_ns, rng) for rows in (snapshots, events)])


def _rows_of(column: np.ndarray | tuple[np.ndarray, np.ndarray], index: np.ndarray):
    """Select rows of a plain column or of a (values, valid) pair."""
    if isinstance(column, tuple):
        return column[0][index], column[1][index]
    return column[index]


def _health_snapshots(config: SimConfig, traits: ControllerTraits, state: ChunkState, rng) -> dict:
    grid = state.grid
    first_step = round(grid.t0 / grid.step_s)
    due = (first_step + np.arange(grid.steps)[:, None] + traits.health_phase) % health_period_steps(config) == 0
    step, ctrl = np.nonzero(due & state.host_up)
    ce = state.counters[CE, step, ctrl]
    alarm = ce >= config.errors.ce_alert_threshold
    temperature = 38.0 + 30.0 * state.load[step, ctrl] + rng.normal(0.0, 1.5, step.size)
    t = grid.t0 + step * grid.step_s
    return _part(
        ctrl,
        t,
        "health_snapshot",
        "info",
        device_ts=t,
        health_status=np.where(alarm, _HEALTH_MAINTENANCE, 0)
        | np.where(state.downgraded[step, ctrl], _HEALTH_PERF_DEGRADED, 0),
        media_status=0,
        additional_status=np.where(alarm, _STATUS_ALARM_CE, 0),
        device_temp_c=np.rint(temperature),
        dirty_shutdown_cnt=0,  # a volatile expander reports 0 (telemetry.md §4)
        cor_vol_err_cnt=np.minimum(ce, np.iinfo(np.uint32).max),
        cor_per_err_cnt=0,
        uptime_s=np.minimum(state.uptime_s[step, ctrl], np.iinfo(np.uint32).max),
        epoch=state.epoch[step, ctrl],
    )


def _threshold_records(config: SimConfig, fleet: Fleet, state: ChunkState, rng) -> list[dict]:
    """One THRESHOLD_EVENT record per `cme_threshold` CEs; beyond the log's drain capacity, an overflow row."""
    errors, grid = config.errors, state.grid
    before = state.counters[CE]
    crossings = (before + state.increments[CE]) // errors.cme_threshold - before // errors.cme_threshold
    capacity = max(1, int(errors.event_log_records_per_min * grid.step_s / 60.0))
    step, ctrl = np.nonzero(crossings)
    n = crossings[step, ctrl]
    logged = np.minimum(n, capacity)
    lost = n - logged
    owner = np.repeat(np.arange(step.size), logged)
    device_t = grid.t0 + (step[owner] + rng.uniform(0.0, 0.98, owner.size)) * grid.step_s
    media = _media_record(
        config,
        fleet,
        ctrl[owner],
        device_t + rng.uniform(*_HOST_DELAY_S, owner.size),
        device_t,
        rng,
        uncorrectable=False,
    )
    media["cme_count"] = np.full(owner.size, errors.cme_threshold)
    over = lost > 0
    window_start = grid.t0 + step[over] * grid.step_s
    overflow = _part(
        ctrl[over],
        window_start + 0.99 * grid.step_s,
        "overflow",
        "info",
        log_type=_LOG["Informational"],
        overflow_count=np.minimum(lost[over], np.iinfo(np.uint16).max),
        overflow_first_ts=window_start + 0.5 * grid.step_s,
        overflow_last_ts=window_start + 0.98 * grid.step_s,
    )
    return [media, overflow]


def _media_record(config, fleet: Fleet, ctrl, t, device_t, rng, uncorrectable: bool) -> dict:
    """A General Media or DRAM event at the controller's fault locus (errors cluster in few addresses, §2.2)."""
    n = ctrl.size
    dram = rng.random(n) < config.errors.dram_record_share
    locus = (ctrl.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(8)
    lines = fleet.capacity_gb[ctrl].astype(np.uint64) * np.uint64(1 << 24)  # 64-byte lines
    column = rng.integers(0, 128, n) * 8
    dpa = ((locus % lines + column.astype(np.uint64)) % lines) * np.uint64(64)
    if uncorrectable:
        descriptor, log_type, flags = DESCRIPTOR_UNCORRECTABLE_EVENT, _LOG["Failure"], HDR_FLAG_PERMANENT_CONDITION
        event_type, transaction = np.full(n, _GM_ECC), np.full(n, _HOST_READ)
    else:
        scrub = rng.random(n) < config.errors.patrol_scrub_share
        descriptor, log_type, flags = DESCRIPTOR_THRESHOLD_EVENT, _LOG["Informational"], 0
        event_type = np.where(scrub, np.where(dram, _DRAM_SCRUB, _GM_SCRUB), _GM_ECC)
        transaction = np.where(scrub, _INTERNAL_SCRUB, _HOST_READ)
    part = _part(
        ctrl,
        t,
        "general_media",
        "uncorrected_nonfatal" if uncorrectable else "corrected",
        device_ts=device_t,
        log_type=log_type,
        hdr_flags=flags,
        dpa=dpa,
        descriptor=descriptor,
        mem_event_type=event_type,
        transaction_type=transaction,
        channel=(locus & np.uint64(1)).astype(np.int64),
        rank=((locus >> np.uint64(1)) & np.uint64(3)).astype(np.int64),
    )
    part["record"] = np.where(dram, _RECORD["dram"], _RECORD["general_media"])
    dram_only = {
        "bank_group": ((locus >> np.uint64(3)) & np.uint64(7)).astype(np.int64),
        "bank": ((locus >> np.uint64(6)) & np.uint64(3)).astype(np.int64),
        "row": ((locus >> np.uint64(8)) & np.uint64(0x1FFFF)).astype(np.int64),
        "column": column,
        "nibble_mask": np.full(n, 0x1),
    }
    for key, value in dram_only.items():
        part[key] = (value, dram)
    return part


def _link_error_records(state: ChunkState, rng) -> list[dict]:
    """A rate-limited aer_event per window with visible link CEs, and CXL CRC/retry threshold hits."""
    grid, inc = state.grid, state.increments
    parts = []
    aer_status = sum((inc[i] > 0).astype(np.int64) << bit for i, bit in enumerate(_AER_BIT_POSITIONS.values()))
    cxl_status = ((inc[CRC] > 0).astype(np.int64) << _CXL_CRC_BIT) | (
        (inc[RETRY] > 0).astype(np.int64) << _CXL_RETRY_BIT
    )
    for record, status in (("aer_event", aer_status), ("cxl_aer_ce", cxl_status)):
        step, ctrl = np.nonzero(status)
        t = grid.t0 + (step + rng.uniform(0.0, 0.98, step.size)) * grid.step_s
        parts.append(_part(ctrl, t, record, "corrected", status=status[step, ctrl]))
    return parts


def _scheduled_records(config: SimConfig, fleet: Fleet, s: FaultSchedule, rng) -> list[dict]:
    """Rows for scheduled faults near the chunk: UEs, resets, post-reset replays, surprise downs."""
    ues, resets, replays, drops = s.ues, s.resets, s.replays, s.drops
    explicit = ~resets.silent
    with_precursor = ~np.isnan(drops.precursor)
    replay_media = _media_record(
        config, fleet, replays.ctrl, replays.host_t, replays.device_t, rng, uncorrectable=False
    )
    replay_media["cme_count"] = np.full(len(replays), config.errors.cme_threshold)
    ue_bit = 1 << _CXL_MEM_ECC_UE_BIT
    return [
        _part(ues.ctrl, ues.t, "cxl_aer_ue", "uncorrected_nonfatal", status=ue_bit, first_error=_CXL_MEM_ECC_UE_BIT),
        _media_record(config, fleet, ues.ctrl, ues.t + 0.01, ues.t, rng, uncorrectable=True)
        | {"hdr_flags": np.full(len(ues), HDR_FLAG_PERMANENT_CONDITION | HDR_FLAG_MAINTENANCE_NEEDED)},
        _part(resets.ctrl[explicit], resets.t[explicit], "controller_reset", "info", reset_kind=resets.kind[explicit]),
        replay_media,
        _part(
            drops.ctrl,
            drops.down,
            "aer_event",
            "uncorrected_fatal",
            status=1 << _AER_SDES_BIT,
            first_error=_AER_SDES_BIT,
        ),
        _part(
            drops.ctrl[with_precursor],
            drops.down[with_precursor] - 0.5,
            "cxl_aer_ue",
            "uncorrected_fatal",
            status=1 << _CXL_REINIT_BIT,
            first_error=_CXL_REINIT_BIT,
        ),
    ]


def _merge(parts: list[dict]) -> dict:
    """Concatenate parts; a column a part lacks (or marks invalid) becomes null for its rows."""
    names = {key for part in parts for key in part}
    merged = {}
    for name in names:
        values, valid = [], []
        for part in parts:
            n = part["ctrl"].size
            value = part.get(name)
            if isinstance(value, tuple):
                value, ok = value
            else:
                ok = np.ones(n, bool) if value is not None else np.zeros(n, bool)
            values.append(np.zeros(n) if value is None else np.asarray(value))
            valid.append(ok)
        column = np.concatenate([v.astype(np.float64) if v.dtype.kind == "f" else v for v in values])
        merged[name] = (column, np.concatenate(valid))
    for plain in ("ctrl", "t", "record", "severity", "epoch"):
        if plain in merged:
            merged[plain] = merged[plain][0]
    return merged


def _table(fleet: Fleet, rows: dict, start_ns: int, rng) -> pa.Table:
    n = rows["ctrl"].size

    def ns(seconds):
        return start_ns + np.rint(np.asarray(seconds, float) * 1e9).astype(np.int64)

    columns = {
        "event_id": uuids(rng, n),
        "ts": timestamps(ns(rows["t"])),
        "controller_id": strings(rows["ctrl"], fleet.controller_ids),
        **fleet.location_columns(rows["ctrl"]),
        "record_type": dictionary(rows["record"], RECORD_TYPES),
        "severity": dictionary(rows["severity"], SEVERITIES),
        "hdr_flags": pa.array(np.zeros(n, np.uint32)),
        "error_names": _error_names(rows),
        "counter_epoch": pa.array(rows["epoch"].astype(np.uint32)),
    }
    for name, value in rows.items():
        if not isinstance(value, tuple):
            continue
        values, valid = value
        if name in _TIMESTAMP_COLUMNS or name == "device_t":
            columns[name] = timestamps(ns(np.where(valid, values, 0.0)), valid=valid)
        elif name in _DICT_COLUMNS:
            index = pa.array(values.astype(np.int16), mask=~valid)
            columns[name] = pa.DictionaryArray.from_arrays(index, pa.array(_DICT_COLUMNS[name]))
        elif name == "hdr_flags":
            columns[name] = pa.array(np.where(valid, values, 0).astype(np.uint32))
        else:
            dtype = ERRORS_SCHEMA.field(name).type.to_pandas_dtype()
            columns[name] = pa.array(np.where(valid, values, 0).astype(dtype), mask=~valid)
    return contract_table(ERRORS_SCHEMA, columns, n)


def _error_names(rows: dict) -> pa.Array:
    """Decode `status` bits into their names with the table that matches each row's record and severity."""
    status, valid = rows.get("status", (np.zeros(rows["ctrl"].size), np.zeros(rows["ctrl"].size, bool)))
    if not valid.any():
        return pa.nulls(valid.size, ERRORS_SCHEMA.field("error_names").type)
    status = np.where(valid, status, 0).astype(np.int64)
    corrected = rows["severity"] == _SEVERITY["corrected"]
    row_index, name_index = [], []
    for (record, is_corrected), table in _BIT_TABLES.items():
        chosen = valid & (rows["record"] == _RECORD[record]) & (corrected == is_corrected)
        for bit, name in table.items():
            hit = np.flatnonzero(chosen & ((status >> bit) & 1 == 1))
            row_index.append(hit)
            name_index.append(np.full(hit.size, _ERROR_NAMES.index(name)))
    row_index, name_index = np.concatenate(row_index), np.concatenate(name_index)
    order = np.lexsort((name_index, row_index))
    offsets = np.zeros(valid.size + 1, np.int32)
    np.cumsum(np.bincount(row_index, minlength=valid.size), out=offsets[1:])
    names = pa.DictionaryArray.from_arrays(pa.array(name_index[order].astype(np.int16)), pa.array(_ERROR_NAMES))
    return pa.ListArray.from_arrays(pa.array(offsets), names, mask=pa.array(~valid))
