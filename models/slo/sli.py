"""SLI event series: good and total events per group and step, from latency histograms or from raw event rows.

Both sources give the same columns (the SLO's group columns, ts, good, total), the input of models.slo.burn.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from models.histogram import good_events
from models.rollup import floor_windows
from models.slo.spec import DIMENSIONS, EventsSli, LatencySli, Slo


def require_columns(table: pa.Table, slo: Slo, columns: tuple[str, ...], what: str) -> None:
    for column in columns:
        if column not in table.column_names:
            hint = " (join the inventory: models.rollup.with_inventory)" if column in DIMENSIONS.values() else ""
            raise ValueError(f"SLO {slo.name!r}: the {what} has no column {column!r}{hint}")


def latency_series(latency: pa.Table, slo: Slo, step_s: int = 60) -> pa.Table:
    """Good/total CXL accesses per group and step from latency rows (raw windows or finer rollups).

    Columns: the SLO's group columns, ts (start of the step), good, total (int64). Local-DRAM baseline rows
    are excluded: they are not served by a controller.
    """
    if not isinstance(slo.sli, LatencySli):
        raise ValueError(f"SLO {slo.name!r} is not a latency SLO")
    needed = ("memory_tier", "op", "window_start", "window_s", "count", "over_slo", "slo_threshold_ns")
    require_columns(latency, slo, (*needed, *slo.group_columns), "latency table")
    chosen = pc.and_(pc.equal(latency.column("memory_tier"), "cxl"), pc.equal(latency.column("op"), slo.sli.op))
    # Count good events on every row and filter only the narrow columns: filtering the bucket lists would
    # cost more than counting them.
    series = pa.table(
        {
            **{c: latency.column(c) for c in slo.group_columns},
            "ts": floor_windows(latency, step_s),
            "good": good_events(latency, slo.sli.threshold_ns),
            "total": latency.column("count").cast(pa.int64()),
        }
    ).filter(chosen)
    summed = series.group_by([*slo.group_columns, "ts"], use_threads=False).aggregate(
        [("good", "sum"), ("total", "sum")]
    )
    return summed.rename_columns([*slo.group_columns, "ts", "good", "total"])


def events_query(slo: Slo, relation: str, inventory: str, step_s: int = 60, maintenance: str | None = None) -> str:
    """DuckDB SQL for an events SLO's series (same columns as latency_series) over `relation`.

    The predicates see only the event table's columns; group columns come from `inventory` (one row per
    controller, e.g. the latest inventory row), joined by controller_id. Events of a controller inside one of its
    declared `maintenance` windows (contract.MAINTENANCE_SCHEMA rows) are neither good nor bad: planned downtime
    spends no error budget.
    """
    if not isinstance(slo.sli, EventsSli):
        raise ValueError(f"SLO {slo.name!r} is not an events SLO")
    groups = "".join(f"i.{c}, " for c in slo.group_columns)
    ts = f"r.{slo.sli.timestamp}"
    planned = (
        f" AND NOT EXISTS (SELECT 1 FROM {maintenance} m"
        f" WHERE m.controller_id = r.controller_id AND {ts} BETWEEN m.start_ts AND m.end_ts)"
        if maintenance
        else ""
    )
    return (
        f"WITH events AS (SELECT controller_id, {ts} AS ts, coalesce(({slo.sli.bad}), false) AS bad"
        f" FROM {relation} r WHERE ({slo.sli.total}){planned})\n"
        f"SELECT {groups}time_bucket(INTERVAL '{int(step_s)} seconds', e.ts) AS ts,"
        " (count(*) - count(*) FILTER (WHERE e.bad))::BIGINT AS good, count(*)::BIGINT AS total\n"
        f"FROM events e JOIN {inventory} i USING (controller_id) GROUP BY ALL"
    )
