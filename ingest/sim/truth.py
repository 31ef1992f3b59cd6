"""Ground truth: one `truth_faults` row per injected fault, written beside the telemetry and never into it."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from ingest.contract import FAULT_KINDS, RESET_KINDS, TRUTH_FAULTS_SCHEMA
from ingest.sim.arrow_columns import contract_table, dictionary, strings, timestamps
from ingest.sim.config import SimConfig
from ingest.sim.confounders import CONFOUNDER_KINDS, PARTIAL_STREAMS, Confounders
from ingest.sim.fault_schedule import RESET_CAUSES, FaultSchedule
from ingest.sim.fleet import Fleet


def _rows(kind: str, ctrl, onset, end, precursor, details: list[dict | str]) -> dict[str, np.ndarray | list]:
    """One fault family's columns; details as dicts, or as JSON text already (sorted keys) for the bulky ones."""
    n = len(ctrl)
    return {
        "kind": np.full(n, FAULT_KINDS.index(kind), np.int16),
        "ctrl": np.asarray(ctrl, np.int64),
        "onset": np.asarray(onset, float),
        "end": np.broadcast_to(np.asarray(end, float), (n,)),
        "precursor": np.broadcast_to(np.asarray(precursor, float), (n,)),
        "details": details,
    }


def truth_rows(schedule: FaultSchedule, fleet: Fleet) -> list[dict]:
    """Every fault family as columns of (kind, controller, onset, end, precursor, details)."""
    s = schedule
    nan = np.nan
    storms = s.bursts.where(s.bursts.storm)
    widths = fleet.max_width
    return [
        _rows(
            "ce_storm",
            storms.ctrl,
            storms.start,
            storms.end,
            storms.parent_start,
            [
                {"ce_per_min": round(rate * 60, 1), "latency_multiplier": round(mult, 3)}
                for rate, mult in zip(storms.ce_per_s, storms.latency_multiplier, strict=True)
            ],
        ),
        _rows(
            "ue",
            s.ues.ctrl,
            s.ues.t,
            s.ues.t,
            s.ues.precursor,
            [
                {"record": "dram" if dram else "general_media", "forces_reset": bool(reset)}
                for dram, reset in zip(s.ues.dram_record, s.ues.forces_reset, strict=True)
            ],
        ),
        _rows(
            "link_degradation",
            s.episodes.ctrl,
            s.episodes.onset,
            s.episodes.end,
            s.episodes.onset,
            # Episodes are the most numerous truth rows (they last days): rendered as JSON text directly.
            [
                f'{{"outcome": "{outcome}", "peak_ce_per_min": {peak!r}}}'
                for outcome, peak in zip(
                    _episode_outcomes(s), np.round(s.episodes.ce_peak_per_s * 60, 1).tolist(), strict=True
                )
            ],
        ),
        _rows(
            "link_retrain", s.retrains.ctrl, s.retrains.t, s.retrains.t, s.retrains.precursor, ["{}"] * len(s.retrains)
        ),
        _rows(
            "link_downgrade",
            s.downgrades.ctrl,
            s.downgrades.t,
            s.downgrades.end,
            s.downgrades.precursor,
            [
                {"from_width": int(widths[c]), "to_width": int(w), "from_speed_gts": 32.0, "to_speed_gts": float(v)}
                for c, w, v in zip(s.downgrades.ctrl, s.downgrades.to_width, s.downgrades.to_speed, strict=True)
            ],
        ),
        _rows(
            "link_drop",
            s.drops.ctrl,
            s.drops.down,
            s.drops.up,
            s.drops.precursor,
            [
                {"down_ms": round((up - down) * 1000), "sudden": bool(np.isnan(p))}
                for down, up, p in zip(s.drops.down, s.drops.up, s.drops.precursor, strict=True)
            ],
        ),
        _rows(
            "controller_reset",
            s.resets.ctrl,
            s.resets.t,
            s.resets.up,
            s.resets.precursor,
            [
                {"reset_kind": RESET_KINDS[k], "silent": bool(silent), "cause": RESET_CAUSES[c]}
                for k, silent, c in zip(s.resets.kind, s.resets.silent, s.resets.cause, strict=True)
            ],
        ),
        _rows(
            "rack_event",
            s.racks.ctrl,
            s.racks.down,
            s.racks.up,
            nan,
            [{"rack": fleet.rack_names[r].as_py(), "power": "lost"} for r in s.racks.rack],
        ),
    ]


