"""Link drops, retrains and width/speed downgrades from `leo.link`, with outage, recovery and detection times.

A drop leaves several traces (telemetry.md §3.2): surprise_down / link_down / DPC rows at the root port, a
link_down_count increment and a non-L0 LTSSM state in the snapshots, then a link_up row carrying down_ms. Any one
of them may be missing, so all are evidence and one incident is built per outage; its detection time is the arrival
time of the first evidence. Recovery is measured to the first full-speed, full-width L0 observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ingest.contract import LNKSTA_DLLLA, TS, described
from models.series import (
    NS_PER_S,
    NULL_TS,
    Controllers,
    epoch_deltas,
    equals,
    group_starts,
    is_in,
    numbers,
    order_by_controller_time,
    series_codes,
    timestamps_ns,
)

DROP_EVENTS = ("surprise_down", "link_down", "dpc_containment")
UP_STATES = ("L0", "L0s", "L1", "Recovery")
_USED_COLUMNS = (
    "event",
    "ltssm_state",
    "lnksta_flags",
    "cur_speed_gts",
    "max_speed_gts",
    "cur_width",
    "max_width",
    "down_ms",
    "port",
    "counter_epoch",
    "link_down_count",
)

INCIDENTS_SCHEMA = pa.schema(
    [
        described("controller_id", pa.string(), "the controller whose link had the incident", nullable=False),
        described(
            "kind",
            pa.string(),
            "drop (the link went down), retrain, or downgrade (lower speed or width)",
            nullable=False,
        ),
        described("start_ts", TS, "best estimate of when the incident began (UTC)", nullable=False),
        described(
            "detected_ts", TS, "arrival of the first evidence (UTC): the earliest an alarm could fire", nullable=False
        ),
        described(
            "end_ts", TS, "link up (drop) or full speed and width restored (downgrade), UTC; null while still open"
        ),
        described("outage_s", pa.float64(), "seconds from link down to link up; null when the link never went down"),
        described(
            "recovery_s",
            pa.float64(),
            "seconds from the start until the link is back at full speed and width in L0; null if not measured",
        ),
        described("evidence", pa.string(), "the sources that revealed it, comma-separated", nullable=False),
    ]
)


@dataclass(frozen=True)
class LinkConfig:
    """Tunables of the link detector; defaults suit snapshot intervals from 10 s to 5 min."""

    # Rows of one surprise-down sequence (SDES, DPC, pciehp Link Down) and the outage start a link_up
    # reports lie within this of each other; it also absorbs clock differences between host and device.
    sequence_window_s: float = 10.0
    # Retrain rows closer than this are one retrain (host_rp and dev_usp both report it).
    retrain_merge_s: float = 5.0
    # A drop seen only as a down state this soon after a reset is the reset's own downtime.
    reset_downtime_s: float = 300.0
    # Which traces may open a drop: "event" rows, link_down_count "counter" increments, down "state" snapshots.
    # A single source makes the static-threshold baseline the detector is compared against.
    drop_sources: tuple[str, ...] = ("event", "counter", "state")


def link_up(link: pa.Table) -> np.ndarray:
    """Per row: the link is up, an L0-family LTSSM state with the data-link layer active (DLLLA)."""
    flags = numbers(link.column("lnksta_flags"), 0).astype(np.int64)
    return is_in(link.column("ltssm_state"), UP_STATES) & (flags & LNKSTA_DLLLA > 0)


@dataclass(frozen=True)
class _Link:
    """The link table reduced to numpy, sorted by (controller, ts)."""

    table: pa.Table
    codes: np.ndarray
    ts: np.ndarray
    event: pa.ChunkedArray
    up: np.ndarray  # L0-family state with the data-link layer active
    full: np.ndarray  # at max speed and max width
    down_ms: np.ndarray

    @classmethod
    def of(cls, link: pa.Table, controllers: Controllers) -> _Link:
        codes = controllers.codes(link.column("controller_id"))
        ts = timestamps_ns(link.column("ts"))
        order = order_by_controller_time(codes, ts)
        order = order[codes[order] >= 0]
        table = link.select(list(_USED_COLUMNS)).take(pa.array(order))
        up = link_up(table)
        full = (numbers(table.column("cur_speed_gts")) >= numbers(table.column("max_speed_gts"))) & (
            numbers(table.column("cur_width")) >= numbers(table.column("max_width"))
        )
        down_ms = numbers(table.column("down_ms"))
        return cls(table, codes[order], ts[order], table.column("event"), up, full, down_ms)

    def counter_increments(self, rows: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray]:
        """For the given snapshot rows: epoch-aware increment of `column` per (controller, port) series, and the
        time of that series' previous snapshot (the increment happened after it)."""
        series = series_codes(self.codes[rows], self.table.column("port").take(pa.array(rows)))
        order = np.lexsort((self.ts[rows], series))
        picked = rows[order]
        deltas = epoch_deltas(
            series[order],
            numbers(self.table.column("counter_epoch").take(pa.array(picked)), 0),
            numbers(self.table.column(column).take(pa.array(picked)), 0),
        )
        previous = np.empty(len(picked), np.int64)
        previous[:1] = self.ts[picked[:1]]
        previous[1:] = np.where(group_starts(series[order])[1:], self.ts[picked[1:]], self.ts[picked[:-1]])
        increments = np.zeros(len(rows))
        since = np.zeros(len(rows), np.int64)
        increments[order], since[order] = deltas.values, previous
        return increments, since


