"""The live detector on a real lake fed the way the loader feeds it: sample_data/'s errors and link rows committed
ten minutes at a time, a round after each commit, the process restarted half-way (its state read back from the
lake). Its incidents are the hourly marts' (the `live_matches_hourly` check on the real `detections` asset), and
every incident fired and resolved exactly one alert. Some of the sample's resets fall inside maintenance windows
declared for the run: planned, they raise no incident, live or hourly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest.contract import MAINTENANCE_SCHEMA, TOPIC_ERRORS, TOPIC_LATENCY, TOPIC_LINK, conform
from ingest.lake import lake_cursor
from ingest.lake.raw_tables import Batch, Rows, commit_batch, ensure_tables
from models.incidents import RESET, incident_id
from models.series import timestamps_ns
from pipelines.defs.live.reconciliation import live_matches_hourly
from pipelines.lib.marts import mart_key
from pipelines.lib.resources import LakeResource
from pipelines.live.detect import LiveDetector
from pipelines.live.tables import ensure_live_tables
from tests.sample_lake import SAMPLE_DIR, SAMPLE_SPAN

SLICE = timedelta(minutes=10)
# Declared windows: around every third explicit reset of the sample (rack events aside) in the hours reconciled.
WINDOW = timedelta(minutes=5)


def _calendar() -> pa.Table:
    """Maintenance windows (contract.MAINTENANCE_SCHEMA) of WINDOW either side of some of the sample's resets."""
    inventory = pq.read_table(SAMPLE_DIR / "inventory.parquet").to_pylist()
    hosts = {row["controller_id"]: row["host"] for row in inventory}
    resets = [
        row
        for row in pq.read_table(SAMPLE_DIR / "truth_faults.parquet").to_pylist()
        if row["kind"] == "controller_reset"
        and '"silent": false' in row["details"]
        and '"rack_event"' not in row["details"]
        and SAMPLE_SPAN.start + WINDOW < row["onset_ts"] < SAMPLE_SPAN.end - timedelta(hours=1)
    ][::3]
    rows = [
        {
            "controller_id": row["controller_id"],
            "host": hosts[row["controller_id"]],
            "start_ts": row["onset_ts"] - WINDOW,
            "end_ts": row["onset_ts"] + WINDOW,
            "purpose": "host_maintenance",
        }
        for row in resets
    ]
    return conform(pa.Table.from_pylist(rows), MAINTENANCE_SCHEMA)


def _slice(table: pa.Table, start, end, column: str = "ts") -> pa.Table:
    ts = table[column]
    return table.filter(pc.and_(pc.greater_equal(ts, pa.scalar(start, ts.type)), pc.less(ts, pa.scalar(end, ts.type))))


def _rows(table: pa.Table) -> list[str]:
    """The rows as sorted text (NaN equals NaN there, unlike Table.equals): the rows carried are a set."""
    return sorted(repr(sorted(row.items())) for row in table.to_pylist())


@pytest.fixture(scope="module")
def live_lake(tmp_path_factory: pytest.TempPathFactory) -> LakeResource:
    lake = LakeResource(data_dir=str(Path(tmp_path_factory.mktemp("live")) / "data"))
    errors, link, latency = (pq.read_table(SAMPLE_DIR / f"{name}.parquet") for name in ("errors", "link", "latency"))
    with lake.connection() as con:
        ensure_tables(con)
        ensure_live_tables(con)
        inventory = pq.read_table(SAMPLE_DIR / "inventory.parquet")
        commit_batch(con, Batch(rows=[Rows("inventory", inventory), Rows("maintenance", _calendar())]))
        detector = LiveDetector(lake_cursor(con))
        start, restarted = SAMPLE_SPAN.start, False
        while start < SAMPLE_SPAN.end:
            parts = [
                Rows("errors", _slice(errors, start, start + SLICE)),
                Rows("link", _slice(link, start, start + SLICE)),
                Rows("latency", _slice(latency, start, start + SLICE, "window_start")),
            ]
            commit_batch(con, Batch(rows=parts))
            assert detector.round() is not None
            start += SLICE
            if not restarted and start >= SAMPLE_SPAN.start + (SAMPLE_SPAN.end - SAMPLE_SPAN.start) / 2:
                # A restart: the state is read back from the lake, exactly the rows the running process carried.
                carried = detector.carried
                detector = LiveDetector(lake_cursor(con))
                assert detector.carried.snapshot_id == carried.snapshot_id
                for topic in (TOPIC_ERRORS, TOPIC_LINK, TOPIC_LATENCY):
                    assert _rows(detector.carried.rows[topic]) == _rows(carried.rows[topic])
                restarted = True
        assert detector.round() is None  # nothing committed since: no round, no write
    return lake