def confounder_rows(c: Confounders) -> list[dict]:
    """One row per confounder and controller: kind, start, end and what it did (no precursor: not a fault)."""
    found = []
    for kind in CONFOUNDER_KINDS:
        ctrl, start, end, value = c.of(kind)
        if kind == "clock_step":
            details = [{"offset_s": round(v, 3)} for v in value.tolist()]
        elif kind == "partial_telemetry":
            details = [{"missing": PARTIAL_STREAMS[int(v)]} for v in value.tolist()]
        elif kind == "firmware_rollout":
            details = [{"latency_multiplier": v} for v in value.tolist()]
        else:
            details = ["{}"] * len(ctrl)
        found.append(_rows(kind, ctrl, start, end, np.nan, details))
    return found


def _episode_outcomes(s: FaultSchedule) -> list[str]:
    e = s.episodes
    outcome = np.where(e.dropped, "drop", np.where(e.reset, "reset", np.where(e.downgraded, "downgrade", "recovered")))
    return outcome.tolist()


class TruthTable:
    """The complete truth of a run, sorted by onset, sliced per chunk by onset."""

    def __init__(
        self, config: SimConfig, schedule: FaultSchedule, fleet: Fleet, confounders: Confounders | None = None
    ) -> None:
        parts = truth_rows(schedule, fleet) + (confounder_rows(confounders) if confounders is not None else [])
        self._fleet, self._start_ns = fleet, int(config.start.timestamp()) * 10**9
        onset = np.concatenate([p["onset"] for p in parts])
        order = np.argsort(onset, kind="stable")
        self.onset_s = onset[order]
        start_ns = int(config.start.timestamp()) * 10**9
        span = config.span_s

        def ns(seconds: np.ndarray) -> np.ndarray:
            return start_ns + np.round(np.nan_to_num(seconds, nan=0.0, posinf=0.0) * 1e9).astype(np.int64)

        ctrl = np.concatenate([p["ctrl"] for p in parts])[order]
        end = np.concatenate([p["end"] for p in parts])[order]
        precursor = np.concatenate([p["precursor"] for p in parts])[order]
        details = [d if isinstance(d, str) else json.dumps(d, sort_keys=True) for p in parts for d in p["details"]]
        columns = {
            "controller_id": strings(ctrl, fleet.controller_ids),
            "kind": dictionary(np.concatenate([p["kind"] for p in parts])[order], FAULT_KINDS),
            "onset_ts": timestamps(ns(self.onset_s)),
            "end_ts": timestamps(ns(end), valid=end < span),
            "precursor_onset_ts": timestamps(ns(precursor), valid=~np.isnan(precursor)),
            "details": pa.array(details, pa.string()).take(pa.array(order)),
        }
        self.table = contract_table(TRUTH_FAULTS_SCHEMA, columns, len(order))

    def between(self, t0_s: float, t1_s: float, first: bool, last: bool) -> pa.Table:
        """Rows whose onset falls in [t0, t1); the first chunk also takes earlier onsets, the last later ones."""
        lo = 0 if first else np.searchsorted(self.onset_s, t0_s, side="left")
        hi = len(self.onset_s) if last else np.searchsorted(self.onset_s, t1_s, side="left")
        return self.table.slice(lo, hi - lo)

    def wraps(self, found: list[tuple[int, float, float]], counter: str) -> pa.Table:
        """`counter_wrap` rows for wraps a chunk produced: (controller, last reading before, first after)."""
        ctrl = np.asarray([w[0] for w in found], np.int64)
        before = np.asarray([w[1] for w in found], float)
        after = np.asarray([w[2] for w in found], float)
        columns = {
            "controller_id": strings(ctrl, self._fleet.controller_ids),
            "kind": dictionary(np.full(ctrl.size, FAULT_KINDS.index("counter_wrap"), np.int16), FAULT_KINDS),
            "onset_ts": timestamps(self._start_ns + np.rint(before * 1e9).astype(np.int64)),
            "end_ts": timestamps(self._start_ns + np.rint(after * 1e9).astype(np.int64)),
            "precursor_onset_ts": timestamps(np.zeros(ctrl.size, np.int64), valid=np.zeros(ctrl.size, bool)),
            "details": pa.array([json.dumps({"counter": counter})] * ctrl.size, pa.string()),
        }
        return contract_table(TRUTH_FAULTS_SCHEMA, columns, ctrl.size)
