"""The real Dagster webserver on the instance where every asset was materialized, driven by headless Chromium:
the asset graph lists our groups, an asset page shows its latest materialization's metadata, chart included,
with the partitions pinned to the materialized span as `leo-fleet ui` pins a demo's, every hourly asset shows all
its partitions materialized and none missing, and the report asset's link opens the report from the reports server
`leo-fleet ui` starts beside the webserver. Screenshots are kept in $CI_ARTIFACTS/ui/ (test-artifacts/ui/ by
default, gitignored), for CI to keep as artifacts."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from ingest.kafka.broker import free_port
from ingest.settings import ENV_PREFIX, Settings
from pipelines.lib.demo_span import partition_settings
from pipelines.lib.partitions import HOURLY
from pipelines.reports import serve
from tests.processes import stop_process_group
from tests.sample_lake import REPO, SAMPLE_SPAN, Materialized

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("CI_ARTIFACTS") or REPO / "test-artifacts") / "ui"
GROUPS = ("ingest", "latency", "slo", "links", "resets", "health", "anomaly", "quality", "reports")
WAIT_S = 60
DIALOG_WAIT_S = 15
SIDEBAR_RIGHT_PX = 540
CARET_OFFSET_PX = 40


@pytest.fixture(scope="module")
def webserver(materialized: Materialized) -> Iterator[str]:
    """dagster-webserver on a free loopback port, pointed at the materialized instance, its partitions the
    materialized span (as `leo-fleet ui` shows a demo's); stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        **partition_settings(SAMPLE_SPAN.start, SAMPLE_SPAN.end),
        "DAGSTER_HOME": str(materialized.dagster_home),
        f"{ENV_PREFIX}DATA_DIR": str(materialized.data_dir),
    }
    command = [
        str(Path(shutil.which("dagster-webserver") or REPO / ".venv/bin/dagster-webserver")),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        "pipelines.definitions",
    ]
    log = ARTIFACTS.parent / "webserver.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"dagster-webserver did not come up; see {log}") from None
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


@pytest.fixture(scope="module")
def reports_server(materialized: Materialized) -> Iterator[Settings]:
    """The reports server as `leo-fleet ui` starts it, over the materialized data directory, on the port the report
    assets' links name (the settings' port, read when they were materialized); stopped afterwards by its pid."""
    settings = Settings.from_env().with_data_dir(materialized.data_dir)
    process = serve.start(settings)
    try:
        yield settings
    finally:
        process.terminate()
        process.wait(timeout=WAIT_S)


@pytest.fixture(scope="module")
def browser(webserver: str) -> Iterator[WebDriver]:
    """Headless Chromium that has already dismissed Dagster's first-visit community dialog."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the UI test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--window-size=1400,900",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        open_page(driver, f"{webserver}/asset-groups", "Global asset lineage")
        dismiss_dialog(driver)
        yield driver
    finally:
        driver.quit()


def body_text(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def open_page(browser: WebDriver, url: str, ready_text: str) -> None:
    """Load `url` and wait until `ready_text` is on it."""
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda driver: ready_text in body_text(driver))


def dismiss_dialog(browser: WebDriver) -> None:
    """The community dialog pops up a few seconds after the first page loads; once skipped, it stays away."""
    try:
        skip = WebDriverWait(browser, DIALOG_WAIT_S).until(
            ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Skip']"))
        )
    except TimeoutException:
        return  # this Dagster version did not show it
    skip.click()
    WebDriverWait(browser, DIALOG_WAIT_S).until(
        ec.invisibility_of_element_located((By.XPATH, "//button[normalize-space()='Skip']"))
    )


def expand_group(browser: WebDriver, group: str) -> None:
    """Open a group's folder in the lineage sidebar (its caret sits left of the name)."""
    (label,) = [
        e
        for e in browser.find_elements(By.XPATH, f"//span[normalize-space(text())='{group}']")
        if e.location["x"] < SIDEBAR_RIGHT_PX
    ]
    ActionChains(browser).move_to_element_with_offset(
        label, -label.size["width"] // 2 - CARET_OFFSET_PX, 0
    ).click().perform()


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_asset_graph_lists_our_domains_and_assets(webserver: str, browser: WebDriver) -> None:
    open_page(browser, f"{webserver}/asset-groups", "Global asset lineage")
    WebDriverWait(browser, WAIT_S).until(lambda driver: all(group in body_text(driver) for group in GROUPS))
    for group in ("latency", "slo", "health"):
        expand_group(browser, group)
    expected = ("latency_rollups", "slo_sli", "slo_compliance", "slo_breaches", "health_scores")
    WebDriverWait(browser, WAIT_S).until(lambda driver: all(name in body_text(driver) for name in expected))
    screenshot(browser, "asset-graph")