HOURS = [f"2026-01-05-{h:02d}:00" for h in range(6)]
MARTS = [mart_key(name) for name in ("link_events", "slo_sli", "slo_breaches")]


@pytest.fixture(scope="module")
def checks(definitions: dg.Definitions, live_lake: LakeResource) -> dict[str, dg.AssetCheckEvaluation]:
    """Each hour's detections and SLO marts materialised in order (the SLO evaluation reads earlier hours), with
    the reconciliation check."""
    found = {}
    for hour in HOURS:
        result = dg.materialize(
            [*dict.fromkeys(definitions.get_assets_def(key) for key in MARTS), live_matches_hourly],
            partition_key=hour,
            resources={"lake": live_lake},
            instance=dg.DagsterInstance.ephemeral(),
        )
        (found[hour],) = [e for e in result.get_asset_check_evaluations() if e.check_name == "live_matches_hourly"]
    return found


@pytest.mark.parametrize("hour", HOURS[:5])
def test_live_incidents_are_the_hourly_marts(checks: dict[str, dg.AssetCheckEvaluation], hour: str) -> None:
    metadata = {name: value.value for name, value in checks[hour].metadata.items()}
    assert metadata["covered"] is True and metadata["slo_pages_compared"] is True
    assert metadata["differences"] == 0, metadata
    assert metadata["matched"] > 0
    assert checks[hour].passed


def test_an_hour_the_live_path_has_not_passed_is_not_reconciled(checks: dict[str, dg.AssetCheckEvaluation]) -> None:
    # The live path's newest rows are in the last hour: incidents there may not have settled yet.
    assert checks[HOURS[-1]].metadata["covered"].value is False


def test_fast_burn_pages_fired(live_lake: LakeResource, checks: dict[str, dg.AssetCheckEvaluation]) -> None:
    # In the hours the live path covered (the marts keep an episode in the hour its first step closes).
    last = "2026-01-05 05:00:00+00"
    with live_lake.connection(read_only=True) as con:
        (pages,) = con.execute(
            "SELECT count(*) FROM sre.live_incidents WHERE kind = 'slo_page' AND start_ts <= ?", [last]
        ).fetchone()
        (hourly,) = con.execute(
            "SELECT count(*) FROM marts.slo_breaches WHERE kind = 'page' AND tier = '1h/5m' AND start <= ?", [last]
        ).fetchone()
    assert pages == hourly > 0


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


def test_resets_in_a_declared_window_raise_no_incident(
    live_lake: LakeResource, checks: dict[str, dg.AssetCheckEvaluation]
) -> None:
    # Each declared window holds one of the sample's resets: the marts find it planned, and the live path, which
    # reconciles with them (above), recorded no incident for it.
    windows = _calendar()
    with live_lake.connection(read_only=True) as con:
        planned = con.execute("SELECT controller_id, detected_ts FROM marts.resets WHERE planned").to_arrow_table()
        live = {i for (i,) in con.execute("SELECT incident_id FROM sre.live_incidents").fetchall()}
        (unplanned,) = con.execute("SELECT count(*) FROM marts.resets WHERE NOT planned").fetchone()
    assert planned.num_rows == windows.num_rows > 0
    assert unplanned > 0
    ids = {
        incident_id(RESET, controller, int(t))
        for controller, t in zip(
            planned["controller_id"].to_pylist(), timestamps_ns(planned["detected_ts"]).tolist(), strict=True
        )
    }
    assert not ids & live