def link_incidents(link: pa.Table, controllers: Controllers, config: LinkConfig | None = None) -> pa.Table:
    """All drop, retrain and downgrade incidents in INCIDENTS_SCHEMA, sorted by controller and start."""
    config = config or LinkConfig()
    rows = _Link.of(link, controllers)
    parts = [_drops(rows, config), _retrains(rows, config), _downgrades(rows)]
    incidents = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    order = np.lexsort((incidents["start_ts"], incidents["code"]))
    return pa.table(
        {
            "controller_id": controllers.ids.take(pa.array(incidents["code"][order], pa.int64())),
            "kind": pa.array(incidents["kind"][order], pa.string()),
            **{name: _ts_array(incidents[name][order]) for name in ("start_ts", "detected_ts", "end_ts")},
            "outage_s": _float_array(incidents["outage_s"][order]),
            "recovery_s": _float_array(incidents["recovery_s"][order]),
            "evidence": pa.array(incidents["evidence"][order], pa.string()),
        },
        schema=INCIDENTS_SCHEMA,
    )


def _ts_array(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.int64(), mask=values == NULL_TS).cast(TS)


def _float_array(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), from_pandas=True)


def _incident_columns(n: int) -> dict[str, np.ndarray]:
    return {
        "code": np.zeros(n, np.int64),
        "kind": np.empty(n, object),
        "start_ts": np.zeros(n, np.int64),
        "detected_ts": np.zeros(n, np.int64),
        "end_ts": np.full(n, NULL_TS, np.int64),
        "outage_s": np.full(n, np.nan),
        "recovery_s": np.full(n, np.nan),
        "evidence": np.empty(n, object),
    }


def _drops(rows: _Link, config: LinkConfig) -> dict[str, np.ndarray]:
    """One incident per outage, merging event rows, counter increments and down-state snapshots.

    Rows of one surprise-down sequence (and the link_up reporting when that outage began) lie within
    `sequence_window_s` of each other; a counter increment or a down snapshot belongs to the outage still open
    (or just closed) when it could have happened.
    """
    snapshot = equals(rows.event, "snapshot")
    link_up = equals(rows.event, "link_up")
    # A link_up reporting an outage is itself proof of a drop whose other rows may have been lost.
    explicit = is_in(rows.event, DROP_EVENTS) | (link_up & (rows.down_ms > 0))
    snap_rows = np.flatnonzero(snapshot)
    increments, since = rows.counter_increments(snap_rows, "link_down_count")
    counted = np.zeros(len(rows.ts), dtype=bool)
    counted[snap_rows] = increments > 0
    # The moment each piece of evidence refers to at the earliest: a link_up's outage began down_ms before it,
    # a counter increment happened after the previous snapshot.
    earliest = np.where(link_up & explicit, rows.ts - np.nan_to_num(rows.down_ms * 1e6).astype(np.int64), rows.ts)
    earliest[snap_rows] = np.where(increments > 0, since, rows.ts[snap_rows])
    down = snapshot & ~rows.up
    sources_of = {"event": explicit, "counter": counted, "state": down}
    evidence = np.logical_or.reduce([sources_of[name] for name in config.drop_sources])
    sequence_ns = int(config.sequence_window_s * NS_PER_S)
    kinds = {
        name: (idx, rows.codes[idx])
        for name, idx in (
            ("link_up", np.flatnonzero(link_up)),
            ("up_snapshot", np.flatnonzero(snapshot & rows.up)),
            ("healthy", np.flatnonzero(snapshot & rows.up & rows.full)),
        )
    }
    out: list[tuple] = []
    for code, idx in _per_controller(rows.codes, evidence):
        links = {name: _of_controller(idx, idx_codes, code) for name, (idx, idx_codes) in kinds.items()}
        current: dict | None = None
        for i in idx.tolist():
            sources = {name for name in config.drop_sources if sources_of[name][i]}
            lo = int(earliest[i])
            if current is not None and _belongs(current, sources, lo, sequence_ns):
                current["evidence"] |= sources
                if "event" in sources and current["first_event"] is None:
                    current["first_event"] = lo
                continue
            if current is not None:
                out.append(_close_drop(code, current))
            current = _open_drop(rows, i, lo, links, sources, sequence_ns)
        out.append(_close_drop(code, current))
    return _columns_from(out, "drop")


