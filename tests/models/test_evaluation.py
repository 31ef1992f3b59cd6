import json
import re

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from ingest.contract import RUN_DESCRIPTION
from models.evaluation import (
    alarm_episodes,
    failure_events,
    failure_labels,
    held_out_controllers,
    min_cost_threshold,
    pr_auc_gain_interval,
    score_events,
    score_ranking,
    truth_events,
)
from models.holdout import Protocol, false_silent_resets
from models.resets import RESETS_SCHEMA
from models.series import NS_PER_HOUR, NS_PER_S, NULL_TS, Controllers
from tests.models.tables import at, truth

S = NS_PER_S


def test_alarms_merge_into_episodes_measured_from_the_episode_start():
    codes = np.array([0, 0, 0, 0, 1])
    ts = np.array([0, 30, 59, 61, 30]) * S
    ep_codes, ep_ts = alarm_episodes(codes, ts, cooldown_ns=60 * S)
    assert ep_codes.tolist() == [0, 0, 1]
    assert (ep_ts // S).tolist() == [0, 61, 30]


def test_event_windows_count_hits_misses_false_episodes_and_delays():
    # Controller 0: event at 100 s detected at 130 s (plus a duplicate alarm in cooldown), event at 1000 s missed.
    # Controller 1: an alarm with no event: one false episode. Controller 2: event detected 10 s early, inside pre.
    score = score_events(
        np.array([0, 0, 2]),
        np.array([100, 1000, 500]) * S,
        np.array([0, 0, 1, 2]),
        np.array([130, 150, 400, 490]) * S,
        pre_ns=20 * S,
        post_ns=300 * S,
        cooldown_ns=60 * S,
        controller_days=2.0,
    )
    assert (score.events, score.detected, score.episodes, score.false_episodes) == (3, 2, 3, 1)
    assert score.recall == pytest.approx(2 / 3)
    assert score.precision == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)
    assert sorted(score.delays_s.tolist()) == [-10.0, 30.0]
    assert score.median_delay_s == pytest.approx(10.0)
    assert score.alarms_per_controller_day == pytest.approx(0.5)
    assert score.cost(cost_fn=10, cost_fp=1) == 11


def test_early_warning_windows_need_the_alarm_before_the_minimum_lead():
    day, lead = 24 * NS_PER_HOUR, 900 * S
    event = np.array([10 * day])

    def alarm_before(ahead_ns: int):
        one = np.array([0])
        return score_events(
            one, event, one, event - ahead_ns, pre_ns=day, post_ns=-lead, cooldown_ns=day, controller_days=1
        )

    too_late, in_time = alarm_before(60 * S), alarm_before(3 * NS_PER_HOUR)
    assert (too_late.detected, too_late.false_episodes) == (0, 1)
    assert (in_time.detected, in_time.false_episodes, in_time.delays_s.tolist()) == (1, 0, [-3 * 3600.0])


def test_counting_ranges_keep_edge_alarms_from_becoming_false_or_missed():
    score = score_events(
        np.array([0, 0]),
        np.array([50, 5000]) * S,
        np.array([0, 0]),
        np.array([70, 9000]) * S,
        pre_ns=0,
        post_ns=60 * S,
        cooldown_ns=60 * S,
        controller_days=1,
        events_counted=(0, 4000 * S),
        episodes_counted=(0, 4000 * S),
    )
    assert (score.events, score.detected, score.episodes, score.false_episodes) == (1, 1, 1, 0)


def test_pr_auc_gain_interval_resamples_whole_controllers():
    rng = np.random.default_rng(3)
    labels = rng.random((300, 20)) < 0.1
    informative = labels + rng.normal(0, 0.5, labels.shape)
    noise = rng.normal(size=labels.shape)
    low, high = pr_auc_gain_interval(labels, informative, noise, resamples=200)
    gain = score_ranking(labels, informative).pr_auc - score_ranking(labels, noise).pr_auc
    assert 0 < low < gain < high
    # Two rankings that are the same ranking: no gain, in every resample.
    assert pr_auc_gain_interval(labels, noise, 2 * noise + 1, resamples=50) == (0.0, 0.0)
    # Identical controllers: any draw of whole controllers holds the same hours in the same proportions.
    copies = np.repeat(labels[:1] | np.eye(1, 20, 3, dtype=bool), 50, axis=0)
    risk = np.repeat(noise[:1], 50, axis=0)
    low, high = pr_auc_gain_interval(copies, risk, np.zeros(copies.shape), resamples=50)
    assert low == pytest.approx(high)
    with pytest.raises(ValueError, match="grids of one shape"):
        pr_auc_gain_interval(labels.ravel(), noise.ravel(), noise.ravel())


