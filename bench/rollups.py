"""Benchmark of the daily latency rollups: a 28-day p99.9 per controller, tier and op through the `sre` views.

    .venv/bin/python -m bench.rollups                      # 1,000 controllers x 28 days
    .venv/bin/python -m bench.rollups --controllers 200    # a quick run

28 days of hourly rollups are built synthetically, not simulated for 28 days: one simulated day of the fleet
(`Simulation`, seeded) is rolled up per hour (`hourly_rollup`, the asset's code) and repeated on each of the 28
days, into `marts.latency_rollups` of a fresh lake. The daily asset (`latency_rollups_daily`) then materializes
the 28 days through Dagster and the views are installed. Timed, in the same run and on the same lake: the query
through `sre.latency_daily` (the figure; target <= 2 s), the same query through `sre.latency_hourly` (what it
replaces) and a bare scan of the daily rollups' histogram column (the least any quantile must read). The two
queries' answers are compared: merging days of hours must give exactly the quantiles of merging the hours.
Each query runs --repeats times and the best is reported (the hourly one, the slow comparison, once). Figures vary
with machine load: the 1-minute load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console

from ingest import lake
from ingest.lake.raw_tables import RAW, ensure_tables
from ingest.settings import Settings
from ingest.sim.config import SimConfig
from ingest.sim.simulator import Simulation
from pipelines.definitions import defs
from pipelines.defs.latency.rollups import DAILY_NAME, NAME, hourly_rollup
from pipelines.lib.marts import MARTS, mart_key, replace_table
from pipelines.lib.partitions import DAILY, Window
from pipelines.lib.resources import LakeResource
from pipelines.materialize import Stage, run_stage
from pipelines.sql import install_views

DAYS = 28
TARGET_S = 2.0
QUERY = """WITH span AS (FROM {view} WHERE window_start >= $start AND window_start < $end)
           FROM leo_quantiles(span, ['controller_id', 'memory_tier', 'op'], [0.999])
           ORDER BY controller_id, memory_tier, op"""
console = Console(stderr=True)


def build_lake(settings: Settings, controllers: int, span: Window) -> int:
    """Raw inventory and 28 days of hourly rollups (one simulated day, repeated); returns the hourly rows."""
    sim = Simulation(SimConfig(controllers=controllers, hours=24, seed=28, start=span.start))
    day = hourly_rollup(chunk.latency for chunk in sim.chunks())
    start = day["window_start"]
    hours = pa.concat_tables(
        day.set_column(
            day.schema.get_field_index("window_start"),
            day.schema.field("window_start"),
            pc.add(start, pa.scalar(timedelta(days=d), pa.duration("ns"))).cast(start.type),
        )
        for d in range(DAYS)
    )
    con = lake.connect(settings)
    try:
        ensure_tables(con)
        con.register("inventory", sim.inventory)
        con.execute(f"INSERT INTO {RAW}.inventory BY NAME SELECT * FROM inventory")
        con.unregister("inventory")
        replace_table(con, NAME, hours)
    finally:
        con.close()
    return hours.num_rows


def timed(con, sql: str, params: dict, repeats: int) -> tuple[pa.Table, float]:
    """The answer and the best of `repeats` runs' seconds (the first also pays for reading the lake's catalog)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = con.execute(sql, params).to_arrow_table()
        seconds.append(time.perf_counter() - started)
    return result, min(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--controllers", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each query; the best is reported")
    args = parser.parse_args(argv)
    start = SimConfig().start
    span = Window(start, start + timedelta(days=DAYS))
    with tempfile.TemporaryDirectory(prefix="bench-rollups-") as tmp:
        settings = Settings().with_data_dir(Path(tmp))
        started = time.perf_counter()
        hourly_rows = build_lake(settings, args.controllers, span)
        console.print(f"{hourly_rows:,} hourly rollup rows over {DAYS} days in {time.perf_counter() - started:.0f} s")
        definitions = defs()
        lake_resource = LakeResource(data_dir=tmp)
        run = run_stage(
            definitions, lake_resource, Stage((mart_key(DAILY_NAME),), DAILY), span, dg.DagsterInstance.ephemeral()
        )
        console.print(f"latency_rollups_daily over {run.partitions} days in {run.seconds:.1f} s (not timed below)")
        con = lake.connect(settings)
        try:
            install_views(con)
            params = {"start": span.start, "end": span.end}
            (daily_rows,) = con.execute(f"SELECT count(*) FROM {MARTS}.{DAILY_NAME}").fetchone()
            load_before = os.getloadavg()[0]
            _, scan_s = timed(con, f"SELECT bucket_counts FROM {MARTS}.{DAILY_NAME}", {}, args.repeats)
            daily, daily_s = timed(con, QUERY.format(view="sre.latency_daily"), params, args.repeats)
            hourly, hourly_s = timed(con, QUERY.format(view="sre.latency_hourly"), params, 1)
            load_after = os.getloadavg()[0]
        finally:
            con.close()
    same = daily.equals(hourly)
    console.print(
        f"{args.controllers:,} controllers, {DAYS} days: p99.9 per controller, tier, op ({daily.num_rows:,} groups)\n"
        f"  through sre.latency_daily ({daily_rows:,} rows): {daily_s:.2f} s (target <= {TARGET_S:g} s: "
        f"{'met' if daily_s <= TARGET_S else 'NOT met'})\n"
        f"  through sre.latency_hourly ({hourly_rows:,} rows): {hourly_s:.2f} s ({hourly_s / daily_s:.1f}x the daily)\n"
        f"  bare scan of the daily histogram column: {scan_s:.2f} s (daily query {daily_s / scan_s:.1f}x it)\n"
        f"  answers identical: {'yes' if same else 'NO'}; load {load_before:.1f}-{load_after:.1f}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
