-- leo-fleet SQL for SREs: views and table macros in schema `sre` of the lake, created by pipelines.sql.install_views
-- (the Dagster asset sre/views runs it after the marts; `leo-fleet demo` does too). Every statement is idempotent
-- (CREATE OR REPLACE). Any DuckDB client that ATTACHes the lake and runs `USE <alias>` sees them; docs/sql.md.
-- Statements end with a semicolon at the end of a line; the installer splits on that.
-- Every ratio is summed bad events over summed events and every quantile comes from merged histograms
-- (leo_quantiles): never an average of percentages or percentiles.

CREATE SCHEMA IF NOT EXISTS sre;

-- The burn rate: error ratio / error budget (1 = spending exactly the budget), NULL without events. The SQL twin
-- of models.slo.burn.burn_rate, tested equal to it (tests/sql/test_burn_rate.py); every burn rate and budget below
-- uses it.
CREATE OR REPLACE MACRO sre.burn_rate(bad_events, events, error_budget) AS
    CASE WHEN events > 0 THEN (bad_events / events) / error_budget END;

-- One row per controller: the attributes of its latest deployment (region, rack, host, firmware, link width).
CREATE OR REPLACE VIEW sre.inventory AS
SELECT controller_id, region, rack, host, memdev, pci_bdf, sku, capacity_gb, max_link_width, max_link_speed_gts,
       firmware_version, deployed_at
FROM raw.inventory
QUALIFY row_number() OVER (PARTITION BY controller_id ORDER BY deployed_at DESC, kafka_offset DESC NULLS LAST) = 1;

-- Hourly latency histograms per controller, tier and op, with where the controller sits: feed to leo_quantiles.
CREATE OR REPLACE VIEW sre.latency_hourly AS
SELECT l.* EXCLUDE (p50_ns, p90_ns, p99_ns, p999_ns), i.region, i.rack, i.firmware_version,
       l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns
FROM marts.latency_rollups l LEFT JOIN sre.inventory i USING (controller_id);