def test_ranking_metrics_and_the_cost_optimal_threshold():
    labels = np.array([0, 0, 0, 1, 1])
    perfect = score_ranking(labels, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert (perfect.pr_auc, perfect.roc_auc, perfect.base_rate) == (1.0, 1.0, 0.4)
    assert score_ranking(labels, -np.array([0.1, 0.2, 0.3, 0.8, 0.9])).roc_auc == 0.0
    # Positives at 0.25 and 0.8, negatives above both (0.9) and between them (0.3).
    risk = np.array([0.1, 0.3, 0.9, 0.25, 0.8])
    # A miss costs 10, a false alarm 1: two false alarms are cheaper than missing the 0.25 positive.
    assert min_cost_threshold(labels, risk, cost_fn=10, cost_fp=1) == 0.25
    # A false alarm costs 10: catching anything costs more than missing both.
    assert min_cost_threshold(labels, risk, cost_fn=1, cost_fp=10) == np.inf
    assert min_cost_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3]), cost_fn=1, cost_fp=1) == np.inf


def test_held_out_controllers_are_a_stable_hash_split():
    ids = Controllers(pa.array([f"0x{i:016x}" for i in range(2000)]))
    mask = held_out_controllers(ids, 0.3)
    assert abs(mask.mean() - 0.3) < 0.04
    reordered = Controllers(pa.array(list(reversed(ids.ids.to_pylist()))))
    assert held_out_controllers(reordered, 0.3).tolist() == list(reversed(mask.tolist()))


def test_truth_events_and_failure_labels_follow_horizon_and_minimum_lead():
    table = truth(
        {"controller_id": "a", "kind": "controller_reset", "onset_ts": at(7200), "details": '{"silent": true}'},
        {"controller_id": "a", "kind": "controller_reset", "onset_ts": at(9000), "details": '{"silent": false}'},
        {"controller_id": "b", "kind": "ue", "onset_ts": at(3600 + 600)},
        {"controller_id": "z", "kind": "ue", "onset_ts": at(100)},  # not a controller under test
    )
    controllers = Controllers(pa.array(["a", "b"]))
    codes, onsets = truth_events(table, controllers, ("controller_reset",), silent=True)
    assert codes.tolist() == [0] and onsets.tolist() == [int(at(7200).timestamp()) * S]
    codes, onsets = truth_events(table, controllers, ("controller_reset", "ue"))
    window_ends = np.array([int(at(h * 3600).timestamp()) * S for h in range(4)])
    labels = failure_labels(codes, onsets, 2, window_ends, horizon_ns=2 * NS_PER_HOUR, min_lead_ns=900 * S)
    # a: resets at 2 h and 2.5 h are within (end + 15 min, end + 2 h] of window ends 0 h, 1 h and (2.5 h) 1 h, 2 h.
    assert labels[0].tolist() == [True, True, True, False]
    # b: UE 10 min after the 1 h window end is inside the minimum lead: only the 0 h window sees it.
    assert labels[1].tolist() == [True, False, False, False]
    # Precursors: a's 2 h reset announced from 1 h on, its 2.5 h reset never; b's UE from 0 h.
    precursors = np.array([window_ends[1], NULL_TS, window_ends[0]])
    visible = failure_labels(
        codes, onsets, 2, window_ends, horizon_ns=2 * NS_PER_HOUR, min_lead_ns=900 * S, visible_from=precursors
    )
    assert visible.tolist() == [[False, True, False, False], [True, False, False, False]]


def test_facility_and_planned_resets_are_not_controller_failures():
    table = truth(
        {"controller_id": "a", "kind": "controller_reset", "onset_ts": at(60), "details": '{"cause": "sudden"}'},
        {"controller_id": "a", "kind": "controller_reset", "onset_ts": at(120), "details": '{"cause": "rack_event"}'},
        {"controller_id": "b", "kind": "controller_reset", "onset_ts": at(180), "details": '{"cause": "planned"}'},
        {"controller_id": "b", "kind": "link_drop", "onset_ts": at(240), "details": '{"sudden": true}'},
        {"controller_id": "b", "kind": "ce_storm", "onset_ts": at(300)},
    )
    codes, onsets = failure_events(table, Controllers(pa.array(["a", "b"])))
    assert codes.tolist() == [0, 1]
    assert onsets.tolist() == [int(at(t).timestamp()) * S for t in (60, 240)]


