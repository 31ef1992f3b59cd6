"""Vectorized time bookkeeping: sparse event windows onto a (time step x controller) grid, per-controller event
lookups, and cumulative counters that restart at each counter epoch.

The simulator keeps faults as sparse arrays of (controller, start, end) and turns them into dense per-interval
state only inside one chunk, so memory follows the chunk, never the simulated span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """One chunk's time steps: step j covers [t0 + j*step_s, t0 + (j+1)*step_s), seconds from the run start."""

    t0: float
    step_s: float
    steps: int

    @property
    def t_end(self) -> float:
        return self.t0 + self.steps * self.step_s

    def times(self) -> np.ndarray:
        return self.t0 + self.step_s * np.arange(self.steps)

    def _steps(self, t: np.ndarray) -> np.ndarray:
        # Clipped to just outside the chunk so that infinite ends ("never") stay representable.
        return np.clip((np.asarray(t, float) - self.t0) / self.step_s, -2.0, self.steps + 2.0)

    def step_of(self, t: np.ndarray) -> np.ndarray:
        """The step whose window contains t."""
        return np.floor(self._steps(t)).astype(np.int64)

    def first_snapshot_at_or_after(self, t: np.ndarray) -> np.ndarray:
        """The first step whose start time (its snapshot time) is >= t."""
        return np.ceil(self._steps(t)).astype(np.int64)


def expand_ranges(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For inclusive integer ranges [first_i, last_i], every (i, position) pair, without a Python loop."""
    lengths = np.maximum(np.asarray(last, np.int64) - np.asarray(first, np.int64) + 1, 0)
    owner = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.asarray(first, np.int64)[owner] + (np.arange(owner.size) - starts[owner])
    return owner, position


def window_steps(grid: Grid, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window index, step, seconds of overlap) for every step a window [start, end) overlaps."""
    keep = np.flatnonzero((start < grid.t_end) & (end > grid.t0))
    first = np.clip(grid.step_of(start[keep]), 0, grid.steps - 1)
    last = np.clip(grid.first_snapshot_at_or_after(end[keep]) - 1, 0, grid.steps - 1)
    owner, step = expand_ranges(first, last)
    window = keep[owner]
    step_start = grid.t0 + step * grid.step_s
    overlap = np.minimum(end[window], step_start + grid.step_s) - np.maximum(start[window], step_start)
    return window, step, np.maximum(overlap, 0.0)


def snapshot_steps(grid: Grid, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window index, step) for every step whose snapshot time t0 + j*step_s lies inside [start, end)."""
    first = np.clip(grid.first_snapshot_at_or_after(start), 0, grid.steps)
    last = np.clip(grid.first_snapshot_at_or_after(end) - 1, -1, grid.steps - 1)
    return expand_ranges(first, last)


def running_total(increments: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Cumulative sum over axis -2 (time). Adding whole time slices is several times faster than np.cumsum
    along a non-contiguous axis, and a chunk has few time steps."""
    total = increments if in_place else increments.copy()
    for step in range(1, total.shape[-2]):
        total[..., step, :] += total[..., step - 1, :]
    return total


def segmented_cumsum(
    increments: np.ndarray, restart: np.ndarray, carry: np.ndarray, in_place: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative values over axis -2 (time) that restart from 0 wherever `restart` is set.

    `increments` is (..., T, C); `restart` (T, C) marks the first step of a new counter epoch; `carry` (..., C)
    is the value at the end of the previous chunk. Returns the values and the carry for the next chunk.
    Restarts are rare, so only the controllers that have one pay for the segmentation. With in_place the
    increments array is overwritten by the values.
    """
    columns = np.flatnonzero(restart.any(axis=0))
    restarted_increments = increments[..., columns]
    values = running_total(increments, in_place)
    values += carry[..., None, :]
    if columns.size:
        cumulative = values[..., columns]
        before = cumulative - restarted_increments
        marker = np.where(restart[:, columns], np.arange(restart.shape[0])[:, None], -1)
        last_restart = np.maximum.accumulate(marker, axis=0)
        index = np.broadcast_to(np.maximum(last_restart, 0), cumulative.shape)
        base = np.where(last_restart >= 0, np.take_along_axis(before, index, axis=-2), 0)
        values[..., columns] = cumulative - base
    return values, values[..., -1, :].copy()


class ControllerEvents:
    """Sorted (controller, time) events answering "how many / which was the last, at or before t" in bulk."""

    def __init__(self, controller: np.ndarray, t: np.ndarray, span_s: float) -> None:
        self._stride = float(span_s) + 1e6
        keys = self._key(controller, np.asarray(t, np.float64))
        self.order = np.argsort(keys, kind="stable")
        self._keys = keys[self.order]
        self.controller = np.asarray(controller, np.int64)[self.order]
        self.t = np.asarray(t, np.float64)[self.order]

    def __len__(self) -> int:
        return self._keys.size

    def _key(self, controller: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.asarray(controller, np.float64) * self._stride + t

    def count_at_or_before(self, controller: np.ndarray, t: np.ndarray) -> np.ndarray:
        upto = np.searchsorted(self._keys, self._key(controller, t), side="right")
        first = np.searchsorted(self._keys, self._key(controller, -self._stride / 2), side="left")
        return upto - first

    def latest(self, controller: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Sorted position of each controller's last event at or before t, or -1 if it has none."""
        position = np.searchsorted(self._keys, self._key(controller, t), side="right") - 1
        if not self._keys.size:
            return position
        same = self.controller[np.maximum(position, 0)] == np.asarray(controller)
        return np.where((position >= 0) & same, position, -1)

    def next_after(self, controller: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Sorted position of each controller's first event strictly after t, or -1 if it has none."""
        position = np.searchsorted(self._keys, self._key(controller, t), side="right")
        if not self._keys.size:
            return np.full(position.shape, -1)
        clipped = np.minimum(position, self._keys.size - 1)
        same = (position < self._keys.size) & (self.controller[clipped] == np.asarray(controller))
        return np.where(same, clipped, -1)


def inside_windows(
    controller: np.ndarray, t: np.ndarray, windows: ControllerEvents, window_end: np.ndarray
) -> np.ndarray:
    """Whether each (controller, t) falls inside one of that controller's windows [start, end).

    `windows` indexes the window starts; `window_end` is in the order the windows were given.
    """
    latest = windows.latest(controller, t)
    if not len(windows):
        return np.zeros(np.shape(t), bool)
    end = np.asarray(window_end)[windows.order][np.maximum(latest, 0)]
    return (latest >= 0) & (t < end)
