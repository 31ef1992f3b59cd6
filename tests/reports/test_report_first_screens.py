"""An operator's four questions, answered on the report's first two screens (1280×800, scrolled two screen heights)
after a run over the sample fleet: the burning SLOs with since when, the unhealthy controllers with reasons, the
link drops and the silent resets, each with the values the `sre` views return to `leo-fleet sql`. The screenshots
of both screens are kept in test-artifacts/report/ (CI artifacts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from pipelines.reports import write_report
from tests.dagster.ui.test_webserver import REPO
from tests.reports.test_report import DAY
from tests.sample_lake import SAMPLE_SPAN, Materialized
from tests.sql.helpers import sre_session

ARTIFACTS = REPO / "test-artifacts" / "report"
WIDTH, HEIGHT, SCREENS = 1280, 800, 2
_SECTION = """
const section = document.getElementById(arguments[0]);
const top = (element) => element.getBoundingClientRect().top + window.scrollY;
return {
  top: top(section), bottom: top(section) + section.getBoundingClientRect().height,
  caption: (section.querySelector('.caption') || {}).textContent || '',
  headers: [...section.querySelectorAll('th')].map((th) => th.textContent),
  rows: [...section.querySelectorAll('tbody tr')].map((tr) => ({
    over: tr.classList.contains('over'), cells: [...tr.querySelectorAll('td')].map((td) => td.textContent)})),
};"""


def utc(moment: datetime | None) -> str:
    return "–" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@pytest.fixture(scope="module")
def page(materialized: Materialized, browser: WebDriver, tmp_path_factory: pytest.TempPathFactory) -> WebDriver:
    """The day's report as the asset writes it (the same `write_report`), written now: other tests sharing the sample
    lake may have materialized more hours since the asset ran, and the views below read the lake as it is now."""
    with materialized.lake.connection(read_only=True) as con:
        report = write_report(con, tmp_path_factory.mktemp("reports"), "day", DAY)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    browser.get(report.html.as_uri())
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return document.readyState") == "complete")
    assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [WIDTH, HEIGHT]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for screen in range(SCREENS):
        browser.execute_script("window.scrollTo(0, arguments[0])", screen * HEIGHT)
        assert browser.save_screenshot(str(ARTIFACTS / f"first-screens-{screen + 1}.png"))
    return browser


@pytest.fixture(scope="module")
def views(materialized: Materialized):
    con = sre_session(materialized.data_dir)
    yield lambda sql: [
        dict(zip([c[0] for c in con.description], row, strict=True)) for row in con.execute(sql).fetchall()
    ]
    con.close()


def section(page: WebDriver, name: str) -> dict:
    found = page.execute_script(_SECTION, name)
    assert found["rows"], f"section {name}: no table"
    assert found["bottom"] <= SCREENS * HEIGHT, f"section {name} ends at {found['bottom']:.0f} px, below two screens"
    return found


def test_images_are_loaded_at_their_own_size(page: WebDriver) -> None:
    """Loaded, and not shrunk: the charts' labels are drawn at 10 px for their natural size."""
    images = page.execute_script(
        "return [...document.images].map((i) => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
    )
    assert images and all(complete and natural > 100 for complete, natural, _ in images)
    assert all(shown >= natural for _, natural, shown in images)


def test_burning_slos_with_since(page: WebDriver, views) -> None:
    slos = views(f"FROM sre.slo_overview_at('{SAMPLE_SPAN.start}', '{SAMPLE_SPAN.end}')")
    shown = section(page, "slo-overview")
    assert [row["cells"][0] for row in shown["rows"]] == [slo["slo"] for slo in slos]
    burning = [slo for slo in slos if slo["state"] in ("page", "ticket")]
    assert burning, "the sample fleet burns no SLO: nothing to look for"
    for slo, row in zip(slos, shown["rows"], strict=True):
        cells = dict(zip(shown["headers"], row["cells"], strict=True))
        assert cells["firing since"] == utc(slo["firing_since"]) and cells["resolved at"] == utc(slo["resolved_at"])
        assert cells["alert"].startswith("firing") == (slo in burning)
        assert row["over"] == slo["over_budget"]
        assert cells["groups burning it"].startswith(f"{slo['burning_group_count']:,} of {slo['groups']:,}") or (
            slo["burning_group_count"] == 0 and cells["groups burning it"] == "none"
        )
    groups = views(f"FROM sre.slo_burning_groups_at('{SAMPLE_SPAN.start}', '{SAMPLE_SPAN.end}') WHERE rank = 1")
    for first in groups:
        (row,) = [r for r in shown["rows"] if r["cells"][0] == first["slo"]]
        assert first["group_key"] in row["cells"][-1]


def test_unhealthy_controllers_with_reasons(page: WebDriver, views) -> None:
    worst = views("FROM sre.fleet_health ORDER BY health, controller_id")
    shown = section(page, "unhealthy")
    assert shown["caption"].endswith(f"top {len(shown['rows'])} of {len(worst):,}")
    for controller, row in zip(worst, shown["rows"], strict=False):
        assert row["cells"][:4] == [
            controller["controller_id"],
            controller["host"],
            controller["rack"],
            f"{controller['health']:.0f}",
        ]
        for reason in controller["top_reasons"]:
            assert f"(−{reason['points']:.1f} points)" in row["cells"][4]
        assert "_" not in row["cells"][4], "a reason code instead of words"


# Per event table: the sre view's rows in the report's order, and the cells the report must show for each row.
EVENT_TABLES = {
    "link-drops": (
        f"FROM sre.link_drops WHERE start_ts >= '{DAY.start}' AND start_ts < '{DAY.end}' "
        "ORDER BY outage_s DESC NULLS FIRST, start_ts DESC, controller_id",
        lambda drop: {
            "controller": drop["controller_id"],
            "host": drop["host"],
            "rack": drop["rack"],
            "link (PCI address)": drop["link"],
            "start": utc(drop["start_ts"]),
            "cause (reported by the device)": drop["cause"] or "not reported",
        },
    ),
    "silent-resets": (
        f"FROM sre.controller_resets WHERE silent AND reset_ts >= '{DAY.start}' AND reset_ts < '{DAY.end}' "
        "ORDER BY reset_ts DESC, controller_id",
        lambda reset: {
            "controller": reset["controller_id"],
            "host": reset["host"],
            "rack": reset["rack"],
            "reset at": utc(reset["reset_ts"]),
            "detected at": utc(reset["detected_ts"]),
            "detection delay": f"{reset['detection_delay_s']:.1f} s",  # the sample's are all under two minutes
        },
    ),
}


@pytest.mark.parametrize("name", EVENT_TABLES)
def test_event_tables(page: WebDriver, views, name: str) -> None:
    sql, cells_of = EVENT_TABLES[name]
    expected = views(sql)
    assert expected, f"the sample fleet has no rows for {name}: nothing to look for"
    shown = section(page, name)
    count = len(shown["rows"])
    assert shown["caption"].endswith(f"top {count} of {len(expected)}" if len(expected) > count else f": {count}")
    for row, cells in zip(expected, shown["rows"], strict=False):
        want = cells_of(row)
        assert {header: cells["cells"][shown["headers"].index(header)] for header in want} == want
