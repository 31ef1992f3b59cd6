"""Burn rates, multiwindow multi-burn-rate alert tiers, guards and error budget of an SLO over its SLI series.

Method (pipeline_patterns.md §4): an SLI is good/total events; error budget = 1 − objective; burn rate = error
ratio / budget. A tier fires when both its long and its short window burn at least its factor (the SRE
Workbook tables, as encoded by Sloth for 30d/7d and Pyrra for 28d). Guards: a tier whose long window holds
fewer than k / (factor · budget) events reports insufficient_data instead of firing (k = min_bad_events), and
a group with no events in the last `absent_after` is absent (unknown), never compliant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from models.slo.grid import Grid, grids
from models.slo.spec import AlertTier, Slo

STATES = ("ok", "insufficient_data", "ticket", "page", "absent")  # in rising priority
# A burn equal to the factor fires (the Workbook's ≥) even when 14.4 × 0.001 rounds below 0.0144.
_FACTOR_TOLERANCE = 1e-9


def reaches(burn: np.ndarray, factor: float) -> np.ndarray:
    """Whether burn rates reach an alert tier's factor (NaN never does)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(burn) >= factor * (1 - _FACTOR_TOLERANCE)


def burn_rate(bad: np.ndarray | float, events: np.ndarray | float, error_budget: np.ndarray | float) -> np.ndarray:
    """Error ratio / error budget (1 = spending exactly the budget); NaN without events: unknown, not compliant.

    The one formula: the sre views' burn_rate macro (views.sql) is tested equal to it."""
    bad, events = np.asarray(bad, np.float64), np.asarray(events, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(events > 0, bad / events / error_budget, np.nan)


@dataclass(frozen=True)
class _Burns:
    """Per window: events, bad events and burn rate (NaN without events) at every step of a grid."""

    events: dict[str, np.ndarray]
    bad: dict[str, np.ndarray]
    burn: dict[str, np.ndarray]


def _burns(grid: Grid, slo: Slo, windows: tuple[str, ...]) -> _Burns:
    events, bad, burn = {}, {}, {}
    for window in windows:
        events[window] = grid.trailing(grid.running_total, window)
        bad[window] = grid.trailing(grid.running_bad, window)
        burn[window] = burn_rate(bad[window], events[window], slo.error_budget)
    return _Burns(events, bad, burn)


def _conditions(grid: Grid, slo: Slo, burns: _Burns) -> dict[tuple[str, AlertTier | None], np.ndarray]:
    """Boolean (group × step) matrices: each tier firing, each tier held back by the minimum-events guard,
    and absence."""
    matrices: dict[tuple[str, AlertTier | None], np.ndarray] = {}
    for tier in slo.tiers:
        burning = reaches(burns.burn[tier.long], tier.factor) & reaches(burns.burn[tier.short], tier.factor)
        enough = burns.events[tier.long] >= slo.min_events(tier)
        matrices[(tier.severity, tier)] = burning & enough
        matrices[("insufficient_data", tier)] = burning & ~enough
    matrices[("absent", None)] = grid.trailing(grid.running_total, slo.absent_after) == 0
    return matrices


def _states(conditions: dict[tuple[str, AlertTier | None], np.ndarray]) -> np.ndarray:
    """Index into STATES per (group, step): the highest-priority condition that holds."""
    state = np.zeros(next(iter(conditions.values())).shape, np.int8)
    for (kind, _), matrix in conditions.items():
        np.maximum(state, np.where(matrix, STATES.index(kind), 0).astype(np.int8), out=state)
    return state


def _runs(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, first step, step after the last) of every run of True along each row."""
    padded = np.zeros((matrix.shape[0], matrix.shape[1] + 2), np.int8)
    padded[:, 1:-1] = matrix
    change = np.diff(padded, axis=1)
    group, begin = np.nonzero(change == 1)
    _, stop = np.nonzero(change == -1)
    return group, begin, stop


def _timestamps(values_ns: np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(values_ns, pa.int64(), mask=mask).cast(type_)


def _episodes(grid: Grid, slo: Slo, burns: _Burns, conditions: dict, ts_type: pa.DataType) -> pa.Table:
    times = grid.times()
    steps = grid.good.shape[1]
    parts = []
    for (kind, tier), matrix in conditions.items():
        group, begin, stop = _runs(matrix)
        peak = np.full(group.size, np.nan)
        if tier is not None and group.size:
            # Highest long-window burn inside each run: one reduceat over the flattened runs.
            flat = np.append(np.where(matrix, burns.burn[tier.long], -np.inf).ravel(), -np.inf)
            bounds = np.column_stack([group * steps + begin, group * steps + stop]).ravel()
            peak = np.maximum.reduceat(flat, bounds)[::2]
        count = group.size
        columns = {
            "slo": pa.array([slo.name] * count, pa.string()),
            "kind": pa.array([kind] * count, pa.string()),
            "tier": pa.array([None if tier is None else tier.name] * count, pa.string()),
            "factor": pa.array([None if tier is None else tier.factor] * count, pa.float64()),
            "start": _timestamps(times[begin], ts_type),
            "end": _timestamps(times[np.minimum(stop, steps - 1)], ts_type, mask=stop >= steps),
            "peak_burn": pa.array(peak, pa.float64(), from_pandas=True),
        }
        keys = grid.keys.take(group).columns
        parts.append(pa.Table.from_arrays([*keys, *columns.values()], names=[*slo.group_columns, *columns]))
    return pa.concat_tables(parts)


@dataclass(frozen=True)
class Evaluation:
    """`status`: one row per group at the end of the evaluation (budget over the rolling period, burn rates,
    state), sorted by budget remaining, worst first. `episodes`: every interval in which a tier fired, a tier
    was held back by the minimum-events guard (kind insufficient_data) or the group was absent; `end` is null
    while it lasts; times are evaluation times (the end of the step). `timeline`: per group, good, total, burn
    rates and state at chosen evaluation times, from the same pass (hourly compliance beside the episodes)."""

    status: pa.Table
    episodes: pa.Table
    timeline: pa.Table | None = None  # `burn_timeline`'s rows at the evaluation times `evaluate` was asked for


def _status(grid: Grid, slo: Slo, burns: _Burns, state: np.ndarray, ts_type: pa.DataType) -> pa.Table:
    count = grid.good.shape[0]
    period_burn = burns.burn[slo.window][:, -1]
    columns = {
        "slo": pa.array([slo.name] * count, pa.string()),
        "as_of": _timestamps(np.full(count, grid.times()[-1]), ts_type),
        "objective": pa.array(np.full(count, slo.objective)),
        "window": pa.array([slo.window] * count, pa.string()),  # the rolling period the budget covers
        "error_budget": pa.array(np.full(count, slo.error_budget)),
        "events": pa.array(burns.events[slo.window][:, -1].astype(np.int64)),
        "bad_events": pa.array(burns.bad[slo.window][:, -1].astype(np.int64)),
        "sli": pa.array(1 - period_burn * slo.error_budget, from_pandas=True),
        "budget_remaining": pa.array(1 - period_burn, from_pandas=True),
        **{f"burn_{w}": pa.array(burns.burn[w][:, -1], from_pandas=True) for w in slo.windows},
        "state": pa.array([STATES[s] for s in state[:, -1]], pa.string()),
    }
    return pa.Table.from_arrays([*grid.keys.columns, *columns.values()], names=[*slo.group_columns, *columns])


def _timeline(
    grid: Grid, slo: Slo, burns: _Burns, state: np.ndarray, ts_type: pa.DataType, steps: np.ndarray
) -> pa.Table:
    """Per group and chosen step: good, total, every window's burn rate and the state."""
    groups = grid.good.shape[0]
    repeat = np.repeat(np.arange(groups), len(steps))
    columns = {
        "ts": _timestamps(np.tile(grid.times()[steps], groups), ts_type),
        "good": pa.array(grid.good[:, steps].ravel().astype(np.int64)),
        "total": pa.array(grid.total[:, steps].ravel().astype(np.int64)),
        **{f"burn_{w}": pa.array(burns.burn[w][:, steps].ravel(), from_pandas=True) for w in slo.windows},
        "state": pa.DictionaryArray.from_arrays(pa.array(state[:, steps].ravel()), pa.array(STATES)),
    }
    keys = grid.keys.take(repeat).columns
    return pa.Table.from_arrays([*keys, *columns.values()], names=[*slo.group_columns, *columns])


def evaluate(
    series: pa.Table,
    slo: Slo,
    step_s: int = 60,
    until: object = None,
    groups_per_grid: int | None = None,
    timeline_at: np.ndarray | None = None,
) -> Evaluation:
    """Budget, burn rates, alert tiers and guards of `slo` over an SLI series (latency_series/events_query).

    `until` (a timestamp) ends the evaluation, e.g. now, so trailing absence is seen; by default it ends
    with the series' last step. Budget remaining is over the rolling period ending then (not the calendar).
    `timeline_at` (int64 ns evaluation times) asks for the timeline rows at those times too.
    """
    ts_type = series.column("ts").type
    windows = tuple(dict.fromkeys((*slo.windows, slo.window)))
    statuses, episodes, timelines = [], [], []
    for grid in grids(series, slo, step_s, until, groups_per_grid):
        burns = _burns(grid, slo, windows)
        conditions = _conditions(grid, slo, burns)
        state = _states(conditions)
        statuses.append(_status(grid, slo, burns, state, ts_type))
        episodes.append(_episodes(grid, slo, burns, conditions, ts_type))
        if timeline_at is not None:
            steps = np.flatnonzero(np.isin(grid.times(), timeline_at))
            timelines.append(_timeline(grid, slo, burns, state, ts_type, steps))
    status = pa.concat_tables(statuses).sort_by([("budget_remaining", "ascending")])
    timeline = pa.concat_tables(timelines) if timelines else None
    return Evaluation(status, pa.concat_tables(episodes).sort_by([("start", "ascending")]), timeline)


def burn_timeline(series: pa.Table, slo: Slo, step_s: int = 60, until: object = None) -> pa.Table:
    """Per group and step: good, total, every window's burn rate and the state; for plots and inspection."""
    ts_type = series.column("ts").type
    parts = []
    for grid in grids(series, slo, step_s, until, groups_per_grid=None):
        burns = _burns(grid, slo, slo.windows)
        state = _states(_conditions(grid, slo, burns))
        parts.append(_timeline(grid, slo, burns, state, ts_type, np.arange(grid.good.shape[1])))
    return pa.concat_tables(parts)
