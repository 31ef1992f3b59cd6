"""The live path reconciled with the system of record: once an hour's resets and link drops are materialised, the
live incidents that started in it must be the same incidents (same ids, start and end). Differences are counted
and named; an hour the live path did not cover (not running, or not yet past it) is reported as such."""

import warnings

import dagster as dg
import duckdb

from models.incidents import incidents, reconcile
from models.link_events import INCIDENTS_SCHEMA
from models.resets import RESETS_SCHEMA
from pipelines.defs.detections.detections import LINK_EVENTS, RESETS
from pipelines.lib.marts import MARTS, mart_key, read_window
from pipelines.lib.partitions import HOURLY, Window
from pipelines.lib.resources import LakeResource
from pipelines.live.detect import CONTEXT, EDGE, SETTLE
from pipelines.live.tables import LIVE_INCIDENTS, POSITION
from pipelines.sql import SCHEMA


def covered(con: duckdb.DuckDBPyConnection, window: Window) -> bool:
    """Whether the live path ran from before `window` (with its full context) until past its end."""
    tables = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?",
            [SCHEMA],
        ).fetchall()
    }
    if not {LIVE_INCIDENTS.split(".")[1], POSITION.split(".")[1]} <= tables:
        return False
    first, last = con.execute(f"SELECT min(buffer_from), max(buffer_from) FROM {POSITION}").fetchone()
    if first is None:
        return False
    return first + EDGE <= window.start and last + CONTEXT >= window.end + SETTLE


# Partitioned checks are a "preview" feature in Dagster 1.13; the hourly window is what this check is about.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)

    @dg.asset_check(
        asset=mart_key(LINK_EVENTS),
        name="live_matches_hourly",
        description="The live path's incidents (sre.live_incidents) that started in the hour are the hourly marts' "
        "resets and link drops: same ids, start and end. Counts and names the differences (warning).",
        additional_deps=[mart_key(RESETS)],
        partitions_def=HOURLY,
    )
    def live_matches_hourly(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        window = Window.of(context)
        with lake.connection(read_only=True) as con:
            if not covered(con, window):
                return dg.AssetCheckResult(passed=True, metadata={"covered": False, "window": str(window)})
            resets = read_window(con, f"{MARTS}.{RESETS}", "reset_ts", window, ", ".join(RESETS_SCHEMA.names))
            links = read_window(con, f"{MARTS}.{LINK_EVENTS}", "start_ts", window, ", ".join(INCIDENTS_SCHEMA.names))
            live = read_window(con, LIVE_INCIDENTS, "start_ts", window, "incident_id, start_ts, end_ts")
        hourly = incidents(resets.cast(RESETS_SCHEMA), links.cast(INCIDENTS_SCHEMA))
        found = reconcile(live, hourly)
        return dg.AssetCheckResult(
            passed=found.differences == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "covered": True,
                "window": str(window),
                "matched": found.matched,
                "differences": found.differences,
                "only_live": ", ".join(found.only_live) or "none",
                "only_hourly": ", ".join(found.only_hourly) or "none",
                "different_times": ", ".join(found.different_times) or "none",
            },
        )
