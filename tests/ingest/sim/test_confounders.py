"""Telemetry confounders: each one does to the rows what its truth row says, and nothing else is a fault."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from ingest.contract import CONFOUNDER_KINDS, HISTOGRAM_SCALE
from ingest.sim.config import SimConfig
from ingest.sim.confounders import CONFOUNDER_PROFILES, COUNTER_MODULUS, confounder_knobs
from ingest.sim.simulator import Simulation
from tests.ingest.sim.runs import simulated

HEAVY = SimConfig(controllers=160, hours=6.0, seed=31, confounders=confounder_knobs("heavy"))


@pytest.fixture(scope="module")
def heavy():
    sim, _, con = simulated(HEAVY)
    return sim, con


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_profiles_scale_the_rates_and_off_has_none():
    off, default, heavy = (confounder_knobs(p) for p in CONFOUNDER_PROFILES)
    assert not off.enabled and default.enabled and heavy.profile == "heavy"
    assert off.collector_outage_per_host_day == 0 < default.collector_outage_per_host_day
    assert heavy.collector_outage_per_host_day > default.collector_outage_per_host_day
    with pytest.raises(ValueError, match="confounders must be one of"):
        confounder_knobs("loud")
    sim = Simulation(SimConfig(controllers=60, hours=2.0, seed=3, confounders=off))
    truth = pa.concat_tables(c.truth for c in sim.chunks())
    assert not set(truth.column("kind").cast(pa.string()).to_pylist()) & set(CONFOUNDER_KINDS)
    assert sim.maintenance.num_rows == 0


def test_every_confounder_kind_has_truth_rows(heavy):
    _, con = heavy
    kinds = dict(rows(con, "SELECT kind::VARCHAR, count(*) FROM truth GROUP BY 1"))
    assert all(kinds.get(kind, 0) > 0 for kind in CONFOUNDER_KINDS), kinds


def test_collector_outages_and_agent_restarts_send_no_snapshots_and_uptime_runs_on(heavy):
    _, con = heavy
    inside = rows(
        con,
        """SELECT count(*) FROM errors e JOIN truth t USING (controller_id)
        WHERE t.kind IN ('collector_outage', 'agent_restart') AND e.record_type = 'health_snapshot'
          AND e.ts >= t.onset_ts AND e.ts < t.end_ts AND e.ts = e.device_ts""",
    )[0][0]
    assert inside == 0
    # Across an outage without a reset, uptime advanced by the time that passed (the device never stopped).
    gaps = rows(
        con,
        """WITH s AS (SELECT controller_id, ts, uptime_s, counter_epoch,
               lag(ts) OVER w AS prev_ts, lag(uptime_s) OVER w AS prev_up, lag(counter_epoch) OVER w AS prev_epoch
             FROM errors WHERE record_type = 'health_snapshot' AND ts = device_ts
             WINDOW w AS (PARTITION BY controller_id ORDER BY ts))
        SELECT s.uptime_s - s.prev_up, epoch(s.ts - s.prev_ts) FROM s JOIN truth t USING (controller_id)
        WHERE t.kind = 'collector_outage' AND s.prev_ts < t.onset_ts AND s.ts >= t.end_ts
          AND s.counter_epoch = s.prev_epoch AND epoch(s.ts - s.prev_ts) < 7200""",
    )
    assert gaps and all(abs(up - elapsed) <= 1 for up, elapsed in gaps), gaps[:5]


def test_a_restarted_agent_sends_its_last_snapshot_again(heavy):
    """When the agent is back, its last snapshot comes again: same uptime and counters, new time and message id."""
    _, con = heavy
    resent, restarts = rows(
        con,
        """SELECT count(DISTINCT (t.controller_id, t.onset_ts)),
               (SELECT count(*) FROM truth WHERE kind = 'agent_restart')
        FROM truth t JOIN errors again ON again.controller_id = t.controller_id AND again.ts = t.end_ts
        JOIN errors last ON last.controller_id = t.controller_id AND last.record_type = 'health_snapshot'
          AND last.ts < t.onset_ts AND last.uptime_s = again.uptime_s
          AND last.cor_vol_err_cnt = again.cor_vol_err_cnt AND last.event_id <> again.event_id
        WHERE t.kind = 'agent_restart' AND again.record_type = 'health_snapshot'""",
    )[0]
    assert 0 < resent <= restarts, (resent, restarts)
    keys = rows(con, "SELECT count(*) - count(DISTINCT event_id) FROM errors")[0][0]
    assert keys == 0  # a re-sent snapshot is a new message, not a redelivery


def test_maintenance_windows_are_declared_and_hold_a_planned_reset_of_each_controller(heavy):
    _, con = heavy
    windows = rows(con, "SELECT count(*) FROM maintenance")[0][0]
    assert windows > 0
    unplanned = rows(
        con,
        """SELECT count(*) FROM truth m JOIN inventory i USING (controller_id)
        WHERE m.kind = 'maintenance' AND (NOT EXISTS (
            SELECT 1 FROM truth r WHERE r.controller_id = m.controller_id AND r.kind = 'controller_reset'
              AND json_extract_string(r.details, '$.cause') = 'maintenance'
              AND json_extract_string(r.details, '$.reset_kind') IN ('warm', 'fw_activate')
              AND r.onset_ts >= m.onset_ts AND r.onset_ts < coalesce(m.end_ts, 'infinity'::TIMESTAMPTZ))
          OR NOT EXISTS (SELECT 1 FROM maintenance w WHERE w.host = i.host::VARCHAR
              AND w.start_ts = m.onset_ts AND w.end_ts = coalesce(m.end_ts, w.end_ts)))""",
    )[0][0]
    assert unplanned == 0


def test_a_clock_step_moves_the_host_timestamps_by_its_offset(heavy):
    _, con = heavy
    found = rows(
        con,
        """SELECT epoch(e.ts - e.device_ts), CAST(json_extract(t.details, '$.offset_s') AS DOUBLE)
        FROM errors e JOIN truth t USING (controller_id)
        WHERE t.kind = 'clock_step' AND e.record_type = 'health_snapshot'
          AND e.device_ts >= t.onset_ts AND e.device_ts < t.end_ts
          AND NOT EXISTS (SELECT 1 FROM errors again WHERE again.controller_id = e.controller_id
              AND again.device_ts = e.device_ts AND again.record_type = 'health_snapshot'
              AND again.event_id <> e.event_id)  -- a snapshot a restarted agent sent again""",
    )
    assert found and all(abs(shift - offset) < 1e-3 for shift, offset in found)


def test_32_bit_counters_wrap_within_an_epoch_and_widen_after_the_firmware_update(heavy):
    _, con = heavy
    wraps = rows(
        con,
        """WITH s AS (SELECT controller_id, device_ts, counter_epoch, cor_vol_err_cnt,
               lag(cor_vol_err_cnt) OVER w AS prev, lag(counter_epoch) OVER w AS prev_epoch
             FROM errors WHERE record_type = 'health_snapshot'
             WINDOW w AS (PARTITION BY controller_id ORDER BY device_ts))
        SELECT count(*) FILTER (WHERE prev > cor_vol_err_cnt AND prev_epoch = counter_epoch), count(*)
        FROM s JOIN truth t USING (controller_id)
        WHERE t.kind = 'counter_wrap' AND json_extract_string(t.details, '$.counter') = 'cor_vol_err_cnt'
          AND s.device_ts = t.end_ts""",
    )[0]
    assert wraps[1] > 0 and wraps[0] == wraps[1], wraps
    jumps = rows(
        con,
        f"""WITH s AS (SELECT controller_id, ts, rx_err, lag(rx_err) OVER w AS prev, lag(ts) OVER w AS prev_ts
             FROM link WHERE event = 'snapshot' AND counter_epoch = 0
             WINDOW w AS (PARTITION BY controller_id ORDER BY ts))
        SELECT count(*) FROM s JOIN truth t USING (controller_id)
        WHERE t.kind = 'counter_width_change' AND s.prev_ts < t.onset_ts AND s.ts >= t.onset_ts
          AND s.rx_err::HUGEINT - s.prev >= {COUNTER_MODULUS}""",
    )[0][0]
    changes = rows(con, "SELECT count(*) FROM truth WHERE kind = 'counter_width_change'")[0][0]
    assert changes > 0 and jumps > 0


def test_partial_telemetry_removes_only_its_stream(heavy):
    _, con = heavy
    for stream, table, where in (
        ("health_snapshot", "errors", "record_type = 'health_snapshot' AND x.ts = x.device_ts"),
        ("link_snapshot", "link", "event = 'snapshot'"),
    ):
        inside = rows(
            con,
            f"""SELECT count(*) FROM {table} x JOIN truth t USING (controller_id)
            WHERE t.kind = 'partial_telemetry' AND json_extract_string(t.details, '$.missing') = '{stream}'
              AND {where} AND x.ts >= t.onset_ts AND x.ts < t.end_ts""",
        )[0][0]
        assert inside == 0, stream
    # The other streams of a host missing its latency rows keep coming.
    kept = rows(
        con,
        """SELECT count(*) FROM link x JOIN truth t USING (controller_id)
        WHERE t.kind = 'partial_telemetry' AND json_extract_string(t.details, '$.missing') = 'latency'
          AND x.event = 'snapshot' AND x.ts >= t.onset_ts AND x.ts < t.end_ts""",
    )[0][0]
    assert kept > 0


def test_the_rollout_shifts_its_cohort_latency_by_whole_buckets(heavy):
    _, con = heavy
    clean = SimConfig(controllers=160, hours=6.0, seed=31, confounders=confounder_knobs("off"))
    con.register("clean", pa.concat_tables(c.latency for c in Simulation(clean).chunks()))
    shift = round(np.log2(HEAVY.confounders.rollout_latency_multiplier) * 2**HISTOGRAM_SCALE)
    found = rows(
        con,
        """SELECT t.kind IS NOT NULL AND l.window_start >= t.onset_ts, median(l.bucket_offset - c.bucket_offset)
        FROM latency l JOIN clean c USING (controller_id, window_start, op, memory_tier)
        LEFT JOIN truth t ON t.controller_id = l.controller_id AND t.kind = 'firmware_rollout'
        WHERE l.memory_tier = 'cxl' GROUP BY 1 ORDER BY 1""",
    )
    assert dict(found) == {False: 0, True: shift}
    rollout = rows(con, "SELECT min(details) FROM truth WHERE kind = 'firmware_rollout'")[0][0]
    assert json.loads(rollout)["latency_multiplier"] == HEAVY.confounders.rollout_latency_multiplier


def test_a_stepped_clock_leaves_latency_windows_on_the_grid(heavy):
    """Histogram windows stay on the window grid the rollups need, and no two share a window."""
    _, con = heavy
    off_grid, repeated = rows(
        con,
        f"""SELECT count(*) FILTER (WHERE epoch_us(window_start) % {HEAVY.interval_s * 10**6} <> 0),
               count(*) - count(DISTINCT (controller_id, window_start, memory_tier, head_or_ld, op))
        FROM latency""",
    )[0]
    assert off_grid == 0 and repeated == 0
