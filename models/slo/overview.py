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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TS
from models.grouping import group_ids
from models.series import NS_PER_HOUR
from models.slo.burn import STATES, burn_rate
from models.slo.spec import Slo

ALERTS = ("ticket", "page")
# An SLO's state is its groups' worst, but an alert outranks an absent group: one silent controller must not hide
# a page on another.
_SLO_ORDER = ("ok", "insufficient_data", "absent", "ticket", "page")
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
        pa.field("slo", pa.string(), nullable=False),
        pa.field("as_of", TS, nullable=False),  # an hour end
        pa.field("objective", pa.float64(), nullable=False),  # percent
        pa.field("window", pa.string(), nullable=False),  # the rolling period: 7d, 28d or 30d
        pa.field("group_by", pa.string(), nullable=False),  # what a group is: controller, rack, ... or fleet
        pa.field("sli_text", pa.string(), nullable=False),  # what a good event is, in words
        pa.field("events", pa.int64(), nullable=False),  # over the rolling period ending at as_of
        pa.field("bad_events", pa.int64(), nullable=False),
        pa.field("sli", pa.float64()),  # null without events
        pa.field("budget_spent", pa.float64()),  # burn rate over the period: 1 = the whole budget, above = overspent
        pa.field("budget_remaining_pct", pa.float64()),  # 100 × (1 - spent), never below 0
        pa.field("over_budget", pa.bool_()),
        pa.field("groups", pa.int64(), nullable=False),
        pa.field("groups_over_budget", pa.int64(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # ok | insufficient_data | absent | ticket | page
        pa.field("alerting_groups", pa.int64(), nullable=False),
        pa.field("firing_since", TS),  # null unless state is ticket or page
        pa.field("resolved_at", TS),  # when the last alert ended; null while firing or if none in the data
        pa.field("tiers", pa.list_(_TIER)),
        pa.field("burning_groups", pa.list_(pa.string())),  # alerting first, then over budget, worst first
        pa.field("burning_group_count", pa.int64(), nullable=False),
    ]
)


def _grid(cells: np.ndarray, values: np.ndarray, shape: tuple[int, int], fill: float) -> np.ndarray:
    grid = np.full(shape, fill, np.float64)
    grid[cells] = values
    return grid


def _last_index(flags: np.ndarray) -> np.ndarray:
    """Per step, the last step at or before it where `flags` holds (-1 if none)."""
    return np.maximum.accumulate(np.where(flags, np.arange(flags.size), -1))


def _episode_bound(times: np.ndarray, low: int, high: int, pick: str) -> int | None:
    inside = times[(times > low) & (times <= high)]
    return int(getattr(inside, pick)()) if inside.size else None


