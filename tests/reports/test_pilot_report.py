"""The pilot report read from a real DuckLake lake (`leo-fleet load` of a simulated run, then the `sre` views):
with CXL's effects set to zero it shows no difference for any class; with a known injected effect each class's
interval covers it; its cost per job is what sre.pilot_jobs gives by hand; `leo-fleet report --pilot` writes it;
and the materialized sample lake's report renders in headless Chromium with every section and chart."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ingest import lake
from ingest.lake.loader import load_run_directory
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.job_model import JobKnobs, slowdown
from ingest.sim.jobs import latency_ratio
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from models.pilot import NO_DIFFERENCE
from pipelines.lib.pilot import load_pilot_spec
from pipelines.lib.slos import load_recovery_objectives
from pipelines.reports.pilot import PILOT_HTML, SECTIONS, PilotFigures, collect
from pipelines.sql import install_views
from tests.ingest.kafka.helpers import CLI, cli_env
from tests.reports.test_report_browser import ARTIFACTS
from tests.sample_lake import Materialized

# Few faults (acceleration 1): a job's time is the performance model's alone, not cut short by a kill.
QUIET = SimConfig(controllers=240, hours=12.0, seed=19, fault_acceleration=1.0, confounders=confounder_knobs("off"))
TIME = "time to solution (s)"


def _lake(config: SimConfig, root: Path) -> Settings:
    write_run(Simulation(config), root / "run", progress=False)
    settings = Settings().with_data_dir(root / "data")
    load_run_directory(settings, root / "run")
    con = lake.connect(settings)
    try:
        install_views(con)
    finally:
        con.close()
    return settings


def _figures(settings: Settings) -> PilotFigures:
    con = lake.connect(settings, read_only=True)
    try:
        return collect(con, load_pilot_spec(), load_recovery_objectives())
    finally:
        con.close()


def test_with_cxl_effects_at_zero_no_class_shows_a_difference(tmp_path: Path) -> None:
    null = dataclasses.replace(QUIET, jobs=JobKnobs(effect_scale=0.0))
    verdicts = _figures(_lake(null, tmp_path)).comparisons

    assert sorted(set(verdicts["workload"].to_pylist())) == ["analytics", "in_memory_db", "llm_kv_cache"]
    assert verdicts["verdict"].to_pylist() == [NO_DIFFERENCE] * verdicts.num_rows
    assert pc.min(verdicts["cxl_jobs"]).as_py() > 0 and pc.min(verdicts["baseline_jobs"]).as_py() > 0


def test_a_known_injected_effect_lies_in_each_class_interval(tmp_path: Path) -> None:
    # Jobs too small ever to spill: CXL's only effect is the latency of the pages it holds, a known factor per class.
    small = tuple(dataclasses.replace(w, footprint_median_gb=10.0, footprint_sigma=0.0) for w in JobKnobs().workloads)
    knobs = JobKnobs(workloads=small)
    config = dataclasses.replace(QUIET, jobs=knobs)
    found = _figures(_lake(config, tmp_path)).comparisons
    times = {row["workload"]: row for row in found.filter(pc.equal(found["metric"], TIME)).to_pylist()}

    assert sorted(times) == [w.name for w in sorted(small, key=lambda w: w.name)]
    for workload in small:
        plenty = np.array([1e9])  # more CXL memory per slot than any job holds there
        effect = slowdown(
            knobs, workload.latency_sensitivity, workload.spill_penalty, np.array([10.0]), plenty, latency_ratio(config)
        )[0]
        row = times[workload.name]
        assert effect > 1.0
        assert row["interval_low"] <= effect <= row["interval_high"], (workload.name, effect, row)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A pilot at the default fault acceleration: jobs killed by resets and link drops on both sides."""
    config = SimConfig(controllers=160, hours=8.0, seed=23, confounders=confounder_knobs("off"))
    return _lake(config, tmp_path_factory.mktemp("pilot"))


def test_cost_per_job_recomputed_by_hand_from_pilot_jobs_equals_the_report(faulty: Settings) -> None:
    con = lake.connect(faulty, read_only=True)
    try:
        by_hand = con.execute(
            """WITH span AS (SELECT (epoch(max(end_ts)) - epoch(min(start_ts))) / 3600 AS h FROM sre.pilot_jobs)
               SELECT workload, memory_tier, count(DISTINCT host) * any_value(span.h) AS host_hours,
                      sum(completed::INT) AS completed
               FROM sre.pilot_jobs, span GROUP BY ALL"""
        ).fetchall()
        figures = collect(con, load_pilot_spec(), load_recovery_objectives())
    finally:
        con.close()
    hours = {(w, tier): (h, n) for w, tier, h, n in by_hand}
    assert figures.costs.num_rows == 3 * len(load_pilot_spec().scenarios)
    for scenario in load_pilot_spec().scenarios:
        cxl_price = scenario.instance_per_hour * (1 + scenario.cxl_premium) + scenario.cxl_overhead_per_hour
        for row in figures.costs.filter(pc.equal(figures.costs["scenario"], scenario.name)).to_pylist():
            base_h, base_n = hours[(row["workload"], "local_dram")]
            cxl_h, cxl_n = (base_h, base_n) if scenario.rollback else hours[(row["workload"], "cxl")]
            assert row["baseline_usd_per_job"] == pytest.approx(base_h * scenario.instance_per_hour / base_n)
            assert row["cxl_usd_per_job"] == pytest.approx(cxl_h * cxl_price / cxl_n)
    lost = figures.lost.to_pylist()
    assert sum(r["killed_by_reset"] + r["killed_by_link_drop"] for r in lost if r["memory_tier"] == "cxl") > 0


def test_the_command_writes_the_report_and_an_empty_lake_gets_one_line(faulty: Settings, tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "report", "--pilot"], env=cli_env(faulty), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(faulty.reports_dir / PILOT_HTML)
    assert "## Cost per job" in (faulty.reports_dir / "pilot" / "report.md").read_text()

    empty = Settings().with_data_dir(tmp_path / "empty")
    con = lake.connect(empty)
    try:
        install_views(con)
    finally:
        con.close()
    none = subprocess.run([*CLI, "report", "--pilot"], env=cli_env(empty), capture_output=True, text=True, timeout=300)
    assert none.returncode == 2
    assert none.stderr.count("\n") == 1 and "no pilot to report" in none.stderr, none.stderr


def test_the_pilot_report_renders_with_every_section_and_chart(materialized: Materialized, browser: WebDriver) -> None:
    page = materialized.data_dir / "reports" / PILOT_HTML
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return document.readyState") == "complete")
    assert [e.text for e in browser.find_elements(By.TAG_NAME, "h2")] == [s.heading for s in SECTIONS]
    images = browser.find_elements(By.TAG_NAME, "img")
    assert [image.get_attribute("alt") for image in images] == [s.heading for s in SECTIONS if s.chart]
    for image in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
        assert loaded and loaded > 100, image.get_attribute("alt")
    tables = browser.find_elements(By.CSS_SELECTOR, "section table")
    assert len(tables) == len(SECTIONS)  # every section has rows on the sample lake (marts materialized)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1200, height + 100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "pilot-report.png"))