-- The same per day (the day's hourly rollups merged): a 28-day quantile merges 28 rows per controller, tier and op.
CREATE OR REPLACE VIEW sre.latency_daily AS
SELECT l.* EXCLUDE (p50_ns, p90_ns, p99_ns, p999_ns), i.region, i.rack, i.firmware_version,
       l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns
FROM marts.latency_rollups_daily l LEFT JOIN sre.inventory i USING (controller_id);

-- Every hourly health score (0-100, higher is healthier) with its top reasons and the controller's attributes.
CREATE OR REPLACE VIEW sre.health_history AS
SELECT h.controller_id, i.region, i.rack, i.host, i.firmware_version, h.window_end, h.health, h.top_reasons,
       h.* EXCLUDE (controller_id, window_end, health, top_reasons)
FROM marts.health_scores h LEFT JOIN sre.inventory i USING (controller_id);

-- The latest health score of every controller: the fleet at a glance.
CREATE OR REPLACE VIEW sre.fleet_health AS
SELECT * FROM sre.health_history
QUALIFY row_number() OVER (PARTITION BY controller_id ORDER BY window_end DESC) = 1;

-- Per SLO, group and hour: events, bad events, SLI, the hour's burn rate (error ratio / error budget), the
-- burn rates of the standard windows at the end of the hour and the alert state then.
CREATE OR REPLACE VIEW sre.slo_status AS
SELECT slo, group_key, hour, objective, 1 - objective / 100 AS error_budget, events, bad_events, sli, met,
       sre.burn_rate(bad_events, events, 1 - objective / 100) AS burn_rate,
       * EXCLUDE (slo, group_key, hour, objective, events, bad_events, sli, met, state), state
FROM marts.slo_compliance;

-- Per SLO and group over [from_ts, to_ts): events, bad events, SLI, burn rate and the error budget remaining
-- (1 = untouched, 0 = spent, negative = overspent). The same figures as the SLO report and models.slo.burn.
CREATE OR REPLACE MACRO sre.slo_budget(from_ts, to_ts) AS TABLE
SELECT slo, group_key, any_value(objective) AS objective, any_value(error_budget) AS error_budget,
       sum(events)::BIGINT AS events, sum(bad_events)::BIGINT AS bad_events,
       CASE WHEN sum(events) > 0 THEN 1 - sum(bad_events) / sum(events) END AS sli,
       sre.burn_rate(sum(bad_events), sum(events), any_value(error_budget)) AS burn_rate,
       1 - sre.burn_rate(sum(bad_events), sum(events), any_value(error_budget)) AS budget_remaining
FROM sre.slo_status
WHERE hour >= from_ts AND hour < to_ts
GROUP BY slo, group_key;

-- Calendar compliance history: per ISO week and per month (UTC session: `leo-fleet sql` sets it), SLO and group.
-- Calendar periods, not the SLO's rolling window: models.slo.burn and the alert states use the rolling one.
CREATE OR REPLACE VIEW sre.slo_history AS
SELECT p.period, date_trunc(p.period, s.hour) AS period_start, s.slo, s.group_key, any_value(s.objective) AS objective,
       sum(s.events)::BIGINT AS events, sum(s.bad_events)::BIGINT AS bad_events,
       CASE WHEN sum(s.events) > 0 THEN 1 - sum(s.bad_events) / sum(s.events) END AS sli,
       1 - sre.burn_rate(sum(s.bad_events), sum(s.events), any_value(s.error_budget)) AS budget_remaining
FROM sre.slo_status s CROSS JOIN (VALUES ('week'), ('month')) p(period)
GROUP BY p.period, period_start, s.slo, s.group_key;

-- Alert episodes (page, ticket, insufficient_data, absent) with their length; end is null while one lasts.
CREATE OR REPLACE VIEW sre.slo_breaches AS
SELECT slo, group_key, kind, tier, factor, start, "end", epoch("end" - start) AS duration_s, peak_burn
FROM marts.slo_breaches;

-- Link drops, retrains and width or speed downgrades with outage and recovery times and where they happened.
CREATE OR REPLACE VIEW sre.link_events AS
SELECT e.*, i.region, i.rack, i.host, i.firmware_version, i.max_link_width
FROM marts.link_events e LEFT JOIN sre.inventory i USING (controller_id);

-- Controller resets, explicit and inferred (silent), with detection delay and where they happened.
CREATE OR REPLACE VIEW sre.controller_resets AS
SELECT r.*, epoch(r.detected_ts - r.reset_ts) AS detection_delay_s, i.region, i.rack, i.host, i.firmware_version
FROM marts.resets r LEFT JOIN sre.inventory i USING (controller_id);

-- Event rates implausible for the fleet (reset loops, flapping links, firmware cohorts), with a readable reason.
CREATE OR REPLACE VIEW sre.anomalies AS
SELECT scope, subject, kind, window_end, p_value,
       printf('%s: %.4g observed vs %.4g expected (p = %.2g)', kind, observed, expected, p_value) AS reasons
FROM marts.event_anomalies;

-- Early warning: each controller's risk of a UE, unplanned reset or link drop 15 min to 24 h ahead, per hour, with
-- its rank, alarm (risk >= the threshold chosen in training), alert (newly in alarm), the expected lead time (median
-- lead of the failures the model announced in training) and the features pushing the risk up, in words.
CREATE OR REPLACE VIEW sre.early_warning AS
SELECT w.controller_id, w.window_end, w.risk, w.rank, w.alarm, w.alert, w.threshold, w.expected_lead_h,
       array_to_string(list_transform(w.reasons, r -> r.reason || ' (+' || round(r.risk_change, 2) || ')'), '; ')
           AS reasons,
       w.model_version, i.region, i.rack, i.host, i.firmware_version
FROM marts.early_warning w LEFT JOIN sre.inventory i USING (controller_id);

-- Latency anomaly episodes: runs of consecutive hours in which the latency detector flagged a controller's (or the
-- fleet's: controller_id 'fleet') p99 or p99.9 of a tier and op, from marts.latency_anomalies. Start, peak (hour and
-- score), end (null while the series' last scored hour is still anomalous), the normal range at the start
-- (expected -+ z_half x spread: the values one hour could take unflagged) and the controller's latency SLO burn_1h
-- at the peak. The same episodes as models.latency_anomalies.episodes.
CREATE OR REPLACE VIEW sre.latency_anomalies AS
WITH scored AS (
    SELECT *, max(window_start) OVER (PARTITION BY controller_id, host, memory_tier, op, quantile) AS series_last
    FROM marts.latency_anomalies
)
SELECT a.controller_id, a.host, i.region, i.rack, a.memory_tier, a.op, a.quantile, a.episode_start AS start,
       arg_max(a.window_start, a.score) AS peak_at,
       CASE WHEN max(a.window_start) < any_value(a.series_last)
            THEN max(a.window_start + to_seconds(a.window_s::BIGINT)) END AS "end",
       count(*) AS intervals, max(a.score) AS peak_score, arg_max(a.value_ns, a.score) AS peak_value_ns,
       arg_min(a.normal_low_ns, a.window_start) AS normal_low_ns,
       arg_min(a.normal_high_ns, a.window_start) AS normal_high_ns, arg_max(a.burn_1h, a.score) AS burn_1h
FROM scored a LEFT JOIN sre.inventory i USING (controller_id)
WHERE a.anomalous
GROUP BY a.controller_id, a.host, i.region, i.rack, a.memory_tier, a.op, a.quantile, a.episode_start;

-- The SLO overview (marts.slo_overview, models/slo/overview.py) per SLO at every hour end: objective, rolling period,
-- SLI in words and as a ratio, error budget spent (100 = all of it, above = overspent) and remaining (percent, never
-- below 0; over_budget marks an overspent one), groups over budget, alert state with firing_since and resolved_at,
-- and how many groups burn it. Budgets are over the SLO's rolling period (7, 28 or 30 days), not the calendar.
CREATE OR REPLACE VIEW sre.slo_overview_history AS
SELECT slo, as_of, objective, "window", group_by, sli_text, events, bad_events, sli,
       100 * budget_spent AS budget_spent_pct, budget_remaining_pct, over_budget, groups, groups_over_budget, state,
       alerting_groups, firing_since, resolved_at, burning_group_count, burning_groups, tiers
FROM marts.slo_overview;

-- Every SLO at its latest hour end in (from_ts, to_ts]: the SLO list an SRE opens first, alerting and overspent
-- ones first. The report of a period reads it at the period's end.
CREATE OR REPLACE MACRO sre.slo_overview_at(from_ts, to_ts) AS TABLE
SELECT * EXCLUDE (tiers) FROM sre.slo_overview_history
WHERE as_of > from_ts AND as_of <= to_ts
QUALIFY row_number() OVER (PARTITION BY slo ORDER BY as_of DESC) = 1
ORDER BY state IN ('page', 'ticket') DESC, budget_spent_pct DESC NULLS LAST, slo;

-- Every SLO now (at the latest hour end of the marts).
CREATE OR REPLACE VIEW sre.slo_overview AS
FROM sre.slo_overview_at('-infinity'::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ);

-- Each multiwindow burn-rate pair of every SLO at every hour end: the long and short window's burn of the group
-- burning the pair fastest, against the pair's factor (above: both at or over it, so the tier fires unless the
-- minimum-events guard holds it back).
CREATE OR REPLACE VIEW sre.slo_burn_pairs AS
SELECT slo, as_of, t.severity, t.long || '/' || t.short AS pair, t.factor, t.long_burn, t.short_burn, t.above,
       t.group_key
