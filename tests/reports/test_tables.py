"""The report's tables read as people read them: budgets as percentages (an overspent one says so and is marked),
human headers with units, thousands separators, Yes/No, UTC times, reasons and evidence in words, "top N of M"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa

from models.health import REASONS
from pipelines.reports import tables


def test_a_budget_is_a_percentage_never_a_negative_fraction() -> None:
    assert tables.budget(0.75) == "75.0 %"
    assert tables.budget(-2.5) == "0 %: over budget (350 % spent)"
    assert tables.budget_pct({"budget_spent_pct": 350.0}) == tables.budget(-2.5)
    assert tables.budget(None) == tables.NONE


def test_units_and_words() -> None:
    assert tables.count(811487239) == "811,487,239"
    assert tables.number(0.005678) == "0.00568" and tables.number(12345.6) == "12,346"
    assert [tables.seconds(s) for s in (3.04, 150, 65000)] == ["3.0 s", "2.5 min", "18.1 h"]
    assert tables.yes_no(True) == "Yes" and tables.yes_no(False) == "No"
    assert tables.moment(datetime(2026, 1, 5, 7, 30, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-05 05:30:00 UTC"
    assert tables.evidence("uptime,epoch") == "uptime went back, counter epoch changed"
    words = tables.reasons([{"reason": reason, "points": 10.0, "why": f"why {i}"} for i, reason in enumerate(REASONS)])
    assert "_" not in words and words.count("(−10.0 points)") == len(REASONS)
    assert words.count("why") == 1 and words.index(": why 0") < words.index(";")  # the first reason's why only


def test_show_names_columns_marks_overspent_rows_and_says_top_n_of_m() -> None:
    table = pa.table(
        {
            "slo": ["a", "b", "c"],
            "events": [1_000_000, 20, 3],
            "budget_remaining": [-1.0, 0.5, 1.0],
            "met": [False, True, True],
            "recovery_s": [30.0, None, 7200.0],
            "as_of": pa.array([datetime(2026, 1, 5, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC")),
        }
    )
    shown = tables.show(table, limit=2)
    assert shown.headers == ["SLO", "events", "budget remaining", "met", "recovery", "as of"]
    assert shown.rows[0] == [
        "a",
        "1,000,000",
        "0 %: over budget (200 % spent)",
        "No",
        "30.0 s",
        "2026-01-05 00:00:00 UTC",
    ]
    assert shown.marked == [True, False]
    assert shown.caption("SLOs") == "SLOs: top 2 of 3"
    assert tables.show(table, limit=5).caption("SLOs") == "SLOs: 3"