def _belongs(drop: dict, sources: set[str], lo: int, sequence_ns: int) -> bool:
    """Whether evidence referring to moment `lo` (and after) is about this drop."""
    if "event" in sources:
        # An event row names its outage's start: the same sequence, or an outage that began by the time a
        # state or counter first showed this drop (a later one is a new outage, e.g. after a reset's downtime).
        anchor = drop["first_event"] if drop["first_event"] is not None else drop["detected"]
        return abs(lo - anchor) <= sequence_ns if drop["first_event"] is not None else lo <= anchor + sequence_ns
    return lo <= drop["open_until"] + sequence_ns


def _open_drop(rows: _Link, i: int, lo: int, links: dict[str, np.ndarray], sources: set[str], sequence_ns: int) -> dict:
    """A new drop from evidence row i, with the link_up that reports this outage (if any)."""
    detected = int(rows.ts[i])
    ups = links["link_up"]
    ups = ups[np.searchsorted(rows.ts[ups], lo, side="left") :]
    went_down = rows.ts[ups] - (np.nan_to_num(rows.down_ms[ups]) * 1e6).astype(np.int64)
    # Event rows name the moment the outage began; a state or counter only says it had begun by now.
    fits = np.abs(went_down - lo) <= sequence_ns if "event" in sources else went_down <= detected + sequence_ns
    k = int(np.argmax(fits)) if fits.any() else -1
    up_ts = int(rows.ts[ups[k]]) if k >= 0 else NULL_TS
    start = int(went_down[k]) if k >= 0 else lo if sources == {"counter"} else detected
    after = max(detected, up_ts)
    back = links["up_snapshot"][np.searchsorted(rows.ts[links["up_snapshot"]], detected, side="left") :]
    healthy = links["healthy"][np.searchsorted(rows.ts[links["healthy"]], after, side="left") :]
    open_until = up_ts if up_ts != NULL_TS else int(rows.ts[back[0]]) if len(back) else np.iinfo(np.int64).max
    return {
        "start": min(start, detected),
        "detected": detected,
        "first_event": lo if "event" in sources else None,
        "open_until": open_until,
        "up_ts": up_ts,
        "restored": int(rows.ts[healthy[0]]) if len(healthy) else NULL_TS,
        "evidence": sources,
    }


def _of_controller(idx: np.ndarray, idx_codes: np.ndarray, code: int) -> np.ndarray:
    """The part of a row-index array (rows sorted by controller, codes given) that belongs to one controller."""
    lo, hi = np.searchsorted(idx_codes, [code, code + 1])
    return idx[lo:hi]


def _close_drop(code: int, drop: dict) -> tuple:
    outage = (drop["up_ts"] - drop["start"]) / NS_PER_S if drop["up_ts"] != NULL_TS else np.nan
    recovery = (drop["restored"] - drop["start"]) / NS_PER_S if drop["restored"] != NULL_TS else np.nan
    return code, drop["start"], drop["detected"], drop["up_ts"], outage, recovery, ",".join(sorted(drop["evidence"]))


def _columns_from(rows: list[tuple], kind: str) -> dict[str, np.ndarray]:
    columns = _incident_columns(len(rows))
    for name, values in zip(
        ("code", "start_ts", "detected_ts", "end_ts", "outage_s", "recovery_s", "evidence"),
        zip(*rows, strict=True) if rows else [()] * 7,
        strict=True,
    ):
        columns[name][:] = np.array(values, dtype=columns[name].dtype) if rows else columns[name]
    columns["kind"][:] = kind
    return columns