def test_asset_page_shows_the_materialization_metadata(webserver: str, browser: WebDriver) -> None:
    open_page(browser, f"{webserver}/assets/marts/latency_rollups", "Latest materialization")
    row = WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.XPATH, "//tr[td[normalize-space()='fleet_quantiles']]"))
    )
    body = body_text(browser)
    assert "worst_controllers" in body and "2026-01-05-05:00" in body and "fleet-analytics" in body
    row.find_elements(By.XPATH, ".//*[contains(text(), 'Show Markdown')]")[-1].click()
    chart = WebDriverWait(browser, WAIT_S).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "img[src^='data:image/png']"))
    )
    assert chart.get_attribute("alt") == "Fleet read latency from merged histograms"
    assert browser.execute_script("return arguments[0].naturalWidth", chart) > 100
    screenshot(browser, "latency-rollups-metadata")


def test_checks_tab_shows_the_blocking_checks(webserver: str, browser: WebDriver) -> None:
    open_page(browser, f"{webserver}/assets/marts/resets?view=checks", "error_counters_monotonic")
    body = body_text(browser)
    screenshot(browser, "resets-checks")
    assert "telemetry_gaps" in body and "column_schema_change" in body


def test_every_partitioned_asset_has_its_partitions_materialized_and_none_missing(
    webserver: str, browser: WebDriver, definitions: dg.Definitions
) -> None:
    """After a demo-like run the Catalog lists the span's partitions, all materialized: no "missing" partitions
    inside the span (every hour was run) and none outside it (no hour before or after exists; the day, week and
    month that hold the span have one partition each)."""
    hours = (SAMPLE_SPAN.end - SAMPLE_SPAN.start) // timedelta(hours=1)
    graph = definitions.resolve_asset_graph()
    partitioned = [key for key in graph.materializable_asset_keys if graph.get(key).partitions_def is not None]
    assert len(partitioned) > hours
    for key in sorted(partitioned):
        path = "/".join(key.path)
        expected = hours if graph.get(key).partitions_def == HOURLY else 1
        open_page(browser, f"{webserver}/assets/{path}?view=partitions", "Missing (")
        body = body_text(browser)
        assert f"Materialized ({expected})" in body and "Missing (0)" in body and "Failed (0)" in body, (path, body)
        # With "All" selected, the partitions selected are the whole set: the span's only.
        assert f"{expected} Partition" in body, (path, body)
    screenshot(browser, "partitions")
    open_page(browser, f"{webserver}/assets?view=flat", f"{hours} partitions")
    screenshot(browser, "catalog")


def test_the_report_assets_link_opens_the_report(webserver: str, reports_server: Settings, browser: WebDriver) -> None:
    """A user on the daily report asset's page clicks its `html` link and reads the report (over http: a browser
    does not follow a file:// link from the UI's page)."""
    open_page(browser, f"{webserver}/assets/reports/slo_report", "Latest materialization")
    url = serve.report_url(reports_server, reports_server.reports_dir / "slo" / "2026-01-05" / "report.html")
    link = WebDriverWait(browser, WAIT_S).until(ec.element_to_be_clickable((By.XPATH, f"//a[@href='{url}']")))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    screenshot(browser, "report-asset")
    ui_window = browser.current_window_handle
    link.click()
    WebDriverWait(browser, WAIT_S).until(lambda driver: len(driver.window_handles) > 1 or driver.current_url == url)
    try:
        for handle in browser.window_handles:  # the UI opens links in a new tab
            if handle != ui_window:
                browser.switch_to.window(handle)
        WebDriverWait(browser, WAIT_S).until(lambda driver: "SLO report 2026-01-05" in body_text(driver))
        assert browser.current_url == url
        charts = browser.find_elements(By.CSS_SELECTOR, "img")
        assert charts and all(browser.execute_script("return arguments[0].naturalWidth", c) > 100 for c in charts)
        screenshot(browser, "report-from-ui")
    finally:
        for handle in browser.window_handles:
            if handle != ui_window:
                browser.switch_to.window(handle)
                browser.close()
        browser.switch_to.window(ui_window)
