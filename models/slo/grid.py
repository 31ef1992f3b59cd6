"""An SLI series laid out on a dense (group × step) grid with running sums, so that any trailing window of any
group costs two subtractions per step. A value stamped t covers the step [t − step, t): it uses only data before t.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from models.grouping import group_ids
from models.slo.sli import require_columns
from models.slo.spec import Slo, duration_s

# (group × step) cells evaluated at once: about 30 float64 matrices of this size are alive during evaluation.
GRID_CELLS = 1 << 20


@dataclass(frozen=True)
class Grid:
    """Good and total events of a slice of groups, one row per group and one column per step."""

    keys: pa.Table  # one row per group
    start_ns: int
    step_ns: int
    good: np.ndarray  # (groups, steps)
    total: np.ndarray

    @cached_property
    def running_total(self) -> np.ndarray:
        return _running_sums(self.total)

    @cached_property
    def running_bad(self) -> np.ndarray:
        return _running_sums(self.total - self.good)

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


def grids(series: pa.Table, slo: Slo, step_s: int, until: object, groups_per_grid: int | None) -> Iterator[Grid]:
    """The series laid out on a step grid from its first step to `until` (default: its last step), in slices
    of `groups_per_grid` groups (default: as many as fit GRID_CELLS cells) so that memory stays bounded."""
    require_columns(series, slo, (*slo.group_columns, "ts", "good", "total"), "SLI series")
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
    per_grid = groups_per_grid or max(1, GRID_CELLS // steps)
    for first in range(0, count, per_grid):
        last = min(count, first + per_grid)
        rows = slice(*np.searchsorted(sorted_ids, [first, last]))
        take = step_of_row[rows] < steps
        cells = ((sorted_ids[rows] - first) * steps + step_of_row[rows])[take]
        shape = (last - first, steps)
        yield Grid(
            keys.slice(first, last - first),
            start,
            step_ns,
            _lay_out(cells, good[rows][take], shape),
            _lay_out(cells, total[rows][take], shape),
        )


def _running_sums(values: np.ndarray) -> np.ndarray:
    """Cumulative sums along time with a leading zero column."""
    running = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=running[:, 1:])
    return running


def _lay_out(cells: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.bincount(cells, weights=values, minlength=shape[0] * shape[1]).reshape(shape)
