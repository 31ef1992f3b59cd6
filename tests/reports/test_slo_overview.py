"""The SLO overview (the report's first table, sre.slo_overview) agrees with a fresh evaluation of the SLI series by
models.slo.burn: events and bad events over the rolling period, the alert state at the end, the alerting groups,
and a "firing since" no later than any alert still open."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from models.slo.burn import evaluate
from pipelines.lib import slos as spec
from pipelines.lib.marts import read_window
from pipelines.lib.partitions import Window
from tests.sample_lake import SAMPLE_SPAN, Materialized
from tests.sql.helpers import sre_session

ALERTS = ("page", "ticket")


@pytest.fixture(scope="module")
def overview(materialized: Materialized) -> dict[str, dict]:
    con = sre_session(materialized.data_dir)
    try:
        # The sample's span: another test may materialize a later, empty hour in the shared lake.
        window = {"start": SAMPLE_SPAN.start, "end": SAMPLE_SPAN.end}
        rows = con.execute("FROM sre.slo_overview_at($start, $end)", window).to_arrow_table().to_pylist()
    finally:
        con.close()
    return {row["slo"]: row for row in rows}


@pytest.fixture(scope="module")
def series(materialized: Materialized) -> pa.Table:
    with materialized.lake.connection(read_only=True) as con:
        return read_window(con, "marts.slo_sli", "ts", Window(SAMPLE_SPAN.start, SAMPLE_SPAN.end))


@pytest.mark.parametrize("slo", spec.load(), ids=lambda slo: slo.name)
def test_overview_agrees_with_a_fresh_evaluation(overview: dict[str, dict], series: pa.Table, slo) -> None:
    row = overview[slo.name]
    mine = series.filter(pc.equal(series["slo"], slo.name))
    assert row["as_of"] == SAMPLE_SPAN.end and row["window"] == slo.window
    # The sample is shorter than every rolling period: the period holds all of it.
    events = pc.sum(mine["total"]).as_py()
    assert (row["events"], row["bad_events"]) == (events, events - pc.sum(mine["good"]).as_py())
    evaluation = evaluate(spec.series_for(mine, slo), slo, spec.STEP_S, until=SAMPLE_SPAN.end)
    states = evaluation.status["state"].to_pylist()
    alerting = sum(state in ALERTS for state in states)
    assert row["alerting_groups"] == alerting
    expected = next((s for s in ("page", "ticket") if s in states), None)
    if expected:
        assert row["state"] == expected
    else:
        assert row["state"] not in ALERTS and row["firing_since"] is None
    open_alerts = evaluation.episodes.filter(
        pc.and_(pc.is_in(evaluation.episodes["kind"], pa.array(ALERTS)), pc.is_null(evaluation.episodes["end"]))
    )
    if open_alerts.num_rows:
        assert row["firing_since"] <= pc.min(open_alerts["start"]).as_py()
    assert row["burning_group_count"] >= alerting and row["budget_remaining_pct"] >= 0
    assert row["over_budget"] == (row["budget_spent_pct"] > 100)