def overview(slo: Slo, hours: pa.Table, episodes: pa.Table, as_of: np.ndarray) -> pa.Table:
    """OVERVIEW_SCHEMA rows of `slo` at each hour end in `as_of` (int64 ns).

    `hours`: its compliance rows (group_key, hour, events, bad_events, burn_<window>, state) from the rolling
    period before the first hour end on; `episodes`: its alert episodes (group_key, kind, start, end)."""
    period = slo.period_s * 1_000_000_000
    hour_ns = hours["hour"].cast(pa.int64()).to_numpy()
    start = min(int(hour_ns.min()) if hour_ns.size else int(as_of.min()), int(as_of.min()) - period)
    start -= start % NS_PER_HOUR
    steps = int((as_of.max() - start) // NS_PER_HOUR)
    groups = group_ids(hours, ["group_key"])
    keys = groups.keys["group_key"].to_numpy(zero_copy_only=False)
    shape = (groups.count, steps)
    step = (hour_ns - start) // NS_PER_HOUR
    cells = (groups.ids, step)
    events = _grid(cells, hours["events"].to_numpy(), shape, 0.0)
    bad = _grid(cells, hours["bad_events"].to_numpy(), shape, 0.0)
    rank = np.array([_SLO_ORDER.index(s) for s in STATES])
    states = pc.index_in(hours["state"].cast(pa.string()), pa.array(STATES)).to_numpy(zero_copy_only=False)
    state = _grid(cells, rank[states.astype(np.int64)], shape, -1).astype(np.int64)
    burns = {
        w: _grid(cells, hours[f"burn_{w}"].to_numpy(zero_copy_only=False), shape, np.nan)
        for w in {w for tier in slo.tiers for w in (tier.long, tier.short)}
    }
    running_events = np.concatenate([np.zeros((shape[0], 1)), np.cumsum(events, axis=1)], axis=1)
    running_bad = np.concatenate([np.zeros((shape[0], 1)), np.cumsum(bad, axis=1)], axis=1)
    alert_rank = min(_SLO_ORDER.index(a) for a in ALERTS)
    slo_state = state.max(axis=0, initial=-1)
    alerting = slo_state >= alert_rank
    last_calm = _last_index(~alerting)
    last_alert = _last_index(alerting)
    alerts = episodes.filter(pc.is_in(episodes["kind"], pa.array(ALERTS)))
    starts = alerts["start"].cast(pa.int64()).to_numpy()
    ends = alerts.filter(pc.is_valid(alerts["end"]))["end"].cast(pa.int64()).to_numpy()
    rows = []
    for t in as_of.tolist():
        end = (t - start) // NS_PER_HOUR  # steps before t
        begin = max(0, end - period // NS_PER_HOUR)
        group_events = running_events[:, end] - running_events[:, begin]
        group_bad = running_bad[:, end] - running_bad[:, begin]
        group_spent = burn_rate(group_bad, group_events, slo.error_budget)
        total, total_bad = float(group_events.sum()), float(group_bad.sum())
        spent = float(burn_rate(total_bad, total, slo.error_budget))
        now = end - 1
        firing = bool(alerting[now])
        since = resolved = None
        if firing:
            first = last_calm[now] + 1
            first_end = start + (int(first) + 1) * NS_PER_HOUR
            since = _episode_bound(starts, first_end - NS_PER_HOUR, first_end, "min") or first_end
        elif last_alert[now] >= 0:
            last_end = start + (int(last_alert[now]) + 1) * NS_PER_HOUR
            resolved = _episode_bound(ends, last_end, last_end + NS_PER_HOUR, "max") or (last_end + NS_PER_HOUR)
        group_alerting = state[:, now] >= alert_rank
        with np.errstate(invalid="ignore"):
            over = group_spent > 1
        tiers = []
        for tier in slo.tiers:
            long, short = burns[tier.long][:, now], burns[tier.short][:, now]
            pair = np.fmin(long, short)
            worst = int(np.nanargmax(pair)) if np.isfinite(pair).any() else None
            tiers.append(
                {
                    "severity": tier.severity,
                    "long": tier.long,
                    "short": tier.short,
                    "factor": tier.factor,
                    "group_key": None if worst is None else str(keys[worst]),
                    "long_burn": None if worst is None else float(long[worst]),
                    "short_burn": None if worst is None else float(short[worst]),
                    "above": worst is not None and bool(pair[worst] >= tier.factor * (1 - 1e-9)),
                }
            )
        burning = np.flatnonzero(group_alerting | over)
        order = np.lexsort((-np.nan_to_num(group_spent[burning], nan=-np.inf), ~group_alerting[burning]))
        rows.append(
            {
                "slo": slo.name,
                "as_of": t,
                "objective": slo.objective,
                "window": slo.window,
                "group_by": ", ".join(slo.group_by) or "fleet",
                "sli_text": slo.sli_text,
                "events": int(total),
                "bad_events": int(total_bad),
                "sli": 1 - total_bad / total if total > 0 else None,
                "budget_spent": spent if np.isfinite(spent) else None,
                "budget_remaining_pct": max(0.0, 100 * (1 - spent)) if np.isfinite(spent) else None,
                "over_budget": bool(spent > 1) if np.isfinite(spent) else None,
                "groups": int(np.count_nonzero(group_events > 0)),
                "groups_over_budget": int(np.count_nonzero(over)),
                "state": _SLO_ORDER[slo_state[now]] if slo_state[now] >= 0 else "absent",
                "alerting_groups": int(np.count_nonzero(group_alerting)),
                "firing_since": since,
                "resolved_at": resolved,
                "tiers": tiers,
                "burning_groups": [str(k) for k in keys[burning[order]][:BURNING_GROUPS_LISTED]],
                "burning_group_count": int(burning.size),
            }
        )
    return pa.Table.from_pylist(rows, schema=OVERVIEW_SCHEMA)
