"""Burn rates and the SRE Workbook's multiwindow multi-burn-rate alerts, guards, budget.

Series are synthetic good/total counts per step with a known error ratio; every time-to-fire below is read
from the alert evaluation's episodes, and compared with the Workbook's published behaviour.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from models.slo.burn import burn_timeline, evaluate
from models.slo.spec import ALERT_TIERS, LatencySli, Slo
from tests.models.latency_rows import T0


def latency_slo(window: str = "30d", objective: float = 99.9, **changes) -> Slo:
    return Slo(
        name="reads",
        objective=objective,
        window=window,
        sli=LatencySli("read", 1024),
        group_by=("controller",),
        **changes,
    )


def series(*segments: tuple[int, int, int], step_s: int = 60, controller: str = "0xa") -> pa.Table:
    """Segments of (steps, events per step, bad events per step), back to back from T0."""
    totals = np.concatenate([np.full(steps, total) for steps, total, _ in segments])
    bads = np.concatenate([np.full(steps, bad) for steps, _, bad in segments])
    start_ns = int(T0.timestamp()) * 1_000_000_000
    ts = pa.array(start_ns + np.arange(totals.size) * step_s * 1_000_000_000).cast(pa.timestamp("ns", tz="UTC"))
    keep = totals > 0  # a step without events is no row at all, as in real series
    return pa.table(
        {
            "controller_id": pa.array([controller] * int(keep.sum())),
            "ts": ts.filter(pa.array(keep)),
            "good": pa.array((totals - bads)[keep]),
            "total": pa.array(totals[keep]),
        }
    )


def episodes(evaluation, kind: str, tier: str | None = None) -> list[dict]:
    rows = evaluation.episodes.to_pylist()
    return [r for r in rows if r["kind"] == kind and (tier is None or r["tier"] == tier)]


def fired_after(evaluation, kind: str, tier: str, onset: timedelta = timedelta(0)) -> timedelta | None:
    found = episodes(evaluation, kind, tier)
    return found[0]["start"] - (T0 + onset) if found else None


def test_constant_14_4x_budget_rate_pages_on_the_1h_5m_tier_within_5_minutes():
    """Acceptance: 14.4 x the budget rate (error ratio 1.44% at 99.9%) from the start of the data."""
    evaluation = evaluate(series((6 * 60, 10_000, 144)), latency_slo())
    assert fired_after(evaluation, "page", "1h/5m") <= timedelta(minutes=5)


def test_constant_1x_budget_rate_never_pages_in_a_week():
    """Acceptance: burning exactly the budget never pages; it is the slowest ticket tier's business."""
    evaluation = evaluate(series((7 * 24 * 60, 10_000, 10)), latency_slo())
    assert episodes(evaluation, "page") == []
    assert fired_after(evaluation, "ticket", "3d/6h") is not None
    assert fired_after(evaluation, "ticket", "1d/2h") is None


@pytest.mark.parametrize(("window", "tier"), [(w, t) for w, tiers in ALERT_TIERS.items() for t in tiers])
def test_each_tier_fires_just_above_its_factor_and_never_just_below(window, tier):
    slo = latency_slo(window)
    events = 1_000_000
    for scale, expect in ((1.02, True), (0.98, False)):
        bad = round(tier.factor * scale * slo.error_budget * events)
        evaluation = evaluate(series((120, events, bad)), slo)
        fired = fired_after(evaluation, tier.severity, tier.name)
        assert (fired is not None) is expect, (window, tier, scale)


def test_after_healthy_traffic_detection_takes_the_workbook_times():
    """With a healthy day behind it, a 14.4x burn spends 2% of the budget, and so pages, after one hour;
    100% errors page in under a minute (Workbook: 0.86 min at 99.9%)."""
    healthy = (24 * 360, 10_000, 0)
    slow = evaluate(series(healthy, (2 * 360, 10_000, 144), step_s=10), latency_slo(), step_s=10)
    assert timedelta(minutes=55) <= fired_after(slow, "page", "1h/5m", timedelta(days=1)) <= timedelta(minutes=61)
    outage = evaluate(series(healthy, (60, 10_000, 10_000), step_s=10), latency_slo(), step_s=10)
    assert fired_after(outage, "page", "1h/5m", timedelta(days=1)) <= timedelta(minutes=1)