def test_ce_ramps_rise_towards_the_failure_they_announce(fleet_dir):
    """UEs and memory-caused resets with a precursor inside the run: threshold records (one per 256 CEs) are more
    frequent in the last quarter of the precursor than in its first quarter, for most of them."""
    con = duckdb.connect()
    rises = con.execute(
        f"""SELECT (SELECT count(*) FILTER (WHERE e.device_ts >= t.onset_ts - t.lead / 4)
                   - count(*) FILTER (WHERE e.device_ts < t.precursor_onset_ts + t.lead / 4)
                   FROM '{fleet_dir}/errors.parquet' e WHERE e.controller_id = t.controller_id
                     AND e.record_type IN ('general_media', 'dram') AND e.descriptor = 2
                     AND e.device_ts BETWEEN t.precursor_onset_ts AND t.onset_ts)
           FROM (SELECT *, onset_ts - precursor_onset_ts AS lead FROM '{fleet_dir}/truth_faults.parquet') t
           WHERE (t.kind = 'ue' OR json_extract_string(t.details, '$.cause') = 'memory_degradation')
             AND t.precursor_onset_ts >= (SELECT min(ts) FROM '{fleet_dir}/errors.parquet')"""
    ).fetchall()
    assert len(rises) >= 5, "too few failures with an in-span precursor"
    share = np.mean([rise > 0 for (rise,) in rises])
    assert share >= 0.7, (share, len(rises))


def _rows(markdown: str) -> list[list[str]]:
    lines = markdown.splitlines()
    assert lines[:2] == ["| section | metric | detector | static baseline |", "|---|---|---:|---:|"]
    cells = (line.strip().removeprefix("|").removesuffix("|").split(" | ") for line in lines[2:])
    rows = [[cell.strip() for cell in row] for row in cells]
    assert rows and all(len(row) == 4 and row[0] and row[1] for row in rows), rows
    return rows


def _unit(cell: str) -> bool:
    """A figure that must lie in [0, 1] (recall, precision, F1, AUCs); NaN and 'n/a' do not."""
    return 0.0 <= float(cell) <= 1.0


GAIN_CELL = re.compile(r"^([+-]\d\.\d{4}) \(([+-]\d\.\d{4}) to ([+-]\d\.\d{4})\)$")


