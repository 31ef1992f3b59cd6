import math

import numpy as np
import pyarrow as pa

from models.link_events import link_incidents, recovery_summary
from models.series import Controllers
from tests.models.tables import at, link

DOWN = {"ltssm_state": "Detect", "lnksta_flags": 0}


def _snapshots(controller: str, seconds: range, **overrides) -> list[dict]:
    return [{"ts": at(s), "controller_id": controller, **overrides} for s in seconds]


def _controllers(rows: list[dict]) -> Controllers:
    return Controllers(pa.array(sorted({r["controller_id"] for r in rows})))


def _incidents(table: pa.Table) -> list[dict]:
    return link_incidents(table, Controllers.of(table.column("controller_id"))).to_pylist()


def test_surprise_down_sequence_is_one_drop_with_outage_recovery_and_a_downgrade():
    rows = [
        *_snapshots("a", range(0, 301, 60)),
        {"ts": at(300.5), "controller_id": "a", "event": "surprise_down", **DOWN},
        {"ts": at(300.6), "controller_id": "a", "event": "link_down", **DOWN},
        {"ts": at(360), "controller_id": "a", "link_down_count": 1, **DOWN},
        {"ts": at(400), "controller_id": "a", "event": "link_up", "down_ms": 99_500, "cur_width": 8},
        *_snapshots("a", range(420, 721, 60), cur_width=8, link_down_count=1),
        *_snapshots("a", range(780, 1201, 60), link_down_count=1),
    ]
    incidents = _incidents(link(*rows))
    drops = [i for i in incidents if i["kind"] == "drop"]
    downgrades = [i for i in incidents if i["kind"] == "downgrade"]
    assert len(drops) == 1
    drop = drops[0]
    assert drop["start_ts"] == at(300.5)
    assert drop["detected_ts"] == at(300.5)
    assert drop["end_ts"] == at(400)
    assert math.isclose(drop["outage_s"], 99.5)
    assert math.isclose(drop["recovery_s"], 780 - 300.5)  # first full-width L0 snapshot
    assert drop["evidence"] == "counter,event,state"
    assert [(d["start_ts"], d["end_ts"], d["recovery_s"]) for d in downgrades] == [(at(400), at(780), 380.0)]

    summary = {
        row["kind"]: row for row in recovery_summary(link_incidents(link(*rows), _controllers(rows))).to_pylist()
    }
    assert (summary["drop"]["incidents"], summary["drop"]["mttr_s"], summary["drop"]["still_open"]) == (1, 99.5, 0)
    assert summary["downgrade"]["mean_recovery_s"] == 380.0 and summary["downgrade"]["mttr_s"] is None
    assert summary["retrain"]["incidents"] == 0


def test_drop_between_snapshots_is_found_from_link_up_and_counter():
    rows = [
        *_snapshots("b", range(0, 541, 60)),
        {"ts": at(590), "controller_id": "b", "event": "link_up", "down_ms": 2_000},
        *_snapshots("b", range(600, 901, 60), link_down_count=1),
    ]
    (drop,) = _incidents(link(*rows))
    assert (drop["kind"], drop["start_ts"], drop["detected_ts"]) == ("drop", at(588), at(590))
    assert drop["evidence"] == "counter,event"


def test_counter_evidence_alone_detects_a_drop_at_the_next_snapshot():
    rows = [*_snapshots("b", range(0, 541, 60)), *_snapshots("b", range(600, 901, 60), link_down_count=1)]
    (drop,) = _incidents(link(*rows))
    assert (drop["start_ts"], drop["detected_ts"], drop["evidence"]) == (at(540), at(600), "counter")
    assert drop["outage_s"] is None


def test_counter_restart_after_reset_is_not_a_drop():
    rows = [
        *_snapshots("c", range(0, 301, 60), link_down_count=3),
        *_snapshots("c", range(360, 601, 60), link_down_count=0, counter_epoch=1),
    ]
    assert _incidents(link(*rows)) == []


def test_both_ports_reporting_one_retrain_count_once_and_open_outage_has_no_end():
    rows = [
        *_snapshots("d", range(0, 241, 60)),
        {"ts": at(100), "controller_id": "d", "event": "retrain", "reason": "retrain"},
        {"ts": at(100.2), "controller_id": "d", "event": "retrain", "reason": "retrain", "port": "dev_usp"},
        {"ts": at(200), "controller_id": "d", "event": "retrain", "reason": "retrain"},
        {"ts": at(250), "controller_id": "d", "event": "surprise_down", **DOWN},
        *_snapshots("d", range(300, 361, 60), **DOWN),
    ]
    incidents = _incidents(link(*rows))
    assert [(i["kind"], i["start_ts"]) for i in incidents] == [
        ("retrain", at(100)),
        ("retrain", at(200)),
        ("drop", at(250)),
    ]
    assert incidents[-1]["end_ts"] is None and incidents[-1]["recovery_s"] is None


def test_simulated_fleet_drops_meet_the_targets_and_outages_match_the_truth(fleet_run, detector_score):
    found = detector_score(fleet_run.detections.incidents, "link_drop")
    baseline = detector_score(fleet_run.baselines.incidents, "link_drop")
    assert found.events > 50
    assert found.f1 >= 0.95 and found.f1 > baseline.f1
    assert found.median_delay_s <= fleet_run.link_interval_s
    incidents = fleet_run.detections.incidents.to_pylist()
    measured = sorted(i["outage_s"] for i in incidents if i["kind"] == "drop" and i["outage_s"] is not None)
    truth = [r for r in fleet_run.truth.to_pylist() if r["kind"] == "link_drop" and r["end_ts"] is not None]
    true = sorted((r["end_ts"] - r["onset_ts"]).total_seconds() for r in truth)
    assert abs(np.median(measured) - np.median(true)) < 1.0
