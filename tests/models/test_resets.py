import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models.resets import ResetConfig, detect_resets
from models.series import Controllers
from tests.models.tables import at, errors, link


def _health(controller: str, seconds: range, *, booted_at: float = -1000.0, epoch: int = 0, errors_cnt: int = 0):
    return [
        {
            "ts": at(s),
            "controller_id": controller,
            "uptime_s": int(s - booted_at),
            "counter_epoch": epoch,
            "cor_vol_err_cnt": errors_cnt,
        }
        for s in seconds
    ]


def _resets(errors_table: pa.Table, link_table: pa.Table | None = None, config: ResetConfig | None = None):
    link_table = link_table if link_table is not None else link()
    controllers = Controllers.of(errors_table.column("controller_id"), link_table.column("controller_id"))
    return detect_resets(errors_table, link_table, controllers, config).to_pylist()


def test_explicit_reset_merges_with_its_epoch_and_uptime_traces_and_ignores_late_rows():
    reset_row = {
        "event_id": uuid.uuid4().bytes,
        "ts": at(330),
        "device_ts": at(300),
        "controller_id": "a",
        "record_type": "controller_reset",
        "reset_kind": "warm",
        "counter_epoch": 1,
    }
    late_event = {"ts": at(335), "device_ts": at(290), "controller_id": "a", "record_type": "dram", "counter_epoch": 0}
    table = errors(
        *_health("a", range(0, 241, 60)),
        reset_row,
        reset_row,  # delivered twice
        late_event,
        *_health("a", range(360, 900, 60), booted_at=330, epoch=1),
    )
    links = link(*({"ts": at(s), "controller_id": "a", "counter_epoch": int(s > 300)} for s in range(0, 900, 60)))
    (reset,) = _resets(table, links)
    assert (reset["reset_ts"], reset["detected_ts"]) == (at(300), at(330))
    assert (reset["silent"], reset["reset_kind"], reset["evidence"]) == (False, "warm", "row,uptime,epoch")


def test_silent_reset_is_timed_by_uptime_and_detected_at_the_first_snapshot_after_it():
    table = errors(
        *_health("b", range(0, 601, 60), errors_cnt=500),
        *_health("b", range(720, 1200, 60), booted_at=630, epoch=1, errors_cnt=2),
    )
    (reset,) = _resets(table)
    assert (reset["reset_ts"], reset["detected_ts"], reset["silent"]) == (at(630), at(720), True)
    assert reset["evidence"] == "uptime,epoch"


def test_reset_without_epoch_change_is_found_from_uptime_and_counter_restart():
    table = errors(
        *_health("c", range(0, 601, 60), errors_cnt=500),
        *_health("c", range(660, 1200, 60), booted_at=640, errors_cnt=3),
    )
    (reset,) = _resets(table)
    assert (reset["detected_ts"], reset["evidence"]) == (at(660), "uptime,counter")


def test_link_counters_falling_within_an_epoch_reveal_a_reset():
    table = errors(*_health("e", range(0, 1200, 60)))
    counts = {s: 1000 if s < 600 else 5 for s in range(0, 1200, 60)}
    links = link(*({"ts": at(s), "controller_id": "e", "aer_cor_total": n} for s, n in counts.items()))
    (reset,) = _resets(table, links)
    assert (reset["detected_ts"], reset["evidence"]) == (at(600), "counter")


def test_gap_alone_is_not_a_reset_unless_configured_and_reset_loops_stay_separate():
    gap = errors(*_health("d", range(0, 301, 60)), *_health("d", range(660, 1200, 60)))
    assert _resets(gap) == []
    (reset,) = _resets(gap, config=ResetConfig(gap_alone_is_reset=True))
    assert (reset["detected_ts"], reset["evidence"]) == (at(660), "gap")

    loop = errors(
        *_health("f", range(0, 3600, 60)),
        *(
            {"ts": at(s), "controller_id": "f", "record_type": "controller_reset", "reset_kind": "cold"}
            for s in (600, 1200, 1800)
        ),
    )
    assert [r["detected_ts"] for r in _resets(loop)] == [at(600), at(1200), at(1800)]


def test_simulated_fleet_resets_meet_the_targets_and_beat_the_heartbeat_baseline(fleet_run, detector_score):
    found = detector_score(fleet_run.detections.resets, "controller_reset")
    baseline = detector_score(fleet_run.baselines.resets, "controller_reset")
    assert found.events > 100
    assert found.f1 >= 0.95 and found.f1 > baseline.f1
    assert found.median_delay_s <= fleet_run.link_interval_s
    silent = detector_score(fleet_run.detections.resets, "controller_reset", silent=True)
    assert silent.events >= 10 and silent.recall >= 0.9
    assert detector_score(fleet_run.baselines.resets, "controller_reset", silent=True).recall < 0.5


def test_no_reset_is_stamped_after_its_own_detection():
    """Uptime-based estimates round to whole seconds; before clamping, 21 of sample_data's 97 resets postdated
    the evidence that revealed them."""
    sample = Path(__file__).parents[2] / "sample_data"
    errors_table = pq.read_table(sample / "errors.parquet")
    link_table = pq.read_table(sample / "link.parquet")
    resets = detect_resets(errors_table, link_table, Controllers.of(errors_table.column("controller_id")))
    reset_ts = resets.column("reset_ts").cast(pa.int64()).to_numpy()
    detected_ts = resets.column("detected_ts").cast(pa.int64()).to_numpy()
    assert len(reset_ts) > 50
    assert (reset_ts <= detected_ts).all()


def test_a_window_without_telemetry_has_no_resets():
    controllers = Controllers.of(pa.array(["0xa", "0xb"]))
    assert detect_resets(errors(), link(), controllers).num_rows == 0