def test_page_resets_within_the_short_window_after_errors_stop():
    healthy = (24 * 60, 10_000, 0)
    evaluation = evaluate(series(healthy, (10, 10_000, 10_000), (180, 10_000, 0)), latency_slo())
    (page,) = episodes(evaluation, "page", "1h/5m")
    errors_stopped = T0 + timedelta(days=1, minutes=10)
    assert timedelta(0) < page["end"] - errors_stopped <= timedelta(minutes=5)
    # The long window still burns far above 14.4 when the page resets: the short window ended it.
    assert page["peak_burn"] > 14.4


def test_minimum_events_guard_reports_insufficient_data_instead_of_paging():
    """1 access a minute, one of them slow: 1/60 = 16.7x the budget rate, but 60 events < 3 / (14.4 * 0.001)."""
    quiet = evaluate(series((60, 1, 0), (1, 1, 1), (10, 1, 0)), latency_slo())
    assert episodes(quiet, "page") == []
    assert episodes(quiet, "insufficient_data", "1h/5m")
    busy = evaluate(series((60, 1000, 0), (1, 1000, 1000), (10, 1000, 0)), latency_slo())
    assert episodes(busy, "page", "1h/5m")


def test_absent_data_is_reported_not_taken_as_compliance():
    slo = latency_slo()  # absent after 10 minutes without events, the default
    evaluation = evaluate(series((60, 1000, 0), (30, 0, 0), (60, 1000, 0)), slo)
    (absent,) = episodes(evaluation, "absent")
    assert absent["start"] == T0 + timedelta(minutes=60 + 10)
    assert absent["end"] == T0 + timedelta(minutes=90 + 1)
    stale = evaluate(series((60, 1000, 0)), slo, until=T0 + timedelta(hours=2))
    assert stale.status["state"].to_pylist() == ["absent"]
    assert episodes(stale, "absent")[0]["end"] is None


def test_budget_remaining_over_the_rolling_period_worst_first():
    slo = latency_slo("7d")
    week = 7 * 24 * 60
    half = series((week, 10_000, 5), controller="0xa")  # half the budget rate all week
    double = series((week, 10_000, 20), controller="0xb")  # twice the budget rate
    status = evaluate(pa.concat_tables([half, double]), slo).status.to_pylist()
    assert [row["controller_id"] for row in status] == ["0xb", "0xa"]
    assert status[1]["budget_remaining"] == pytest.approx(0.5)
    assert status[1]["sli"] == pytest.approx(1 - 0.0005)
    assert status[0]["budget_remaining"] == pytest.approx(-1.0)
    assert status[1]["events"] == week * 10_000 and status[1]["bad_events"] == week * 5


def test_group_slices_do_not_change_the_answer():
    data = pa.concat_tables([series((300, 1000, b), controller=f"0x{i}") for i, b in enumerate([0, 2, 20, 1000, 5])])
    whole = evaluate(data, latency_slo())
    sliced = evaluate(data, latency_slo(), groups_per_grid=2)
    assert sliced.status.equals(whole.status)
    assert sliced.episodes.sort_by([("controller_id", "ascending"), ("start", "ascending")]).equals(
        whole.episodes.sort_by([("controller_id", "ascending"), ("start", "ascending")])
    )


def test_burn_timeline_agrees_with_the_evaluation():
    data = series((90, 10_000, 0), (30, 10_000, 300))
    timeline = burn_timeline(data, latency_slo())
    status = evaluate(data, latency_slo()).status
    assert timeline.num_rows == 120
    last = timeline.slice(119).to_pylist()[0]
    assert last["burn_5m"] == pytest.approx(status["burn_5m"][0].as_py())
    assert last["state"] == status["state"][0].as_py() == "page"
    assert last["burn_1h"] == pytest.approx(30.0 * 30 / 60)


def test_step_must_divide_every_window():
    with pytest.raises(ValueError, match="does not divide"):
        evaluate(series((10, 10, 0), step_s=7), latency_slo(), step_s=7)
