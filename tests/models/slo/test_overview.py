"""The SLO overview from hand-built compliance rows: budget over the rolling period pooled from summed counts,
the groups over budget, "firing since" and "resolved at" refined by the episodes, and each pair's burns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from ingest.contract import TS
from models.slo.overview import overview
from models.slo.spec import BURN_WINDOWS, parse_slos

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 200
EVENTS = 1000
STORM = range(189, 195)  # rows of these hours are page at their end: alerting at hour ends 190 h .. 195 h
(SLO,) = parse_slos(
    {
        "version": 1,
        "service": "t",
        "slos": [
            {
                "name": "rack-reads",
                "objective": 99.0,
                "window": "7d",
                "group_by": ["rack"],
                "sli": {"latency": {"op": "read", "threshold_ns": 1024}},
            }
        ],
    }
)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def bad_of(group: str, hour: int) -> int:
    return 0 if group == "r1" else (500 if hour in STORM else 5)


def compliance() -> pa.Table:
    rows = []
    for group in ("r1", "r2"):
        for hour in range(HOURS):
            storm = group == "r2" and hour in STORM
            rows.append(
                {
                    "group_key": group,
                    "hour": at(hour),
                    "events": EVENTS,
                    "bad_events": bad_of(group, hour),
                    **{f"burn_{w}": (60.0 if w == "5m" else 50.0) if storm else 0.5 for w in BURN_WINDOWS},
                    "state": "page" if storm else "ok",
                }
            )
    return pa.Table.from_pylist(rows).set_column(1, "hour", pa.array([r["hour"] for r in rows], TS))


EPISODES = pa.table(
    {
        "group_key": ["r2", "r2"],
        "kind": ["page", "insufficient_data"],
        "start": pa.array([at(189 + 35 / 60), at(150)], TS),
        "end": pa.array([at(195 + 10 / 60), None], TS),
    }
)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def test_budget_state_since_and_resolved():
    ends = np.array([ns(at(193)), ns(at(HOURS))], np.int64)
    firing, later = overview(SLO, compliance(), EPISODES, ends).to_pylist()

    assert firing["state"] == "page" and firing["alerting_groups"] == 1
    assert firing["firing_since"] == at(189 + 35 / 60) and firing["resolved_at"] is None
    assert firing["burning_groups"] == ["r2"]
    page_fast = firing["tiers"][0]
    assert (page_fast["long"], page_fast["short"], page_fast["factor"]) == ("1h", "5m", 13.44)
    assert (page_fast["group_key"], page_fast["long_burn"], page_fast["short_burn"], page_fast["above"]) == (
        "r2",
        50.0,
        60.0,
        True,
    )

    hours = range(HOURS - 7 * 24, HOURS)  # the rolling 7 days before the last hour end
    bad = {g: sum(bad_of(g, h) for h in hours) for g in ("r1", "r2")}
    events = 2 * EVENTS * len(hours)
    assert later["state"] == "ok" and later["firing_since"] is None
    assert later["resolved_at"] == at(195 + 10 / 60)
    assert (later["events"], later["bad_events"]) == (events, sum(bad.values()))
    assert later["sli"] == pytest.approx(1 - sum(bad.values()) / events)
    spent = sum(bad.values()) / events / SLO.error_budget
    assert spent > 1 and later["budget_spent"] == pytest.approx(spent)
    assert later["over_budget"] is True and later["budget_remaining_pct"] == 0.0
    assert (later["groups"], later["groups_over_budget"], later["burning_groups"]) == (2, 1, ["r2"])
    assert later["tiers"][0]["above"] is False
    assert (later["window"], later["group_by"]) == ("7d", "rack") and later["sli_text"] == "CXL reads within 1,024 ns"


def test_without_an_episode_the_hour_end_is_the_bound():
    ends = np.array([ns(at(193)), ns(at(HOURS))], np.int64)
    firing, later = overview(SLO, compliance(), EPISODES.slice(1), ends).to_pylist()
    assert firing["firing_since"] == at(190) and later["resolved_at"] == at(196)


def test_a_budget_partly_spent_reads_as_a_percentage():
    quiet = compliance().filter(pa.compute.equal(compliance()["group_key"], "r1"))
    quiet = quiet.set_column(3, "bad_events", pa.array([2] * quiet.num_rows, pa.int64()))
    (row,) = overview(SLO, quiet, EPISODES.slice(0, 0), np.array([ns(at(HOURS))], np.int64)).to_pylist()
    assert row["budget_spent"] == pytest.approx(0.2) and row["budget_remaining_pct"] == pytest.approx(80.0)
    assert row["over_budget"] is False and row["burning_groups"] == [] and row["resolved_at"] is None
