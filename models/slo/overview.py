"""The SLO overview: per SLO at each hour end, what Grafana SLO, Sloth and Pyrra show on their first page.

From the hourly compliance rows of one SLO (per group: events, bad events, the burn rates of every window and the
alert state at the end of the hour) and its alert episodes: the SLI and the error budget over the SLO's rolling
period (pooled over its groups: summed counts, never an average of ratios), the groups over budget, the alert
state with "firing since" and "resolved at", each multiwindow pair's burn rates against its factor (for the group
that burns that pair fastest), and the groups burning the SLO. The evaluation's step is five minutes but the
compliance rows hold hour ends, so states change at hour ends; an episode's own start and end refine "since" and
"resolved at" to its step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TS, described
from models.grouping import group_ids
from models.series import NS_PER_HOUR
from models.slo.burn import STATES, burn_rate, reaches
from models.slo.spec import Slo

ALERTS = ("ticket", "page")
# An SLO's state is its groups' worst, but an alert outranks an absent group: one silent controller must not hide
# a page on another.
_SLO_ORDER = ("ok", "insufficient_data", "absent", "ticket", "page")
_ALERT_RANK = min(_SLO_ORDER.index(alert) for alert in ALERTS)
BURNING_GROUPS_LISTED = 20
_TIER = pa.struct(
    [
        pa.field("severity", pa.string()),
        pa.field("long", pa.string()),
        pa.field("short", pa.string()),
        pa.field("factor", pa.float64()),
        pa.field("group_key", pa.string()),  # the group burning this pair fastest (the higher of its two burns)
        pa.field("long_burn", pa.float64()),
        pa.field("short_burn", pa.float64()),
        pa.field("above", pa.bool_()),  # both burns at or above the factor (the tier fires unless held back)
    ]
)
OVERVIEW_SCHEMA = pa.schema(
    [
        described("slo", pa.string(), "the SLO's name (slos.yaml)", nullable=False),
        described("as_of", TS, "the hour end this row describes (UTC)", nullable=False),
        described("objective", pa.float64(), "target share of good events, percent", nullable=False),
        described("window", pa.string(), "the rolling period of the error budget: 7d, 28d or 30d", nullable=False),
        described("group_by", pa.string(), "what a group is: controller, rack, ... or fleet", nullable=False),
        described("sli_text", pa.string(), "what a good event is, in words", nullable=False),
        described("events", pa.int64(), "events over the rolling period ending at as_of", nullable=False),
        described("bad_events", pa.int64(), "bad events over the rolling period ending at as_of", nullable=False),
        described("sli", pa.float64(), "good events / events over the period; null without events"),
        described(
            "budget_spent",
            pa.float64(),
            "share of the error budget spent over the period: 1 = all of it, above 1 = overspent",
        ),
        described(
            "budget_remaining_pct",
            pa.float64(),
            "percent of the error budget left, 100 x (1 - budget_spent), never below 0",
        ),
        described("over_budget", pa.bool_(), "true when the period's budget is overspent"),
        described("groups", pa.int64(), "groups the SLO has", nullable=False),
        described(
            "groups_over_budget", pa.int64(), "groups whose own budget over the period is overspent", nullable=False
        ),
        described(
            "state", pa.string(), "the SLO's alert state: ok, insufficient_data, absent, ticket or page", nullable=False
        ),
        described("alerting_groups", pa.int64(), "groups in ticket or page state at as_of", nullable=False),
        described(
            "firing_since", TS, "when the alert firing at as_of began (UTC); null unless state is ticket or page"
        ),
        described("resolved_at", TS, "when the last alert ended (UTC); null while firing or if none in the data"),
        described(
            "tiers",
            pa.list_(_TIER),
            "each multiwindow burn pair: severity, windows, threshold, the group burning it fastest, its two burns",
        ),
        described(
            "burning_groups",
            pa.list_(pa.string()),
            "groups burning the SLO: alerting first, then over budget, worst first (the first ones)",
        ),
        described("burning_group_count", pa.int64(), "how many groups are alerting or over budget", nullable=False),
    ]
)


@dataclass(frozen=True)
class _Hours:
    """One SLO's compliance rows on an hourly (group × step) grid from `start`: events and bad events over the
    whole history (for rolling budgets), states (for alert runs), burns only from `recent` on (for the pairs)."""

    start: int  # ns, the first step's start
    keys: np.ndarray  # group key per row of the grids
    running_events: np.ndarray  # (groups, steps + 1) cumulative sums with a leading 0
    running_bad: np.ndarray
    state: np.ndarray  # (groups, steps): index into _SLO_ORDER at each hour end, -1 without a row
    recent: int  # first step of `burns`
    burns: dict[str, np.ndarray]  # window -> (groups, steps - recent), NaN without a row

    def step_of(self, as_of: int) -> int:
        """The number of steps before hour end `as_of`: the grids' column of its hour is one less."""
        return (as_of - self.start) // NS_PER_HOUR


