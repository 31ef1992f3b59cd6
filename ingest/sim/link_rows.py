"""leo.link rows for one chunk: a `snapshot` per controller and interval (so an epoch change is visible within
one interval) plus event rows along the degradation chain: retrain, width/speed change, surprise down,
DPC containment, pciehp link down and link up with the outage length (telemetry.md §3).

Within a chunk, snapshot rows come first (in time order), then event rows (in time order); every row has its ts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ingest.contract import (
    LINK_EVENTS,
    LINK_PORTS,
    LINK_REASONS,
    LINK_SCHEMA,
    LNKSTA_DLLLA,
    LNKSTA_LBMS,
    LNKSTA_LT,
    LTSSM_STATES,
)
from ingest.sim.arrow_columns import codes, contract_table, dictionary, masked, strings, timestamps
from ingest.sim.chunk_state import AER_BITS, COUNTERS, ChunkState
from ingest.sim.fault_schedule import FaultSchedule
from ingest.sim.fleet import Fleet
from ingest.sim.timeline import inside_windows

_EVENT = codes(LINK_EVENTS)
_REASON = codes(LINK_REASONS)
_LTSSM = codes(LTSSM_STATES)
_PORT = codes(LINK_PORTS)
_NO_REASON = -1
_UINT32_COUNTERS = {
    "cxl_crc_thresh_hits",
    "cxl_retry_thresh_hits",
    "reinit_thresh_hits",
    "link_down_count",
    "recovery_entries",
}


def _events(
    ctrl, t, event: str | np.ndarray, reason, ltssm, port, width=None, speed=None, flags=0, down_ms=None
) -> dict:
    n = len(ctrl)

    def full(value):
        return np.broadcast_to(np.asarray(value), (n,))

    return {
        "ctrl": np.asarray(ctrl, np.int64),
        "t": np.asarray(t, float),
        "event": full(_EVENT[event] if isinstance(event, str) else event),
        "reason": full(_REASON.get(reason, _NO_REASON)),
        "ltssm": full(_LTSSM[ltssm]),
        "port": full(_PORT[port]),
        "width": None if width is None else full(width),
        "speed": None if speed is None else full(speed),
        "flags": full(flags),
        "down_ms": full(-1 if down_ms is None else down_ms),
    }


def link_event_parts(s: FaultSchedule, fleet: Fleet) -> list[dict]:
    """Event rows per family; width/speed None means "as the snapshot of that interval shows"."""
    drops, widths = s.drops, fleet.max_width
    return [
        _events(
            s.retrains.ctrl, s.retrains.t, "retrain", "retrain", "Recovery", "host_rp", flags=LNKSTA_LT | LNKSTA_DLLLA
        ),
        _events(
            s.downgrades.ctrl,
            s.downgrades.t,
            np.where(s.downgrades.to_speed < 32.0, _EVENT["speed_change"], _EVENT["width_change"]),
            "bwctrl_irq",
            "L0",
            "host_rp",
            s.downgrades.to_width,
            s.downgrades.to_speed,
            LNKSTA_DLLLA | LNKSTA_LBMS,
        ),
        _events(drops.ctrl, drops.down, "surprise_down", None, "Detect", "host_rp", 0, 0.0),
        _events(drops.ctrl, drops.down + 0.001, "dpc_containment", None, "Detect", "host_rp", 0, 0.0),
        _events(drops.ctrl, drops.down + 0.005, "link_down", "hotplug", "Detect", "host_rp", 0, 0.0),
        _events(
            drops.ctrl,
            drops.up,
            "link_up",
            "hotplug",
            "L0",
            "host_rp",
            widths[drops.ctrl],
            32.0,
            LNKSTA_DLLLA,
            np.rint((drops.up - drops.down) * 1000),
        ),
    ]


def link_rows(fleet: Fleet, s: FaultSchedule, state: ChunkState, start_ns: int) -> pa.Table:
    grid = state.grid
    n = fleet.size
    # Every snapshot of a powered host, in (step, controller) order; usually all of them, so take views.
    up = state.host_up.ravel()
    flat = slice(None) if up.all() else up
    rows = np.arange(up.size)[flat]
    step, ctrl = rows // n, rows % n
    down = state.link_down.ravel()[flat]
    flags = np.where(state.downgraded.ravel()[flat], LNKSTA_DLLLA | LNKSTA_LBMS, LNKSTA_DLLLA)
    counters = state.counters.reshape(len(COUNTERS), -1)
    columns = {
        "ctrl": ctrl,
        "t": grid.t0 + step * grid.step_s,
        "epoch": state.epoch.ravel()[flat],
        "port": np.full(rows.size, _PORT["dev_usp"], np.int16),
        "event": np.full(rows.size, _EVENT["snapshot"], np.int16),
        "reason": np.full(rows.size, _NO_REASON, np.int16),
        "ltssm": np.where(down, _LTSSM["Detect"], _LTSSM["L0"]),
        "width": state.width.ravel()[flat],
        "speed": state.speed.ravel()[flat],
        "flags": np.where(down, 0, flags),
        "down_ms": np.full(rows.size, -1),
        "counters": counters if up.all() else counters.compress(up, axis=1),
    }
    events = _chunk_events(s, fleet, state)
    if not events:
        return _table(fleet, columns, start_ns)
    # Snapshots come in time order as one record batch, then the (few) events in time order as another:
    # re-sorting every snapshot row around them would cost more than generating them.
    merged = {key: np.concatenate([part[key] for part in events], axis=-1) for key in columns}
    order = np.argsort(merged["t"], kind="stable")
    merged = {key: value[..., order] for key, value in merged.items()}
    return pa.concat_tables([_table(fleet, columns, start_ns), _table(fleet, merged, start_ns)])


def _chunk_events(s: FaultSchedule, fleet: Fleet, state: ChunkState) -> list[dict]:
    grid = state.grid
    found = []
    for part in link_event_parts(s.near(grid.t0, grid.t_end), fleet):
        keep = (part["t"] >= grid.t0) & (part["t"] < grid.t_end)
        keep &= ~inside_windows(part["ctrl"], part["t"], s.host_down, s.racks.up)
        if not keep.any():
            continue
        ctrl, t = part["ctrl"][keep], part["t"][keep]
        step = grid.step_of(t)
        epoch = s.bumps.count_at_or_before(ctrl, t)  # every controller starts the run in epoch 0
        same_epoch = epoch == state.epoch[step, ctrl]
        counters = np.where(same_epoch, state.counters[:, step, ctrl], 0)
        found.append(
            {
                "ctrl": ctrl,
                "t": t,
                "epoch": epoch,
                "port": part["port"][keep],
                "event": part["event"][keep],
                "reason": part["reason"][keep],
                "ltssm": part["ltssm"][keep],
                "width": state.width[step, ctrl] if part["width"] is None else part["width"][keep],
                "speed": state.speed[step, ctrl] if part["speed"] is None else part["speed"][keep],
                "flags": part["flags"][keep],
                "down_ms": part["down_ms"][keep],
                "counters": counters,
            }
        )
    return found


def _table(fleet: Fleet, rows: dict, start_ns: int) -> pa.Table:
    n = rows["ctrl"].size
    counters = rows["counters"]
    columns = {
        "ts": timestamps(start_ns + np.rint(rows["t"] * 1e9).astype(np.int64)),
        "host": dictionary(fleet.host[rows["ctrl"]], fleet.host_names),
        "controller_id": strings(rows["ctrl"], fleet.controller_ids),
        "counter_epoch": pa.array(rows["epoch"].astype(np.uint32)),
        "port": dictionary(rows["port"], LINK_PORTS),
        "event": dictionary(rows["event"], LINK_EVENTS),
        "reason": pa.DictionaryArray.from_arrays(
            masked(rows["reason"].astype(np.int16), rows["reason"] >= 0, pa.int16()), pa.array(LINK_REASONS)
        ),
        "ltssm_state": dictionary(rows["ltssm"], LTSSM_STATES),
        "cur_speed_gts": pa.array(rows["speed"].astype(np.float32)),
        "max_speed_gts": pa.array(np.full(n, 32.0, np.float32)),
        "cur_width": pa.array(rows["width"].astype(np.uint8)),
        "max_width": pa.array(fleet.max_width[rows["ctrl"]]),
        "lnksta_flags": pa.array(rows["flags"].astype(np.uint16)),
        "flit_mode": pa.array(np.zeros(n, bool)),
        "down_ms": masked(rows["down_ms"].astype(np.uint32), rows["down_ms"] >= 0, pa.uint32()),
        "aer_cor_total": pa.array(counters[: len(AER_BITS)].sum(axis=0).astype(np.uint64)),
    }
    for index, name in enumerate(COUNTERS[:-1]):
        # Counters are never negative, so the 64-bit ones are a zero-copy view.
        column = counters[index].astype(np.uint32) if name in _UINT32_COUNTERS else counters[index].view(np.uint64)
        columns[name] = pa.array(column)
    return contract_table(LINK_SCHEMA, columns, n)
