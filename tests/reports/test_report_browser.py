"""The HTML report renders in headless Chromium with every chart loaded and every section present; the
screenshot is kept in test-artifacts/report/."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pipelines.reports.render import ANSWERS, SECTIONS
from tests.dagster.ui.test_webserver import REPO
from tests.sample_lake import Materialized

ARTIFACTS = REPO / "test-artifacts" / "report"
LABELS = ("2026-01-05", "2026-W02", "2026-01")


@pytest.mark.parametrize("label", LABELS)
def test_the_report_renders_with_every_chart(materialized: Materialized, browser: WebDriver, label: str) -> None:
    page = materialized.data_dir / "reports" / "slo" / label / "report.html"
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return document.readyState") == "complete")
    headings = [element.text for element in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings == [
        *(answer.heading for answer in ANSWERS),
        *(section.heading for section in SECTIONS),
        "SLO compliance per group",
    ]
    images = browser.find_elements(By.TAG_NAME, "img")
    assert [image.get_attribute("alt") for image in images] == [section.heading for section in SECTIONS]
    for image in images:
        loaded = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
        assert loaded and loaded > 100, image.get_attribute("alt")
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1200, height + 100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(Path(ARTIFACTS, f"slo-report-{label}.png")))