def test_held_out_evaluation_command_reports_every_detector_beside_its_baseline(fleet_dir, tmp_path, capsys):
    """The command's output, not the detectors' quality: which of two predictors ranks better on a fixture this
    small is within noise (the gain intervals straddle 0); the held-out figures and their margins are in
    docs/detector_quality.md."""
    from ingest.contract import CONFOUNDER_KINDS
    from models.holdout import CONFOUNDERS, GAIN, HEALTH, WARNING
    from pipelines.cli import main
    from pipelines.defs.early_warning.early_warning_assets import MODEL_PREFIX
    from pipelines.lib.model_store import load_versioned

    out, shipped = tmp_path / "quality.md", tmp_path / "shipped"
    command = ["evaluate", "--train", str(fleet_dir), "--split-hours", "60"]
    assert main([*command, "--markdown", str(out), "--save-model", str(shipped)]) == 0
    assert "Held-out detector quality" in capsys.readouterr().out
    rows = _rows(out.read_text())
    table = {(section, metric): (detector, baseline) for section, metric, detector, baseline in rows}
    assert len(table) == len(rows), "a (section, metric) pair is reported twice"
    sections = list(dict.fromkeys(section for section, *_ in rows))
    health = HEALTH
    assert sections == [
        "protocol",
        "resets",
        "link drops",
        "link drops (MTTR; right column = truth)",
        CONFOUNDERS,
        health,
        "ceiling from truth (not a detector)",
        WARNING,
        "event-rate anomalies (test period, whole fleet)",
    ]
    interval = float(table["protocol", "link snapshot interval (s)"][0])

    # After-the-fact detectors: event-window figures beside the baseline's, and their targets (fault_model.md §5).
    for section in ("resets", "link drops", WARNING):
        assert int(table[section, "true events"][0]) == int(table[section, "true events"][1]) > 0
        for metric in ("event recall", "episode precision", "F1"):
            # Precision is undefined (n/a) for a rule that raised no alarm episode at all.
            assert all(_unit(c) or (c == "n/a" and metric == "episode precision") for c in table[section, metric])
        assert all(float(cell) >= 0 for cell in table[section, "false alarms per controller-day"])
    for section in ("resets", "link drops"):
        f1, baseline_f1 = map(float, table[section, "F1"])
        assert f1 >= 0.95 and f1 > baseline_f1
        assert float(table[section, "median delay (s)"][0]) <= interval
    assert float(table["resets", "silent resets: recall"][0]) >= 0.9

    # Per confounder (the fixture runs the default profile): false alarms beside the baseline's, and the heartbeat
    # baseline takes collector outages for resets where the detector does not.
    for kind in ("collector_outage", "agent_restart", "counter_wrap", "counter_width_change", "partial_telemetry"):
        assert int(table[CONFOUNDERS, f"{kind}: false resets"][0]) == 0, kind
    for kind in CONFOUNDER_KINDS:
        assert int(table[CONFOUNDERS, f"{kind}: false link drops"][0]) == 0, kind
    outages = table[CONFOUNDERS, "collector_outage: false resets"]
    assert int(outages[0]) < int(outages[1])

    # Predictors: every ranking beside the static rule's on the same controller-hours, with the bootstrap interval
    # of its PR-AUC gain; figures in range and consistent with each other.
    counts = {table[section, "positive / all controller-hours"][0] for section in (health, WARNING)}
    assert len(counts) == 1, counts
    positives, total = map(int, counts.pop().split(" / "))
    assert 0 < positives < total
    for section in (health, WARNING):
        assert float(table[section, "base rate"][0]) == pytest.approx(positives / total, rel=1e-3)
        assert all(map(_unit, table[section, "PR-AUC (random = base rate)"] + table[section, "ROC-AUC"])), section
        pr_auc, static_pr_auc = map(float, table[section, "PR-AUC (random = base rate)"])
        gain, low, high = map(float, GAIN_CELL.match(table[section, GAIN][0]).groups())
        assert gain == pytest.approx(pr_auc - static_pr_auc, abs=2e-4)
        assert -1 <= low <= high <= 1
        assert table[section, GAIN][1] == ""
    # The early-warning model learned something: far above a random ranking, held out (measured: 6x the base rate).
    assert float(table[WARNING, "PR-AUC (random = base rate)"][0]) > 2 * positives / total
    threshold, rule = table[WARNING, "alarm threshold (cost-optimal, out-of-fold on train)"]
    assert 0 <= float(threshold) <= 1 and rule == "count >= limit"
    # The health score is the same model's risk in points: the same ranking, and points that add up to it.
    for metric in ("PR-AUC (random = base rate)", "ROC-AUC", GAIN):
        assert table[health, metric] == table[WARNING, metric]
    assert float(table[health, "largest residual of 100 − health − base points − Σ reason points"][0]) < 1e-9
    assert 0 < float(table[health, "base points (risk floor of the healthiest controller)"][0]) < 100

    # --save-model stores the model it fitted with the fleet it was fitted on, the protocol and health rows.
    model, stored = load_versioned(shipped, MODEL_PREFIX)
    config = json.loads((fleet_dir / RUN_DESCRIPTION).read_text())["config"]
    described = {k: config[k] for k in stored["training_fleet"] if k != "confounders"}
    assert (
        stored["training_fleet"]
        == stored["held_out_fleet"]
        == {**described, "confounders": config["confounders"]["profile"]}
    )
    assert stored["version"] == 1
    shown = ("protocol", health)
    assert stored["held_out"] == {metric: list(table[s, metric]) for s, metric, *_ in rows if s in shown}
    assert model.threshold == pytest.approx(float(threshold), rel=1e-3)


def test_bad_input_is_refused_in_one_line(fleet_run, tmp_path, capsys):
    from models.holdout import Protocol, protocol_splits
    from pipelines.cli import main

    with pytest.raises(ValueError, match="too short for the protocol"):
        protocol_splits(fleet_run, fleet_run, Protocol(split_h=30))
    assert main(["evaluate", "--train", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "truth_faults.parquet is missing" in error and "\n" not in error


def test_a_silent_reset_revealed_after_an_outage_is_late_not_false():
    """A true silent reset whose evidence a collector outage held back for an hour names the true moment: it is
    no false silent reset, but timed by its arrival it would be one (the second score). A silent reset where none
    happened is false either way."""
    table = truth(
        {"controller_id": "a", "kind": "controller_reset", "onset_ts": at(3600), "details": '{"silent": true}'}
    )
    controllers = Controllers(pa.array(["a", "b"]))
    resets = pa.Table.from_pylist(
        [
            {"controller_id": "a", "reset_ts": at(3600), "detected_ts": at(7200), "silent": True, "evidence": "uptime"},
            {"controller_id": "b", "reset_ts": at(5000), "detected_ts": at(5060), "silent": True, "evidence": "gap"},
            {"controller_id": "b", "reset_ts": at(6000), "detected_ts": at(6001), "silent": False, "evidence": "row"},
        ],
        schema=RESETS_SCHEMA,
    )
    period = (int(at(0).timestamp()) * S, int(at(86_400).timestamp()) * S)
    named, arrived = false_silent_resets(table, controllers, resets, np.ones(2, dtype=bool), period, Protocol())
    assert (named.false_episodes, arrived.false_episodes) == (1, 2)
    assert (named.detected, arrived.detected) == (1, 0)
