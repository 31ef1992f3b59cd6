"""SLOs from one spec file: validation, SLI event series, burn rates, multiwindow multi-burn-rate alerts, budget.

Method (pipeline_patterns.md §4): an SLI is good/total events; error budget = 1 − objective; burn rate = error
ratio / budget. A tier fires when both its long and its short window burn at least its factor (the SRE
Workbook tables, as encoded by Sloth for 30d/7d and Pyrra for 28d). Guards: a tier whose long window holds
fewer than k / (factor · budget) events reports insufficient_data instead of firing (k = min_bad_events), and
a group with no events in the last `absent_after` is absent (unknown), never compliant.

Everything is computed on a dense (group × step) grid with cumulative sums, so every window of every group
costs two subtractions per step. A value stamped t covers the step [t − step, t): it uses only data before t.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from ingest.contract import LATENCY_OPS
from models.grouping import group_ids
from models.histogram import good_events
from models.rollup import floor_windows

_UNIT_S = {"m": 60, "h": 3600, "d": 86400}
PERIODS = ("7d", "28d", "30d")
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# Spec dimension -> column of the telemetry (controller, host) or of the joined inventory (rack, region, firmware).
DIMENSIONS = {
    "controller": "controller_id",
    "host": "host",
    "rack": "rack",
    "region": "region",
    "firmware": "firmware_version",
}
EVENT_TABLES = ("errors", "link")
STATES = ("ok", "insufficient_data", "ticket", "page", "absent")  # in rising priority
# A burn equal to the factor fires (the Workbook's ≥) even when 14.4 × 0.001 rounds below 0.0144.
_FACTOR_TOLERANCE = 1e-9
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# (group × step) cells evaluated at once: about 30 float64 matrices of this size are alive during evaluation.
_GRID_CELLS = 1 << 20


def duration_s(text: str) -> int:
    """'5m' → 300, '1h' → 3600, '3d' → 259200."""
    match = re.fullmatch(r"([1-9][0-9]*)([mhd])", str(text))
    if not match:
        raise ValueError(f"not a duration like 5m, 6h or 28d: {text!r}")
    return int(match[1]) * _UNIT_S[match[2]]


@dataclass(frozen=True)
class AlertTier:
    severity: str
    long: str
    short: str
    factor: float

    @property
    def name(self) -> str:
        return f"{self.long}/{self.short}"


# Budget share each tier spends before firing, in the sources' own terms: factor = share · period / long window.
ALERT_TIERS: dict[str, tuple[AlertTier, ...]] = {
    # slok/sloth internal/alert/windows/google-30d.yaml: 2%, 5%, 10%, 10% of the budget.
    "30d": (
        AlertTier("page", "1h", "5m", 14.4),
        AlertTier("page", "6h", "30m", 6.0),
        AlertTier("ticket", "1d", "2h", 3.0),
        AlertTier("ticket", "3d", "6h", 1.0),
    ),
    # pyrra-dev/pyrra slo/rules.go: windows scaled to the period, factors 14/7/2/1.
    "28d": (
        AlertTier("page", "1h", "5m", 14.0),
        AlertTier("page", "6h", "30m", 7.0),
        AlertTier("ticket", "1d", "2h", 2.0),
        AlertTier("ticket", "4d", "6h", 1.0),
    ),
    # slok/sloth examples/windows/7d.yaml: 8%, 12.5%, 20%, 42% of the budget.
    "7d": (
        AlertTier("page", "1h", "5m", 13.44),
        AlertTier("page", "6h", "30m", 3.5),
        AlertTier("ticket", "1d", "2h", 1.4),
        AlertTier("ticket", "3d", "6h", 0.98),
    ),
}


@dataclass(frozen=True)
class LatencySli:
    """Good = CXL accesses of `op` at or below `threshold_ns` (exact counters or bucket boundaries)."""

    op: str
    threshold_ns: int


@dataclass(frozen=True)
class EventsSli:
    """Ratio SLI over rows of a raw table: `total` selects valid events, `bad` the failed ones (DuckDB SQL)."""

    table: str
    total: str
    bad: str
    timestamp: str = "ts"


@dataclass(frozen=True)
class Slo:
    name: str
    objective: float  # percent, e.g. 99.9
    window: str
    sli: LatencySli | EventsSli
    group_by: tuple[str, ...] = ()
    description: str = ""
    page: bool = True
    ticket: bool = True
    min_bad_events: float = 3.0
    absent_after: str = "10m"
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def error_budget(self) -> float:
        return (100.0 - self.objective) / 100.0

    @property
    def period_s(self) -> int:
        return duration_s(self.window)

    @property
    def group_columns(self) -> tuple[str, ...]:
        return tuple(DIMENSIONS[d] for d in self.group_by)

    @property
    def tiers(self) -> tuple[AlertTier, ...]:
        enabled = {"page": self.page, "ticket": self.ticket}
        return tuple(t for t in ALERT_TIERS[self.window] if enabled[t.severity])

    @property
    def windows(self) -> tuple[str, ...]:
        """The standard burn windows plus every window a tier of this period uses, shortest first."""
        names = {*BURN_WINDOWS, *(w for t in ALERT_TIERS[self.window] for w in (t.long, t.short))}
        return tuple(sorted(names, key=duration_s))

    def min_events(self, tier: AlertTier) -> float:
        """Events the long window needs before `tier` may fire: k bad events alone must not reach the factor."""
        return self.min_bad_events / (tier.factor * self.error_budget)


# --------------------------------------------------------------------------------------------------------
# Spec loading and validation.
# --------------------------------------------------------------------------------------------------------


class SpecError(ValueError):
    """The SLO spec is invalid; the message names the file, the SLO and the field."""


_REQUIRED = object()


class _Fields:
    """Typed access to one mapping of the spec, rejecting unknown keys so that typos are caught."""

    def __init__(self, value: object, where: str, allowed: tuple[str, ...]):
        if not isinstance(value, Mapping):
            raise SpecError(f"{where}: must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - set(allowed))
        if unknown:
            raise SpecError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(allowed)})")
        self.value, self.where = value, where

    def error(self, name: str, problem: str) -> SpecError:
        return SpecError(f"{self.where}: field '{name}': {problem}")

    def get(self, name: str, kinds: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        if name not in self.value:
            if default is _REQUIRED:
                raise self.error(name, "is required")
            return default
        value = self.value[name]
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise self.error(name, f"must be {expected}, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def duration(self, name: str, default: str) -> str:
        value = self.get(name, str, default)
        try:
            duration_s(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        return value


def _parse_sli(value: object, where: str) -> LatencySli | EventsSli:
    fields = _Fields(value, where, ("latency", "events"))
    if len(fields.value) != 1:
        raise SpecError(f"{where}: give exactly one of 'latency' or 'events'")
    if "latency" in fields.value:
        latency = _Fields(fields.value["latency"], f"{where}.latency", ("op", "threshold_ns"))
        threshold = latency.get("threshold_ns", int)
        if threshold < 1 or threshold & (threshold - 1):
            raise latency.error(
                "threshold_ns",
                f"must be a power of two (an exact histogram bucket boundary, like 512, 1024, 2048), got {threshold}",
            )
        return LatencySli(latency.choice("op", LATENCY_OPS), threshold)
    events = _Fields(fields.value["events"], f"{where}.events", ("table", "total", "bad", "timestamp"))
    predicates = {name: events.get(name, str).strip() for name in ("total", "bad")}
    for name, text in predicates.items():
        if not text or ";" in text:
            raise events.error(name, "must be one non-empty SQL boolean expression")
    return EventsSli(events.choice("table", EVENT_TABLES), **predicates, timestamp=events.get("timestamp", str, "ts"))


def _parse_slo(value: object, source: str, index: int) -> Slo:
    allowed = ("name", "description", "objective", "window", "group_by", "sli", "alerting", "labels")
    named = isinstance(value, Mapping) and isinstance(value.get("name"), str)
    fields = _Fields(value, f"{source}: SLO {value['name']!r}" if named else f"{source}: slos[{index}]", allowed)
    name = fields.get("name", str)
    if not _NAME.match(name):
        raise fields.error("name", f"must be lower-case letters, digits and dashes, got {name!r}")
    objective = fields.get("objective", (int, float))
    if not 0 < objective < 100 or not math.isfinite(objective):
        raise fields.error("objective", f"must be a percentage strictly between 0 and 100, got {objective}")
    group_by = fields.get("group_by", list, [])
    for dimension in group_by:
        if dimension not in DIMENSIONS:
            raise fields.error("group_by", f"unknown dimension {dimension!r} (allowed: {', '.join(DIMENSIONS)})")
    if len(set(group_by)) != len(group_by):
        raise fields.error("group_by", f"lists a dimension twice: {group_by}")
    alerting = _Fields(
        fields.get("alerting", Mapping, {}),
        f"{fields.where}: alerting",
        ("page", "ticket", "min_bad_events", "absent_after"),
    )
    min_bad = alerting.get("min_bad_events", (int, float), 3)
    if not min_bad > 0:
        raise alerting.error("min_bad_events", f"must be positive, got {min_bad}")
    labels = fields.get("labels", Mapping, {})
    return Slo(
        name=name,
        objective=float(objective),
        window=fields.choice("window", PERIODS),
        sli=_parse_sli(fields.get("sli", Mapping), f"{fields.where}: sli"),
        group_by=tuple(group_by),
        description=fields.get("description", str, ""),
        page=alerting.get("page", bool, True),
        ticket=alerting.get("ticket", bool, True),
        min_bad_events=float(min_bad),
        absent_after=alerting.duration("absent_after", "10m"),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def parse_slos(document: object, source: str = "SLO spec") -> tuple[Slo, ...]:
    """Validate a parsed spec document; SpecError names the source, the SLO and the field on any problem."""
    top = _Fields(document, source, ("version", "service", "slos"))
    if top.get("version", int) != 1:
        raise top.error("version", "only version 1 is known")
    top.get("service", str)
    entries = top.get("slos", list)
    if not entries:
        raise top.error("slos", "lists no SLO")
    slos = tuple(_parse_slo(entry, source, i) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for slo in slos:
        if slo.name in seen:
            raise SpecError(f"{source}: SLO name {slo.name!r} is used twice")
        seen.add(slo.name)
    return slos


def load_slos(path: str | Path) -> tuple[Slo, ...]:
    """Read and validate the spec file (slos.yaml at the repository root)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_slos(document, str(path))