FROM (SELECT slo, as_of, unnest(tiers) AS t FROM marts.slo_overview);

-- The groups burning each SLO at its latest hour end in (from_ts, to_ts] (alerting first, then over budget, worst
-- first; the overview lists up to 20 of burning_group_count), with the host and rack they sit in.
CREATE OR REPLACE MACRO sre.slo_burning_groups_at(from_ts, to_ts) AS TABLE
SELECT o.slo, o.group_by, o.as_of, o.rank, o.group_key,
       CASE o.group_by WHEN 'controller' THEN i.host WHEN 'host' THEN o.group_key END AS host,
       CASE o.group_by WHEN 'controller' THEN i.rack WHEN 'rack' THEN o.group_key END AS rack
FROM (SELECT slo, group_by, as_of, unnest(burning_groups) AS group_key,
             generate_subscripts(burning_groups, 1) AS rank FROM sre.slo_overview_at(from_ts, to_ts)) o
LEFT JOIN sre.inventory i ON o.group_by = 'controller' AND i.controller_id = o.group_key
ORDER BY o.slo, o.rank;

-- The groups burning each SLO now.
CREATE OR REPLACE VIEW sre.slo_burning_groups AS
FROM sre.slo_burning_groups_at('-infinity'::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ);

-- Link drops with the link (the controller's PCI address), outage (link down to up), recovery (to full
-- speed and width in L0) and the cause if the device reported one: the link events other than the drop itself
-- (surprise_down, dpc_containment, ...) within a minute of its start.
CREATE OR REPLACE VIEW sre.link_drops AS
SELECT e.controller_id, e.host, e.rack, e.pci_bdf AS link,
       e.start_ts, e.end_ts, e.outage_s, e.recovery_s,
       string_agg(DISTINCT replace(l.event, '_', ' '), ', ' ORDER BY replace(l.event, '_', ' ')) AS cause,
       e.evidence
