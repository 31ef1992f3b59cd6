"""`leo-fleet exporter` scraped as Prometheus scrapes it: every value equals what the `sre` views and the loader's
status rows say, a lake that goes away mid-run is `leo_fleet_lake_up 0`, and bad input is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.kafka.broker import free_port
from ingest.lake import connect
from ingest.settings import ENV_PREFIX, Settings
from pipelines.lib.slos import load
from tests.conftest import DemoRun
from tests.ingest.kafka.helpers import CLI
from tests.sample_lake import copy_lake

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def _env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, f"{ENV_PREFIX}DATA_DIR": str(data_dir)}


@contextmanager
def exporter(data_dir: Path) -> Iterator[str]:
    """A running exporter over `data_dir`: yields its /metrics URL; stopped (by pid) at the end."""
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "exporter", "--port", str(port)], env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = process.stdout.readline().decode()
        assert "serving" in line, process.stderr.read().decode()[-2000:] if process.poll() is not None else line
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        process.wait(timeout=30)


def scrape(url: str) -> Samples:
    """Every sample of one scrape: metric name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_every_metric_equals_the_sre_views(demo_run: DemoRun) -> None:
    assert demo_run.completed.returncode == 0, demo_run.completed.stderr.decode()[-2000:]
    with exporter(demo_run.data_dir) as url:
        metrics = scrape(url)
    con = connect(Settings().with_data_dir(demo_run.data_dir), read_only=True)
    try:
        assert metrics["leo_fleet_lake_up"] == {(): 1.0}
        health = {dict(labels)["controller_id"]: v for labels, v in metrics["leo_fleet_controller_health"].items()}
        assert health == dict(con.execute("SELECT controller_id, health FROM sre.fleet_health").fetchall())
        assert len(health) == 20

        rows = {dict(labels)["table"]: v for labels, v in metrics["leo_fleet_raw_rows"].items()}
        assert rows == {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in rows}
        assert {"errors", "link", "latency", "inventory"} <= rows.keys()

        # The demo's own loader wrote status rows: its latest one, as the exporter reports it.
        (loader, lag, quarantined, retries, conflicts) = con.execute(
            "SELECT loader_id, lag_total, quarantined_total, commit_retries_total, commit_conflicts_total "
            "FROM raw.loader_status ORDER BY ts DESC LIMIT 1"
        ).fetchone()
        assert metrics["leo_fleet_loader_lag_messages"][(("loader", loader),)] == lag
        assert metrics["leo_fleet_loader_quarantined_messages_total"][(("loader", loader),)] == quarantined
        assert metrics["leo_fleet_loader_commit_retries_total"][(("loader", loader),)] == retries
        assert metrics["leo_fleet_loader_commit_conflicts_total"][(("loader", loader),)] == conflicts

        remaining = metrics["leo_fleet_slo_error_budget_remaining"]
        burn = metrics["leo_fleet_slo_burn_rate"]
        for slo in load():
            (latest,) = con.execute("SELECT max(hour) FROM sre.slo_status WHERE slo = $s", {"s": slo.name}).fetchone()
            end = latest + timedelta(hours=1)
            budgets = con.execute(
                "SELECT group_key, budget_remaining FROM sre.slo_budget($a, $b) WHERE slo = $s",
                {"a": end - timedelta(seconds=slo.period_s), "b": end, "s": slo.name},
            ).fetchall()
            assert budgets
            for group, left in budgets:
                assert remaining[(("group", group), ("slo", slo.name))] == pytest.approx(left, rel=1e-12)
            for group, burn_1h in con.execute(
                "SELECT group_key, burn_1h FROM sre.slo_status WHERE slo = $s AND hour = $h AND burn_1h IS NOT NULL",
                {"s": slo.name, "h": latest},
            ).fetchall():
                assert burn[(("group", group), ("slo", slo.name), ("window", "1h"))] == pytest.approx(burn_1h)
    finally:
        con.close()


def test_a_lake_that_goes_away_is_lake_up_0_and_comes_back(demo_run: DemoRun, tmp_path: Path) -> None:
    data_dir = copy_lake(demo_run.data_dir, tmp_path / "data")
    with exporter(data_dir) as url:
        assert scrape(url)["leo_fleet_lake_up"] == {(): 1.0}
        catalog = Path(Settings().with_data_dir(data_dir).catalog.removeprefix("sqlite:"))
        hidden = catalog.rename(catalog.with_suffix(".hidden"))
        down = scrape(url)
        assert down["leo_fleet_lake_up"] == {(): 0.0} and "leo_fleet_controller_health" not in down
        hidden.rename(catalog)
        assert scrape(url)["leo_fleet_lake_up"] == {(): 1.0}


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, demo_run: DemoRun) -> None:
    missing = subprocess.run(
        [*CLI, "exporter", "--port", str(free_port())], env=_env(tmp_path / "none"), capture_output=True, timeout=60
    )
    assert missing.returncode == 2 and len(missing.stderr.decode().strip().splitlines()) == 1
    with exporter(demo_run.data_dir) as url:
        port = url.split(":")[2].split("/")[0]
        taken = subprocess.run(
            [*CLI, "exporter", "--port", port], env=_env(demo_run.data_dir), capture_output=True, timeout=60
        )
    assert taken.returncode == 2 and len(taken.stderr.decode().strip().splitlines()) == 1, taken.stderr.decode()
    bad_port = subprocess.run([*CLI, "exporter", "--port", "0"], capture_output=True, timeout=60)
    assert bad_port.returncode == 2 and len(bad_port.stderr.decode().strip().splitlines()) == 1


def test_lake_without_views_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    connect(Settings().with_data_dir(data_dir)).close()  # an empty lake: no marts, no sre views
    refused = subprocess.run(
        [*CLI, "exporter", "--port", str(free_port())], env=_env(data_dir), capture_output=True, timeout=60
    )
    assert refused.returncode == 2 and b"no sre views" in refused.stderr