# --------------------------------------------------------------------------------------------------------
# SLI event series: one row per group and step with good and total event counts.
# --------------------------------------------------------------------------------------------------------


def _require_columns(table: pa.Table, slo: Slo, columns: tuple[str, ...], what: str) -> None:
    for column in columns:
        if column not in table.column_names:
            hint = " (join the inventory: models.rollup.with_inventory)" if column in DIMENSIONS.values() else ""
            raise ValueError(f"SLO {slo.name!r}: the {what} has no column {column!r}{hint}")


def latency_series(latency: pa.Table, slo: Slo, step_s: int = 60) -> pa.Table:
    """Good/total CXL accesses per group and step from latency rows (raw windows or finer rollups).

    Columns: the SLO's group columns, ts (start of the step), good, total (int64). Local-DRAM baseline rows
    are excluded: they are not served by a controller.
    """
    if not isinstance(slo.sli, LatencySli):
        raise ValueError(f"SLO {slo.name!r} is not a latency SLO")
    needed = ("memory_tier", "op", "window_start", "window_s", "count", "over_slo", "slo_threshold_ns")
    _require_columns(latency, slo, (*needed, *slo.group_columns), "latency table")
    chosen = pc.and_(pc.equal(latency.column("memory_tier"), "cxl"), pc.equal(latency.column("op"), slo.sli.op))
    # Count good events on every row and filter only the narrow columns: filtering the bucket lists would
    # cost more than counting them.
    series = pa.table(
        {
            **{c: latency.column(c) for c in slo.group_columns},
            "ts": floor_windows(latency, step_s),
            "good": good_events(latency, slo.sli.threshold_ns),
            "total": latency.column("count").cast(pa.int64()),
        }
    ).filter(chosen)
    summed = series.group_by([*slo.group_columns, "ts"], use_threads=False).aggregate(
        [("good", "sum"), ("total", "sum")]
    )
    return summed.rename_columns([*slo.group_columns, "ts", "good", "total"])