def _lay_out(cells: tuple[np.ndarray, np.ndarray], values: np.ndarray, shape: tuple[int, int], fill: float | int):
    """Values at their (group, step) cells; float grids for counts and burns, int8 for state indices."""
    grid = np.full(shape, fill, np.float64 if isinstance(fill, float) else np.int8)
    grid[cells] = values
    return grid


def _running(grid: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((grid.shape[0], 1)), np.cumsum(grid, axis=1)], axis=1)


def _hours(slo: Slo, hours: pa.Table, as_of: np.ndarray) -> _Hours:
    hour_ns = hours["hour"].cast(pa.int64()).to_numpy()
    first = int(as_of.min()) - slo.period_s * 1_000_000_000
    start = min(int(hour_ns.min()) if hour_ns.size else first, first)
    start -= start % NS_PER_HOUR
    groups = group_ids(hours, ["group_key"])
    shape = (groups.count, int((as_of.max() - start) // NS_PER_HOUR))
    cells = (groups.ids, (hour_ns - start) // NS_PER_HOUR)
    rank = np.array([_SLO_ORDER.index(s) for s in STATES], np.int8)
    states = pc.index_in(hours["state"].cast(pa.string()), pa.array(STATES)).to_numpy(zero_copy_only=False)
    recent = int((as_of.min() - start) // NS_PER_HOUR) - 1
    near = cells[1] >= recent
    near_cells = (cells[0][near], cells[1][near] - recent)
    near_shape = (shape[0], shape[1] - recent)
    windows = {w for tier in slo.tiers for w in (tier.long, tier.short)}
    return _Hours(
        start=start,
        keys=groups.keys["group_key"].to_numpy(zero_copy_only=False),
        running_events=_running(_lay_out(cells, hours["events"].to_numpy(), shape, 0.0)),
        running_bad=_running(_lay_out(cells, hours["bad_events"].to_numpy(), shape, 0.0)),
        state=_lay_out(cells, rank[states.astype(np.int64)], shape, -1),
        recent=recent,
        burns={
            w: _lay_out(near_cells, hours[f"burn_{w}"].to_numpy(zero_copy_only=False)[near], near_shape, np.nan)
            for w in windows
        },
    )


def _within(times: np.ndarray, low: int, high: int, pick: str) -> int | None:
    inside = times[(times > low) & (times <= high)]
    return int(getattr(inside, pick)()) if inside.size else None


@dataclass(frozen=True)
class _Alerts:
    """When the SLO alerted (any group in ticket or page at an hour end) and its alert episodes' starts and ends:
    an hour end says that an alert held, an episode when within the hour it began or ended."""

    alerting: np.ndarray  # per step
    last_calm: np.ndarray  # per step, the last step at or before it without an alert (-1: none)
    last_alert: np.ndarray  # per step, the last step at or before it with an alert (-1: none)
    starts: np.ndarray  # ns
    ends: np.ndarray  # ns, of the episodes that ended

    @classmethod
    def of(cls, state: np.ndarray, episodes: pa.Table) -> _Alerts:
        alerting = state.max(axis=0, initial=-1) >= _ALERT_RANK
        steps = np.arange(alerting.size)
        alerts = episodes.filter(pc.is_in(episodes["kind"], pa.array(ALERTS)))
        return cls(
            alerting,
            np.maximum.accumulate(np.where(alerting, -1, steps)),
            np.maximum.accumulate(np.where(alerting, steps, -1)),
            alerts["start"].cast(pa.int64()).to_numpy(),
            alerts.filter(pc.is_valid(alerts["end"]))["end"].cast(pa.int64()).to_numpy(),
        )

    def since_and_resolved(self, hours: _Hours, now: int) -> tuple[int | None, int | None]:
        """(firing since, resolved at) at the end of step `now`: the start of the alert run that holds then, or
        the end of the last one."""
        if self.alerting[now]:
            first_end = hours.start + (int(self.last_calm[now]) + 2) * NS_PER_HOUR
            return _within(self.starts, first_end - NS_PER_HOUR, first_end, "min") or first_end, None
        if self.last_alert[now] < 0:
            return None, None
        last_end = hours.start + (int(self.last_alert[now]) + 1) * NS_PER_HOUR
        return None, _within(self.ends, last_end, last_end + NS_PER_HOUR, "max") or last_end + NS_PER_HOUR


def _tiers(slo: Slo, hours: _Hours, now: int) -> list[dict]:
    """Each multiwindow pair at the end of step `now`, for the group whose lower burn of the two is highest."""
    tiers = []
    for tier in slo.tiers:
        long, short = (hours.burns[w][:, now - hours.recent] for w in (tier.long, tier.short))
        pair = np.fmin(long, short)
        worst = int(np.nanargmax(pair)) if np.isfinite(pair).any() else None
        found = worst is not None
        tiers.append(
            {
                "severity": tier.severity,
                "long": tier.long,
                "short": tier.short,
                "factor": tier.factor,
                "group_key": str(hours.keys[worst]) if found else None,
                "long_burn": float(long[worst]) if found else None,
                "short_burn": float(short[worst]) if found else None,
                "above": found and bool(reaches(pair[worst], tier.factor)),
            }
        )
    return tiers


def _row(slo: Slo, hours: _Hours, alerts: _Alerts, as_of: int) -> dict:
    end = hours.step_of(as_of)
    begin = max(0, end - slo.period_s // 3600)
    group_events = hours.running_events[:, end] - hours.running_events[:, begin]
    group_bad = hours.running_bad[:, end] - hours.running_bad[:, begin]
    group_spent = burn_rate(group_bad, group_events, slo.error_budget)
    total, total_bad = float(group_events.sum()), float(group_bad.sum())
    spent = float(burn_rate(total_bad, total, slo.error_budget))
    known = bool(np.isfinite(spent))
    now = end - 1
    state = hours.state[:, now]
    group_alerting = state >= _ALERT_RANK
    over = np.nan_to_num(group_spent) > 1
    burning = np.flatnonzero(group_alerting | over)
    order = np.lexsort((-np.nan_to_num(group_spent[burning], nan=-np.inf), ~group_alerting[burning]))
    since, resolved = alerts.since_and_resolved(hours, now)
    worst = int(state.max(initial=-1))
    return {
        "slo": slo.name,
        "as_of": as_of,
        "objective": slo.objective,
        "window": slo.window,
        "group_by": ", ".join(slo.group_by) or "fleet",
        "sli_text": slo.sli_text,
        "events": int(total),
        "bad_events": int(total_bad),
        "sli": 1 - total_bad / total if total > 0 else None,
        "budget_spent": spent if known else None,
        "budget_remaining_pct": max(0.0, 100 * (1 - spent)) if known else None,
        "over_budget": spent > 1 if known else None,
        "groups": int(np.count_nonzero(group_events > 0)),
        "groups_over_budget": int(np.count_nonzero(over)),
        "state": _SLO_ORDER[worst] if worst >= 0 else "absent",
        "alerting_groups": int(np.count_nonzero(group_alerting)),
        "firing_since": since,
        "resolved_at": resolved,
        "tiers": _tiers(slo, hours, now),
        "burning_groups": [str(k) for k in hours.keys[burning[order]][:BURNING_GROUPS_LISTED]],
        "burning_group_count": int(burning.size),
    }


def overview(slo: Slo, hours: pa.Table, episodes: pa.Table, as_of: np.ndarray) -> pa.Table:
    """OVERVIEW_SCHEMA rows of `slo` at each hour end in `as_of` (int64 ns).

    `hours`: its compliance rows (group_key, hour, events, bad_events, burn_<window>, state) from the rolling
    period before the first hour end on; `episodes`: its alert episodes (group_key, kind, start, end)."""
    grid = _hours(slo, hours, as_of)
    alerts = _Alerts.of(grid.state, episodes)
    return pa.Table.from_pylist([_row(slo, grid, alerts, t) for t in as_of.tolist()], schema=OVERVIEW_SCHEMA)
