"""The live detector on a real lake fed the way the loader feeds it: sample_data/'s errors and link rows committed
ten minutes at a time, a round after each commit, the process restarted half-way (its state read back from the
lake). Its incidents are the hourly marts' (the `live_matches_hourly` check on the real `detections` asset), and
every incident fired and resolved exactly one alert."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest.contract import TOPIC_ERRORS, TOPIC_LINK
from ingest.lake import lake_cursor
from ingest.lake.raw_tables import Batch, Rows, commit_batch, ensure_tables
from pipelines.defs.live.reconciliation import live_matches_hourly
from pipelines.lib.marts import mart_key
from pipelines.lib.resources import LakeResource
from pipelines.live.detect import LiveDetector
from pipelines.live.tables import ensure_live_tables
from tests.sample_lake import SAMPLE_DIR, SAMPLE_SPAN

SLICE = timedelta(minutes=10)


def _slice(table: pa.Table, start, end) -> pa.Table:
    ts = table["ts"]
    return table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(start, ts.type)), pc.less(ts, pa.scalar(end, ts.type))))


def _rows(table: pa.Table) -> list[str]:
    """The rows as sorted text (NaN equals NaN there, unlike Table.equals): the rows carried are a set."""
    return sorted(repr(sorted(row.items())) for row in table.to_pylist())


@pytest.fixture(scope="module")
def live_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeResource:
    lake = LakeResource(data_dir=str(Path(tmp_path_factory.mktemp("live")) / "data"))
    errors, link = (pq.read_table(SAMPLE_DIR / f"{name}.parquet") for name in ("errors", "link"))
    with lake.connection() as con:
        ensure_tables(con)
        ensure_live_tables(con)
        commit_batch(con, Batch(rows=[Rows("inventory", pq.read_table(SAMPLE_DIR / "inventory.parquet"))]))
        detector = LiveDetector(lake_cursor(con))
        start, restarted = SAMPLE_SPAN.start, False
        while start < SAMPLE_SPAN.end:
            parts = [
                Rows("errors", _slice(errors, start, start + SLICE)),
                Rows("link", _slice(link, start, start + SLICE)),
            ]
            commit_batch(con, Batch(rows=parts))
            assert detector.round() is not None
            start += SLICE
            if not restarted and start >= SAMPLE_SPAN.start + (SAMPLE_SPAN.end - SAMPLE_SPAN.start) / 2:
                # A restart: the state is read back from the lake, exactly the rows the running process carried.
                carried = detector.carried
                detector = LiveDetector(lake_cursor(con))
                assert detector.carried.snapshot_id == carried.snapshot_id
                for topic in (TOPIC_ERRORS, TOPIC_LINK):
                    assert _rows(detector.carried.rows[topic]) == _rows(carried.rows[topic])
                restarted = True
        assert detector.round() is None  # nothing committed since: no round, no write
    return lake


def _check(definitions: dg.Definitions, lake: LakeResource, hour: str) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [definitions.get_assets_def(mart_key("link_events")), live_matches_hourly],
        partition_key=hour,
        resources={"lake": lake},
        instance=dg.DagsterInstance.ephemeral(),
    )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "live_matches_hourly"]
    return evaluation


@pytest.mark.parametrize("hour", ["2026-01-05-00:00", "2026-01-05-02:00", "2026-01-05-04:00"])
def test_live_incidents_are_the_hourly_marts(definitions: dg.Definitions, live_lake: LakeResource, hour: str) -> None:
    evaluation = _check(definitions, live_lake, hour)
    metadata = {name: value.value for name, value in evaluation.metadata.items()}
    assert metadata["covered"] is True
    assert metadata["differences"] == 0, metadata
    assert metadata["matched"] > 0
    assert evaluation.passed


def test_an_hour_the_live_path_has_not_passed_is_not_reconciled(
    definitions: dg.Definitions, live_lake: LakeResource
) -> None:
    # The live path's newest rows are in the last hour: incidents there may not have settled yet.
    evaluation = _check(definitions, live_lake, "2026-01-05-05:00")
    assert evaluation.metadata["covered"].value is False


def test_every_incident_fired_once_and_resolved_once(live_lake: LakeResource) -> None:
    with live_lake.connection(read_only=True) as con:
        incidents = con.execute("SELECT incident_id, resolved_at IS NOT NULL FROM sre.live_incidents").fetchall()
        outbox = con.execute("SELECT incident_id, status, count(*) FROM sre.alert_outbox GROUP BY ALL").fetchall()
        alerts = dict(con.execute("SELECT incident_id, status FROM sre.alerts").fetchall())
    assert len({i for i, _ in incidents}) == len(incidents) > 0
    assert all(n == 1 for *_, n in outbox)
    assert {(i, s) for i, s, _ in outbox} == {(i, "firing") for i, _ in incidents} | {
        (i, "resolved") for i, done in incidents if done
    }
    assert alerts == {i: "resolved" if done else "firing" for i, done in incidents}