def events_query(slo: Slo, relation: str, inventory: str, step_s: int = 60) -> str:
    """DuckDB SQL for an events SLO's series (same columns as latency_series) over `relation`.

    The predicates see only the event table's columns; group columns come from `inventory` (one row per
    controller, e.g. the latest inventory row), joined by controller_id.
    """
    if not isinstance(slo.sli, EventsSli):
        raise ValueError(f"SLO {slo.name!r} is not an events SLO")
    groups = "".join(f"i.{c}, " for c in slo.group_columns)
    return (
        f"WITH events AS (SELECT controller_id, {slo.sli.timestamp} AS ts, coalesce(({slo.sli.bad}), false) AS bad"
        f" FROM {relation} WHERE {slo.sli.total})\n"
        f"SELECT {groups}time_bucket(INTERVAL '{int(step_s)} seconds', e.ts) AS ts,"
        " (count(*) - count(*) FILTER (WHERE e.bad))::BIGINT AS good, count(*)::BIGINT AS total\n"
        f"FROM events e JOIN {inventory} i USING (controller_id) GROUP BY ALL"
    )


# --------------------------------------------------------------------------------------------------------
# Burn rates, alerts and budget on a dense (group × step) grid.
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    keys: pa.Table  # one row per group
    start_ns: int
    step_ns: int
    good: np.ndarray  # (groups, steps)
    total: np.ndarray

    @cached_property
    def running_total(self) -> np.ndarray:
        return _running(self.total)

    @cached_property
    def running_bad(self) -> np.ndarray:
        return _running(self.total - self.good)

    def trailing(self, running: np.ndarray, window: str) -> np.ndarray:
        """Sum over the trailing window ending at each step (shorter at the start of the data), from a
        running sum: two subtractions per step whatever the window."""
        steps = max(1, duration_s(window) * 1_000_000_000 // self.step_ns)
        total = running[:, 1:].copy()
        total[:, steps:] -= running[:, 1:-steps]
        return total

    def times(self) -> np.ndarray:
        """Evaluation time of each step: its end."""
        return self.start_ns + self.step_ns * np.arange(1, self.good.shape[1] + 1)


def _grids(series: pa.Table, slo: Slo, step_s: int, until: object, groups_per_grid: int | None) -> Iterator[_Grid]:
    """The series laid out on a step grid from its first step to `until` (default: its last step), in slices
    of `groups_per_grid` groups (default: as many as fit _GRID_CELLS cells) so that memory stays bounded."""
    _require_columns(series, slo, (*slo.group_columns, "ts", "good", "total"), "SLI series")
    if any(duration_s(w) % step_s for w in (*slo.windows, slo.absent_after)):
        raise ValueError(f"step {step_s} s does not divide every window of SLO {slo.name!r}")
    step_ns = step_s * 1_000_000_000
    ts = series.column("ts").cast(pa.int64()).to_numpy()
    if not ts.size:
        raise ValueError(f"SLO {slo.name!r}: the SLI series is empty")
    start = int(ts.min()) - int(ts.min()) % step_ns
    end = ts.max() + 1 if until is None else pa.scalar(until, series.column("ts").type).cast(pa.int64()).as_py()
    steps = -(-(end - start) // step_ns)
    if steps <= 0:
        raise ValueError(f"SLO {slo.name!r}: evaluation end {until} is before the series starts")
    groups = group_ids(series, slo.group_columns)
    # Rows in group order; this frame lives as long as the evaluation, so it keeps only what the slices need.
    order, keys, count = groups.order, groups.keys, groups.count
    sorted_ids = groups.ids[order]
    del groups
    step_of_row = (ts[order] - start) // step_ns
    del ts
    good = series.column("good").to_numpy()[order]
    total = series.column("total").to_numpy()[order]
    del order
    per_grid = groups_per_grid or max(1, _GRID_CELLS // steps)
    for first in range(0, count, per_grid):
        last = min(count, first + per_grid)
        rows = slice(*np.searchsorted(sorted_ids, [first, last]))
        take = step_of_row[rows] < steps
        cells = ((sorted_ids[rows] - first) * steps + step_of_row[rows])[take]
        shape = (last - first, steps)
        yield _Grid(
            keys.slice(first, last - first),
            start,
            step_ns,
            _lay_out(cells, good[rows][take], shape),
            _lay_out(cells, total[rows][take], shape),
        )


def _running(values: np.ndarray) -> np.ndarray:
    """Cumulative sums along time with a leading zero column."""
    running = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=running[:, 1:])
    return running


def _lay_out(cells: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.bincount(cells, weights=values, minlength=shape[0] * shape[1]).reshape(shape)


@dataclass(frozen=True)
class _Burns:
    """Per window: events, bad events and burn rate (NaN without events) at every step of a grid."""

    events: dict[str, np.ndarray]
    bad: dict[str, np.ndarray]
    burn: dict[str, np.ndarray]


def _burns(grid: _Grid, slo: Slo, windows: tuple[str, ...]) -> _Burns:
    events, bad, burn = {}, {}, {}
    for window in windows:
        events[window] = grid.trailing(grid.running_total, window)
        bad[window] = grid.trailing(grid.running_bad, window)
        with np.errstate(invalid="ignore", divide="ignore"):
            burn[window] = np.where(events[window] > 0, bad[window] / events[window] / slo.error_budget, np.nan)
    return _Burns(events, bad, burn)


def _conditions(grid: _Grid, slo: Slo, burns: _Burns) -> dict[tuple[str, AlertTier | None], np.ndarray]:
    """Boolean (group × step) matrices: each tier firing, each tier held back by the minimum-events guard,
    and absence."""
    matrices: dict[tuple[str, AlertTier | None], np.ndarray] = {}
    for tier in slo.tiers:
        threshold = tier.factor * (1 - _FACTOR_TOLERANCE)
        with np.errstate(invalid="ignore"):
            burning = (burns.burn[tier.long] >= threshold) & (burns.burn[tier.short] >= threshold)
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


def _episodes(grid: _Grid, slo: Slo, burns: _Burns, conditions: dict, ts_type: pa.DataType) -> pa.Table:
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
    while it lasts; times are evaluation times (the end of the step)."""

    status: pa.Table
    episodes: pa.Table


def _status(grid: _Grid, slo: Slo, burns: _Burns, state: np.ndarray, ts_type: pa.DataType) -> pa.Table:
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


def evaluate(
    series: pa.Table, slo: Slo, step_s: int = 60, until: object = None, groups_per_grid: int | None = None
) -> Evaluation:
    """Budget, burn rates, alert tiers and guards of `slo` over an SLI series (latency_series/events_query).

    `until` (a timestamp) ends the evaluation, e.g. now, so trailing absence is seen; by default it ends
    with the series' last step. Budget remaining is over the rolling period ending then (not the calendar).
    """
    ts_type = series.column("ts").type
    windows = tuple(dict.fromkeys((*slo.windows, slo.window)))
    statuses, episodes = [], []
    for grid in _grids(series, slo, step_s, until, groups_per_grid):
        burns = _burns(grid, slo, windows)
        conditions = _conditions(grid, slo, burns)
        statuses.append(_status(grid, slo, burns, _states(conditions), ts_type))
        episodes.append(_episodes(grid, slo, burns, conditions, ts_type))
    status = pa.concat_tables(statuses).sort_by([("budget_remaining", "ascending")])
    return Evaluation(status, pa.concat_tables(episodes).sort_by([("start", "ascending")]))


def burn_timeline(series: pa.Table, slo: Slo, step_s: int = 60, until: object = None) -> pa.Table:
    """Per group and step: good, total, every window's burn rate and the state; for plots and inspection."""
    ts_type = series.column("ts").type
    parts = []
    for grid in _grids(series, slo, step_s, until, groups_per_grid=None):
        burns = _burns(grid, slo, slo.windows)
        state = _states(_conditions(grid, slo, burns))
        groups, steps = grid.good.shape
        repeat = np.repeat(np.arange(groups), steps)
        columns = {
            "ts": _timestamps(np.tile(grid.times(), groups), ts_type),
            "good": pa.array(grid.good.ravel().astype(np.int64)),
            "total": pa.array(grid.total.ravel().astype(np.int64)),
            **{f"burn_{w}": pa.array(burns.burn[w].ravel(), from_pandas=True) for w in slo.windows},
            "state": pa.DictionaryArray.from_arrays(pa.array(state.ravel()), pa.array(STATES)),
        }
        keys = grid.keys.take(repeat).columns
        parts.append(pa.Table.from_arrays([*keys, *columns.values()], names=[*slo.group_columns, *columns]))
    return pa.concat_tables(parts)
