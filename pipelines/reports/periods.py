"""Report periods: a day, an ISO week (Monday to Monday) or a calendar month, in UTC, and how each is named."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pipelines.lib.partitions import DAY_FORMAT, Window

PERIODS = ("day", "week", "month")


def period_window(period: str, day: date) -> Window:
    """The `period` that contains `day`."""
    if period == "day":
        start = day
        end = day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return Window(_midnight(start), _midnight(end))


def period_label(period: str, window: Window) -> str:
    """2026-01-05 for a day, 2026-W02 for an ISO week, 2026-01 for a month: also the report's directory name."""
    if period == "week":
        year, week, _ = window.start.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{window.start:%Y-%m}"
    return f"{window.start:{DAY_FORMAT}}"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
