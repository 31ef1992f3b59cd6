"""The live path reconciled with the system of record: once an hour's resets, link drops and SLO pages are
materialised, the live incidents that started in it must be the same incidents (same ids, start and end).
Differences are counted and named; an hour the live path did not cover (not running, or not yet past it) is
reported as such."""

import warnings

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from models.incidents import incidents, reconcile
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from pipelines.defs.detections.detections import LINK_EVENTS, RESETS
from pipelines.defs.slo.slo_assets import BREACHES
from pipelines.lib.marts import MARTS, mart_key, read_window
from pipelines.lib.partitions import HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.lib.slos import load
from pipelines.live.burn import SLO_PAGE, live_slos, page_incidents
from pipelines.live.detect import CONTEXT, EDGE, SETTLE, SLO_CONTEXT
from pipelines.live.tables import LIVE_INCIDENTS, POSITION


def _has_table(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    found = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
        [schema, name],
    )
    return found.fetchone() is not None


def covered(con: duckdb.DuckDBPyConnection, window: Window) -> bool:
    """Whether the live path ran from before `window` (with its full context) until past its end."""
    if not (_has_table(con, LIVE_INCIDENTS) and _has_table(con, POSITION)):
        return False
    first, last = con.execute(f"SELECT min(buffer_from), max(buffer_from) FROM {POSITION}").fetchone()
    if first is None:
        return False
    return first + (SLO_CONTEXT - CONTEXT) + EDGE <= window.start and last + SLO_CONTEXT >= window.end + SETTLE


def _pages(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[pa.Table, pa.Table]:
    """(hourly, live) fast-burn pages that began in `window`: an episode starts at the end of a step, so the marts
    keep it in the hour that step closes (closed="right")."""
    breaches = read_window(con, f"{MARTS}.{BREACHES}", "start", window, closed="right")
    tiers = {slo.name: tier for slo, tier in live_slos(load(), SLO_CONTEXT - CONTEXT)}
    live = read_window(con, LIVE_INCIDENTS, "start_ts", window, closed="right", where=f"kind = '{SLO_PAGE}'")
    return page_incidents(breaches, tiers), live


def _reconcile(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, object]:
    resets = read_window(con, f"{MARTS}.{RESETS}", "reset_ts", window, ", ".join(RESETS_SCHEMA.names))
    links = read_window(con, f"{MARTS}.{LINK_EVENTS}", "start_ts", window, ", ".join(INCIDENTS_SCHEMA.names))
    hourly = [incidents(resets.cast(RESETS_SCHEMA), links.cast(INCIDENTS_SCHEMA))]
    live = [read_window(con, LIVE_INCIDENTS, "start_ts", window, where=f"kind <> '{SLO_PAGE}'")]
    pages = _has_table(con, f"{MARTS}.{BREACHES}")
    if pages:
        hourly_pages, live_pages = _pages(con, window)
        hourly.append(hourly_pages)
        live.append(live_pages.select(live[0].column_names))
    expected = pa.concat_tables(hourly)
    # A page still burning when its hour was evaluated has no end in the marts: only its id and start compare.
    still = pc.and_(pc.equal(expected["kind"], SLO_PAGE), pc.is_null(expected["end_ts"]))
    found = reconcile(pa.concat_tables(live), expected, frozenset(expected.filter(still)["incident_id"].to_pylist()))
    return {
        "covered": True,
        "slo_pages_compared": pages,
        "matched": found.matched,
        "differences": found.differences,
        "only_live": ", ".join(found.only_live) or "none",
        "only_hourly": ", ".join(found.only_hourly) or "none",
        "different_times": ", ".join(found.different_times) or "none",
    }


# Partitioned checks are a "preview" feature in Dagster 1.13; the hourly window is what this check is about.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=mart_key(LINK_EVENTS),
        name="live_matches_hourly",
        description="The live path's incidents (sre.live_incidents) that started in the hour are the hourly marts' "
        "resets, link drops and fast-burn SLO pages: same ids, start and end. Counts and names the differences "
        "(warning).",
        additional_deps=[mart_key(RESETS), mart_key(BREACHES)],
        partitions_def=HOURLY,
    )
    def live_matches_hourly(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        window = Window.of(context)
        with lake.connection(read_only=True) as con:
            if not covered(con, window):
                return dg.AssetCheckResult(passed=True, metadata={"covered": False, "window": str(window)})
            found = _reconcile(con, window)
        return dg.AssetCheckResult(
            passed=found["differences"] == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**found, "window": str(window)},
        )