def _retrains(rows: _Link, config: LinkConfig) -> dict[str, np.ndarray]:
    """Retrain rows, one incident per burst (both ends of the link may report the same retrain)."""
    idx = np.flatnonzero(equals(rows.event, "retrain"))
    codes, ts = rows.codes[idx], rows.ts[idx]
    new = np.ones(len(idx), dtype=bool)
    new[1:] = (codes[1:] != codes[:-1]) | (ts[1:] - ts[:-1] > config.retrain_merge_s * NS_PER_S)
    out = [(int(c), int(t), int(t), int(t), 0.0, np.nan, "event") for c, t in zip(codes[new], ts[new], strict=True)]
    return _columns_from(out, "retrain")


def _downgrades(rows: _Link) -> dict[str, np.ndarray]:
    """Periods spent below max speed or width while the link is up: from the first such row to full again."""
    # Every row taken while the link is up reports its current speed and width (snapshots, link_up, changes).
    observed = rows.up & ~is_in(rows.event, DROP_EVENTS)
    out: list[tuple] = []
    for code, idx in _per_controller(rows.codes, observed):
        degraded = ~rows.full[idx]
        change = np.flatnonzero(np.diff(np.concatenate([[False], degraded, [False]]).astype(np.int8)))
        for begin, finish in zip(change[::2], change[1::2], strict=True):
            start = int(rows.ts[idx[begin]])
            end = int(rows.ts[idx[finish]]) if finish < len(idx) else NULL_TS
            recovery = (end - start) / NS_PER_S if end != NULL_TS else np.nan
            out.append((code, start, start, end, np.nan, recovery, "state"))
    return _columns_from(out, "downgrade")


def _per_controller(codes: np.ndarray, mask: np.ndarray):
    """Yield (code, row indices) of the masked rows, controller by controller (rows already code-sorted)."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return
    cuts = np.flatnonzero(np.diff(codes[idx])) + 1
    for group in np.split(idx, cuts):
        yield int(codes[group[0]]), group


def without_reset_downtime(incidents: pa.Table, resets: pa.Table, config: LinkConfig | None = None) -> pa.Table:
    """Remove drops seen only as a down link state while a controller was resetting: a reset takes the link
    down too, and only rows or the link_down_count counter prove a drop of the link itself."""
    config = config or LinkConfig()
    state_only = equals(incidents.column("kind"), "drop") & equals(incidents.column("evidence"), "state")
    if not state_only.any() or not resets.num_rows:
        return incidents
    controllers = Controllers.of(incidents.column("controller_id"), resets.column("controller_id"))
    reset_codes = controllers.codes(resets.column("controller_id"))
    reset_ts = timestamps_ns(resets.column("reset_ts"))
    order = np.lexsort((reset_ts, reset_codes))
    reset_codes, reset_ts = reset_codes[order], reset_ts[order]
    codes = controllers.codes(incidents.column("controller_id"))
    start = timestamps_ns(incidents.column("start_ts"))
    slack = int(config.sequence_window_s * NS_PER_S)
    downtime = int(config.reset_downtime_s * NS_PER_S)
    keep = np.ones(incidents.num_rows, dtype=bool)
    for i in np.flatnonzero(state_only):
        lo, hi = np.searchsorted(reset_codes, [codes[i], codes[i] + 1])
        near = reset_ts[lo:hi]
        keep[i] = not ((near >= start[i] - downtime) & (near <= start[i] + slack)).any()
    return incidents.filter(pa.array(keep))


def recovery_summary(incidents: pa.Table) -> pa.Table:
    """Per incident kind: count, MTTR (mean outage), median and p90 outage, mean time back to full speed and
    width, and how many incidents were still open at the end of the data."""
    rows = []
    for kind in ("drop", "retrain", "downgrade"):
        mine = incidents.filter(pa.array(equals(incidents.column("kind"), kind)))
        outage = numbers(mine.column("outage_s"))
        recovery = numbers(mine.column("recovery_s"))
        closed = outage[~np.isnan(outage)]
        rows.append(
            {
                "kind": kind,
                "incidents": mine.num_rows,
                "mttr_s": float(closed.mean()) if len(closed) else None,
                "median_outage_s": float(np.median(closed)) if len(closed) else None,
                "p90_outage_s": float(np.percentile(closed, 90)) if len(closed) else None,
                "mean_recovery_s": float(np.nanmean(recovery)) if (~np.isnan(recovery)).any() else None,
                "still_open": int(mine.column("end_ts").null_count),
            }
        )
    return pa.Table.from_pylist(rows)