FROM (SELECT d.*, i.pci_bdf FROM sre.link_events d LEFT JOIN sre.inventory i USING (controller_id)
      WHERE d.kind = 'drop') e
LEFT JOIN raw.link l ON l.controller_id = e.controller_id AND l.event NOT IN ('snapshot', 'link_down', 'link_up')
     AND l.ts BETWEEN e.start_ts - INTERVAL 1 MINUTE AND e.start_ts + INTERVAL 1 MINUTE
GROUP BY ALL;

-- The pilot (docs/pilot.md): one row per job of the A/B cohorts (raw.jobs, a re-sent batch's copies dropped) with
-- its time to solution and whether it completed or was lost when its host's memory went away (a reset, a link
-- drop). memory_tier: cxl (the host's DRAM expanded with CXL memory) or local_dram (the baseline). The first stored
-- copy is the one with the lowest rowid, found by grouping the ids alone: a window over whole rows held every job
-- of a 10,000-controller week (8.2 M) at once, 5.7 GiB in sre.pilot_summary, which reads this view three times.
CREATE OR REPLACE VIEW sre.pilot_jobs AS
SELECT job_id, host, workload, memory_tier, footprint_gb, host_memory_gb, start_ts, end_ts,
       epoch(end_ts - start_ts) AS duration_s, outcome, outcome = 'completed' AS completed,
       outcome IN ('killed_reset', 'killed_link_drop') AS lost
FROM raw.jobs
WHERE rowid IN (SELECT min(rowid) FROM raw.jobs GROUP BY job_id);

-- Per workload class and memory tier over the whole pilot: hosts, jobs by outcome, the mean time to solution of the
-- completed jobs, host-hours (the cohort's hosts x the pilot's span, first start to last end), completed jobs per
-- host-hour, memory per host and the GB-hours the jobs used. The pilot report adds intervals, verdicts and cost.
CREATE OR REPLACE VIEW sre.pilot_summary AS
WITH span AS (SELECT epoch(max(end_ts) - min(start_ts)) / 3600 AS hours FROM sre.pilot_jobs),
hosts AS (
    SELECT workload, memory_tier, count(*) AS hosts, avg(memory_gb) AS memory_per_host_gb
    FROM (SELECT workload, memory_tier, host, max(host_memory_gb) AS memory_gb FROM sre.pilot_jobs GROUP BY ALL)
    GROUP BY ALL),
jobs AS (
    SELECT workload, memory_tier, count(*) AS jobs, count(*) FILTER (WHERE completed) AS completed,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'killed_reset') AS killed_reset,
           count(*) FILTER (WHERE outcome = 'killed_link_drop') AS killed_link_drop,
           avg(duration_s) FILTER (WHERE completed) AS mean_time_to_solution_s,
           sum(footprint_gb * duration_s) / 3600 AS gb_hours
    FROM sre.pilot_jobs GROUP BY ALL)
SELECT j.workload, j.memory_tier, h.hosts, j.jobs, j.completed, j.failed, j.killed_reset, j.killed_link_drop,
       j.mean_time_to_solution_s, h.hosts * s.hours AS host_hours, j.completed / (h.hosts * s.hours) AS completed_per_host_hour,
       h.memory_per_host_gb, j.gb_hours
FROM jobs j JOIN hosts h USING (workload, memory_tier), span s
ORDER BY j.workload, j.memory_tier;
