"""End to end on real components: `leo-fleet demo` on a small fleet (local broker → Kafka → loader → every asset →
SLO report), and the demo's handling of its data directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from ingest.kafka import broker
from ingest.lake import connect
from ingest.settings import Settings
from pipelines.demo import MARKER, DemoError, check_span, default_start, prepare_data_dir
from pipelines.lib.partitions import Window
from tests.conftest import DemoRun


@pytest.mark.kafka
def test_demo_runs_end_to_end(demo_run: DemoRun) -> None:
    data_dir = demo_run.data_dir
    out = demo_run.completed.stdout.decode()
    assert demo_run.completed.returncode == 0, demo_run.completed.stderr.decode()[-2000:]
    # The UI it points to serves this data directory's instance (Settings.dagster_home, where the runs below are).
    ui = next(line for line in out.splitlines() if "Dagster UI:" in line)
    assert f"LEO_FLEET_DATA_DIR={data_dir} " in ui and ui.endswith("leo-fleet ui --host 127.0.0.1 --port 3000")
    assert Settings().with_data_dir(data_dir).dagster_home == data_dir / "dagster" and "http://127.0.0.1:3000" in out
    report = data_dir / "reports" / "slo" / "2026-01-05" / "report.md"
    assert str(report) in out and report.read_text().startswith("# SLO report 2026-01-05")
    # The report's http link, as the UI's link to it names it (`leo-fleet ui` serves the reports).
    assert f"http://127.0.0.1:{Settings.from_env().reports_port}/slo/2026-01-05/report.html" in out
    pilot = data_dir / "reports" / "pilot" / "report.md"  # and the CXL pilot's report (docs/pilot.md)
    assert "/pilot/report.html" in out and pilot.read_text().startswith("# CXL pilot report")
    settings = Settings.from_env().with_data_dir(data_dir)
    assert not broker.status(settings).running  # the demo started the broker, so it stopped it
    con = connect(settings, read_only=True)
    try:
        published = {
            name: con.execute(f"SELECT count(*) FROM raw.{name}").fetchone()[0]
            for name in ("errors", "link", "latency")
        }
        (controllers,) = con.execute("SELECT count(DISTINCT controller_id) FROM marts.health_scores").fetchone()
        (hours,) = con.execute("SELECT count(DISTINCT window_start) FROM marts.latency_rollups").fetchone()
        (early_warning,) = con.execute("SELECT count(*) FROM marts.early_warning").fetchone()
        (basis,) = con.execute("SELECT any_value(basis) FROM marts.early_warning").fetchone()
        (at_risk,) = con.execute(
            "SELECT controller_id FROM sre.early_warning ORDER BY window_end DESC, risk DESC, controller_id LIMIT 1"
        ).fetchone()
        scored = con.execute(
            "SELECT count(DISTINCT controller_id), count(DISTINCT window_start) FROM marts.latency_anomalies"
        ).fetchone()
        (rolled_up,) = con.execute("SELECT count(DISTINCT controller_id) FROM marts.latency_rollups").fetchone()
        (episodes,) = con.execute("SELECT count(*) FROM sre.latency_anomalies").fetchone()
    finally:
        con.close()
    assert all(rows > 0 for rows in published.values())
    assert (controllers, hours) == (20, 2)
    # Two hours cannot label a 24 h horizon: the lake fits no model of its own, so the shipped one scores every
    # controller-hour, and the report shows them.
    assert early_warning == controllers * hours and basis.startswith("shipped model")
    section = report.read_text().split("## Early warning: controllers at risk", 1)[1].split("\n## ", 1)[0]
    assert at_risk in section
    # Every controller and the fleet scored each hour; two hourly points are no baseline yet, so no episode.
    assert scored == (rolled_up + 1, 2) and episodes == 0 and "## Latency anomalies" in report.read_text()
    instance = dg.DagsterInstance.from_config(str(data_dir / "dagster"))
    runs = instance.get_runs()
    assert len(runs) >= 5 and all(run.is_success for run in runs)
    model = instance.get_latest_materialization_event(dg.AssetKey(["models", "early_warning_model"]))
    assert model.asset_materialization.metadata["fitted"].value is False
    # The loader's work is on record too: the raw tables carry their row counts (freshness keys off this).
    raw = instance.get_latest_materialization_event(dg.AssetKey(["raw", "latency"]))
    assert raw.asset_materialization.metadata["dagster/row_count"].value == published["latency"]


def test_demo_replaces_its_own_output_but_not_a_foreign_lake(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "lake").mkdir(parents=True)
    with pytest.raises(DemoError, match="--fresh"):
        prepare_data_dir(foreign, fresh=False)
    prepare_data_dir(foreign, fresh=True)
    assert (foreign / MARKER).exists() and not (foreign / "lake").exists()
    (foreign / "lake").mkdir()
    prepare_data_dir(foreign, fresh=False)  # the demo's own lake: replaced without asking
    assert not (foreign / "lake").exists()


def test_demo_span_is_recent_complete_days_inside_the_partitions() -> None:
    now = datetime(2026, 11, 22, 3, 30, tzinfo=UTC)
    start = default_start(24, now)
    assert (start, start + timedelta(hours=24)) == (
        datetime(2026, 11, 21, tzinfo=UTC),
        datetime(2026, 11, 22, tzinfo=UTC),
    )
    check_span(Window(start, start + timedelta(hours=24)), now)
    with pytest.raises(DemoError, match="before the partitions start"):
        check_span(Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)), now)
    with pytest.raises(DemoError, match="future"):
        check_span(Window(now, now + timedelta(hours=1)), now)
