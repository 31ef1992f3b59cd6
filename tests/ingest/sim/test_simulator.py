"""Simulator behaviour: determinism, complete truth, counter semantics across resets, gaps, latency levels."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from ingest.sim.config import SimConfig
from ingest.sim.confounders import confounder_knobs
from ingest.sim.fleet import build_inventory
from ingest.sim.parquet_sink import write_run
from ingest.sim.simulator import Simulation
from tests.ingest.sim.runs import simulated

# The fault model's own physics (counters, epochs, truth per chunk) on a clean run: confounders break those
# invariants on purpose (wraps, missing snapshots, maintenance resets) and have their own tests.
OFF = confounder_knobs("off")
CONFIG = SimConfig(controllers=300, hours=4.0, seed=11, chunk_intervals=30, confounders=OFF)


@pytest.fixture(scope="module")
def run():
    return simulated(CONFIG)


def rows(con, sql: str, parameters: list | None = None) -> list[tuple]:
    return con.execute(sql, parameters).fetchall()


def test_same_seed_gives_identical_files_and_another_seed_different_ones(tmp_path):
    config = SimConfig(controllers=40, hours=1.0, seed=5, chunk_intervals=15)
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_run(Simulation(config), first, progress=False)
    write_run(Simulation(config), second, progress=False)
    write_run(Simulation(SimConfig(controllers=40, hours=1.0, seed=6, chunk_intervals=15)), other, progress=False)
    names = sorted(p.name for p in first.iterdir())
    assert names == [
        "errors.parquet",
        "inventory.parquet",
        "jobs.parquet",
        "latency.parquet",
        "link.parquet",
        "maintenance.parquet",
        "run.json",
        "truth_faults.parquet",
    ]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        # A 40-controller hour rarely declares a maintenance window: both seeds' calendars are empty.
        if name not in ("run.json", "maintenance.parquet"):
            assert (first / name).read_bytes() != (other / name).read_bytes(), name


def test_truth_is_complete_in_the_union_of_chunks_and_each_row_starts_in_its_chunk(run):
    sim, chunks, _ = run
    assert pa.concat_tables(c.truth for c in chunks).equals(sim.truth.table)
    for index, chunk in enumerate(chunks):
        onset = chunk.truth.column("onset_ts").to_pylist()
        assert all(chunk.window_start <= t < chunk.window_end for t in onset) or index in (0, len(chunks) - 1)
    kinds = dict(rows(run[2], "SELECT kind, count(*) FROM truth GROUP BY kind"))
    assert kinds["controller_reset"] >= 20 and kinds["link_drop"] >= 10, kinds


def test_truth_never_travels_in_the_telemetry(run):
    _, chunks, _ = run
    for chunk in chunks:
        for table in (chunk.errors, chunk.link, chunk.latency):
            assert not {"kind", "precursor_onset_ts", "details"} & set(table.column_names)


def test_cumulative_counters_never_decrease_within_an_epoch(run):
    con = run[2]
    link_drops = rows(
        con,
        """SELECT count(*) FROM (
             SELECT counter_epoch, lag(counter_epoch) OVER w AS prev_epoch,
                    aer_cor_total::BIGINT - lag(aer_cor_total) OVER w AS d_aer,
                    recovery_entries::BIGINT - lag(recovery_entries) OVER w AS d_rec
             FROM link WINDOW w AS (PARTITION BY controller_id ORDER BY ts, event))
           WHERE counter_epoch = prev_epoch AND (d_aer < 0 OR d_rec < 0)""",
    )
    health_drops = rows(
        con,
        """SELECT count(*) FROM (
             SELECT counter_epoch, lag(counter_epoch) OVER w AS prev_epoch,
                    cor_vol_err_cnt::BIGINT - lag(cor_vol_err_cnt) OVER w AS d_ce,
                    uptime_s::BIGINT - lag(uptime_s) OVER w AS d_up
             FROM errors WHERE record_type = 'health_snapshot'
             WINDOW w AS (PARTITION BY controller_id ORDER BY ts))
           WHERE counter_epoch = prev_epoch AND (d_ce < 0 OR d_up <= 0)""",
    )
    epoch_backwards = rows(
        con,
        """SELECT count(*) FROM (SELECT counter_epoch - lag(counter_epoch) OVER
             (PARTITION BY controller_id ORDER BY ts) AS d FROM link WHERE event = 'snapshot') WHERE d < 0""",
    )
    assert link_drops == [(0,)] and health_drops == [(0,)] and epoch_backwards == [(0,)]


def test_every_reset_bumps_the_epoch_by_the_next_snapshot_and_restarts_counters(run):
    con = run[2]
    resets = rows(
        con,
        f"""
        WITH r AS (
          SELECT controller_id, onset_ts, end_ts, json_extract(details, '$.silent')::BOOLEAN AS silent
          FROM truth WHERE kind = 'controller_reset'
            AND onset_ts < TIMESTAMPTZ '{CONFIG.start}' + INTERVAL 4 HOUR - INTERVAL 2 MINUTE)
        SELECT r.silent,
          (SELECT counter_epoch FROM link l WHERE l.controller_id = r.controller_id AND l.event = 'snapshot'
             AND l.ts < r.onset_ts ORDER BY l.ts DESC LIMIT 1) AS epoch_before,
          (SELECT counter_epoch FROM link l WHERE l.controller_id = r.controller_id AND l.event = 'snapshot'
             AND l.ts >= r.onset_ts ORDER BY l.ts LIMIT 1) AS epoch_after,
          (SELECT min(ts) - r.onset_ts FROM link l WHERE l.controller_id = r.controller_id
             AND l.event = 'snapshot' AND l.ts >= r.onset_ts) AS seen_after,
          (SELECT count(*) FROM errors e WHERE e.controller_id = r.controller_id
             AND e.record_type = 'controller_reset' AND e.ts = r.onset_ts) AS reset_rows,
          (SELECT uptime_s FROM errors e WHERE e.controller_id = r.controller_id AND e.record_type = 'health_snapshot'
             AND e.ts >= r.end_ts ORDER BY e.ts LIMIT 1) AS uptime_after,
          (SELECT epoch(min(ts) - r.onset_ts) FROM errors e WHERE e.controller_id = r.controller_id
             AND e.record_type = 'health_snapshot' AND e.ts >= r.end_ts) AS health_after_s
        FROM r""",
    )
    assert len(resets) >= 20 and any(silent for silent, *_ in resets) and not all(silent for silent, *_ in resets)
    for silent, before, after, seen_after, reset_rows, uptime_after, health_after_s in resets:
        if before is None or after is None:
            continue  # reset during a rack outage's host gap at the very end, or before the first snapshot
        assert after > before
        assert seen_after.total_seconds() <= CONFIG.interval_s
        assert reset_rows == (0 if silent else 1)
        if uptime_after is not None:
            assert uptime_after <= health_after_s + 1  # uptime restarted at the reset


def test_silent_resets_leave_no_reset_row_but_explicit_ones_replay_their_log_after_reprobe(run):
    con = run[2]
    replays = rows(
        con,
        """SELECT count(*), count(*) FILTER (WHERE e.device_ts < r.onset_ts AND e.ts >= r.end_ts)
           FROM truth r JOIN errors e ON e.controller_id = r.controller_id
             AND e.ts BETWEEN r.end_ts AND r.end_ts + INTERVAL 3 SECOND AND e.record_type IN ('general_media', 'dram')
           WHERE r.kind = 'controller_reset' AND NOT json_extract(r.details, '$.silent')::BOOLEAN
             AND json_extract_string(r.details, '$.cause') <> 'rack_event'""",
    )
    total, replayed = replays[0]
    assert total > 10 and replayed == total
    silent_rows = rows(
        con,
        """SELECT count(*) FROM truth r JOIN errors e ON e.controller_id = r.controller_id
             AND e.record_type = 'controller_reset' AND e.ts BETWEEN r.onset_ts AND r.end_ts
           WHERE r.kind = 'controller_reset' AND json_extract(r.details, '$.silent')::BOOLEAN""",
    )
    assert silent_rows == [(0,)]


def test_link_drops_leave_a_latency_gap_and_report_the_outage(run):
    con = run[2]
    drops = rows(
        con,
        f"""SELECT
              (SELECT count(*) FROM latency l WHERE l.controller_id = d.controller_id
                 AND l.window_start > d.onset_ts - INTERVAL {CONFIG.interval_s} SECOND AND l.window_start < d.end_ts),
              (SELECT any_value(down_ms) FROM link k WHERE k.controller_id = d.controller_id AND k.event = 'link_up'
                 AND k.ts = d.end_ts),
              epoch(d.end_ts - d.onset_ts) * 1000,
              (SELECT count(*) FROM errors e WHERE e.controller_id = d.controller_id AND e.ts = d.onset_ts
                 AND e.record_type = 'aer_event' AND list_contains(e.error_names, 'SDES'))
            FROM truth d WHERE kind = 'link_drop' AND d.end_ts IS NOT NULL""",
    )
    assert len(drops) >= 10
    for latency_rows, down_ms, outage_ms, sdes_rows in drops:
        assert latency_rows == 0
        assert down_ms is not None and abs(down_ms - outage_ms) <= 1
        assert sdes_rows == 1


def test_uptime_runs_on_through_a_link_drop(run):
    """A drop re-enumerates the device (new counter epoch) but does not reboot it: uptime keeps counting."""
    con = run[2]
    pairs = rows(
        con,
        """WITH snaps AS (SELECT controller_id, ts, uptime_s, counter_epoch FROM errors
                          WHERE record_type = 'health_snapshot'),
                resets AS (SELECT controller_id, onset_ts FROM truth WHERE kind = 'controller_reset')
           SELECT epoch(a.ts - b.ts), a.uptime_s::BIGINT - b.uptime_s::BIGINT, a.counter_epoch - b.counter_epoch
           FROM truth d
           JOIN snaps b ON b.controller_id = d.controller_id
             AND b.ts = (SELECT max(ts) FROM snaps s WHERE s.controller_id = d.controller_id AND s.ts < d.onset_ts)
           JOIN snaps a ON a.controller_id = d.controller_id
             AND a.ts = (SELECT min(ts) FROM snaps s WHERE s.controller_id = d.controller_id AND s.ts > d.end_ts)
           WHERE d.kind = 'link_drop' AND NOT EXISTS (SELECT 1 FROM resets r WHERE r.controller_id = d.controller_id
                                                        AND r.onset_ts BETWEEN b.ts AND a.ts)""",
    )
    assert len(pairs) >= 5
    for elapsed_s, uptime_gain_s, epochs in pairs:
        assert epochs >= 1  # the drop did open a new counter epoch
        assert abs(uptime_gain_s - elapsed_s) <= 1


def test_resets_and_link_drops_never_overlap_on_a_controller():
    """No outage begins while the controller's link is still down from another (or within the guard after it):
    a link cannot drop while it is down, and no reset lands seconds before a drop."""
    config = SimConfig(controllers=3000, hours=24.0, seed=12, confounders=OFF)
    truth = Simulation(config).truth.table
    con = duckdb.connect()
    con.register("truth", truth)
    outages = rows(
        con,
        """SELECT kind, json_extract_string(details, '$.cause'), onset_ts,
                  lag(end_ts) OVER w, lag(kind) OVER w, lag(json_extract_string(details, '$.cause')) OVER w
           FROM truth WHERE kind IN ('controller_reset', 'link_drop')
           WINDOW w AS (PARTITION BY controller_id ORDER BY onset_ts)""",
    )
    assert sum(kind == "link_drop" for kind, *_ in outages) > 50
    guard = config.resets.outage_guard_s
    for kind, cause, onset, previous_end, previous_kind, previous_cause in outages:
        if previous_end is None or cause == "rack_event":
            continue  # a controller's first outage; rack power returning resets whatever the link was doing
        assert (onset - previous_end).total_seconds() >= guard, (kind, previous_kind, previous_cause)


def test_latency_levels_match_the_documented_ranges(run):
    con = run[2]
    tiers = dict(
        rows(
            con,
            "SELECT memory_tier, median(sum_ns / count) FROM latency WHERE op = 'read' GROUP BY memory_tier",
        )
    )
    assert 220 <= tiers["cxl"] <= 420  # idle 220-300 ns, higher under load
    assert 90 <= tiers["local_dram"] <= 135
    storm = rows(
        con,
        """WITH s AS (SELECT controller_id, onset_ts, end_ts FROM truth WHERE kind = 'ce_storm' AND end_ts IS NOT NULL
                      AND end_ts - onset_ts > INTERVAL 3 MINUTE)
           SELECT avg(l.sum_ns / l.count) FILTER (
                    WHERE l.window_start >= s.onset_ts AND l.window_start + INTERVAL 60 SECOND <= s.end_ts)
                / avg(l.sum_ns / l.count) FILTER (
                    WHERE l.window_start < s.onset_ts - INTERVAL 10 MINUTE
                       OR l.window_start > s.end_ts + INTERVAL 10 MINUTE)
           FROM s JOIN latency l USING (controller_id) WHERE l.op = 'read' GROUP BY s.controller_id, s.onset_ts""",
    )
    ratios = [r for (r,) in storm if r is not None]
    assert ratios and all(1.6 <= r <= 4.0 for r in ratios), ratios


def test_inventory_is_deterministic_and_describes_leo_class_controllers():
    inventory = build_inventory(CONFIG)
    assert inventory.equals(build_inventory(CONFIG))
    assert not inventory.equals(build_inventory(SimConfig(controllers=300, seed=12)))
    con = duckdb.connect()
    con.register("inventory", inventory)
    (summary,) = rows(
        con,
        """SELECT count(*), count(DISTINCT controller_id), max(capacity_gb), min(capacity_gb),
                  bool_and(dram_type = 'DDR5-5600'), bool_and(max_link_speed_gts = 32),
                  bool_and((sku = 'aic' AND max_link_width = 16) OR (sku = 'e3s' AND max_link_width = 8)),
                  count(DISTINCT sku), count(DISTINCT firmware_version), count(DISTINCT region),
                  bool_and(deployed_at < ?)
           FROM inventory""",
        [CONFIG.start],
    )
    n, distinct, max_gb, min_gb, ddr5, gen5, link_matches_sku, skus, firmwares, regions, deployed = summary
    assert n == distinct == CONFIG.controllers
    assert max_gb <= 2048 and min_gb >= 128
    assert ddr5 and gen5 and link_matches_sku and deployed
    assert skus == 2 and firmwares >= 3 and regions == 3
    racks_per_host = rows(con, "SELECT max(n) FROM (SELECT host, count(DISTINCT rack) n FROM inventory GROUP BY host)")
    assert racks_per_host == [(1,)]
