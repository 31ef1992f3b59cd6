import uuid
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models.features import Detections
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


def _reset_row(controller: str, device_s: float, epoch: int) -> dict:
    return {
        "event_id": uuid.uuid4().bytes,
        "ts": at(device_s + 1),
        "device_ts": at(device_s),
        "controller_id": controller,
        "record_type": "controller_reset",
        "reset_kind": "warm",
        "counter_epoch": epoch,
    }


def test_an_agents_re_sent_snapshot_is_not_a_restart():
    """An agent restart sends its last snapshot again, unchanged, when it is back: late behind a newer snapshot, or
    as the snapshot before a reset's first one (it made a second, silent reset of issue 14's agent restarts)."""
    (copy,) = _health("g", range(300, 301))
    alone = errors(*_health("g", range(0, 1200, 60), errors_cnt=500), {**copy, "ts": at(430), "cor_vol_err_cnt": 500})
    assert _resets(alone) == []

    after_reset = errors(
        *_health("h", range(0, 301, 60), errors_cnt=500),
        _reset_row("h", 305, epoch=1),
        {**copy, "controller_id": "h", "ts": at(450), "cor_vol_err_cnt": 500},
        *_health("h", range(540, 1200, 60), booted_at=305, epoch=1),
    )
    (reset,) = _resets(after_reset)
    assert (reset["reset_ts"], reset["silent"], reset["evidence"]) == (at(305), False, "row,uptime,epoch,gap")


def test_a_reset_row_keeps_its_uptime_restart_when_the_host_clock_steps_forward():
    """The row is timed by the device, the uptime restart by the host's snapshots: 200 s ahead, the restart looked
    like a second reset after the row (issue 14's rack resets beside a clock step)."""
    stepped = [
        {**row, "ts": row["ts"] + (at(200) - at(0))} for row in _health("i", range(360, 1200, 60), booted_at=300)
    ]
    table = errors(
        *_health("i", range(0, 301, 60)), _reset_row("i", 300, epoch=1), *[{**r, "counter_epoch": 1} for r in stepped]
    )
    (reset,) = _resets(table)
    assert (reset["reset_ts"], reset["detected_ts"], reset["silent"]) == (at(300), at(301), False)


def test_a_reset_row_keeps_its_uptime_restart_when_a_link_drop_opened_another_epoch_before_it_was_seen():
    """Health snapshots missing (partial telemetry) while a link drop re-enumerates the device: the first snapshot
    after the reset already carries the drop's epoch, one past the row's."""
    table = errors(
        *_health("j", range(0, 301, 60)),
        _reset_row("j", 305, epoch=1),
        *_health("j", range(1500, 2000, 60), booted_at=305, epoch=2),
    )
    links = link(
        *({"ts": at(s), "controller_id": "j", "counter_epoch": int(s > 305)} for s in range(0, 961, 60)),
        {"ts": at(1000), "controller_id": "j", "event": "link_up", "down_ms": 2_000, "counter_epoch": 2},
        *({"ts": at(s), "controller_id": "j", "counter_epoch": 2, "link_down_count": 1} for s in range(1020, 2000, 60)),
    )
    controllers = Controllers.of(table.column("controller_id"))
    (reset,) = Detections.from_tables(table, links, controllers).resets.to_pylist()
    assert (reset["reset_ts"], reset["silent"]) == (at(305), False)


def test_a_silent_reset_inside_a_long_outage_is_timed_by_the_uptime_even_when_it_ends_above_the_last_seen():
    """A collector outage of two hours with a reset 40 minutes in: the uptime after it (80 min) is above the last
    one seen before (about 17 min), but an hour below the time that passed (issue 14: timed from the gap instead,
    33 minutes off, it was a false silent reset)."""
    table = errors(
        *_health("m", range(0, 601, 60), errors_cnt=500),
        *_health("m", range(7800, 8400, 60), booted_at=3000, epoch=1, errors_cnt=2),
    )
    (reset,) = _resets(table)
    assert (reset["reset_ts"], reset["detected_ts"], reset["silent"]) == (at(3000), at(7800), True)


def test_a_host_clock_step_forward_within_the_offset_is_not_a_restart():
    """The host's clock jumps 4 minutes ahead (the largest `heavy` step): the uptime is short of the host's
    elapsed time by as much, but it did not fall and the shortfall is within `host_clock_offset_s`."""
    stepped = [{**row, "ts": row["ts"] + (at(240) - at(0))} for row in _health("n", range(660, 1200, 60))]
    assert _resets(errors(*_health("n", range(0, 601, 60)), *stepped)) == []


def test_one_snapshot_per_controller_is_no_interval_and_no_warning():
    """A live round's first minutes: no controller has two snapshots yet (numpy warned "Mean of empty slice")."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resets(errors(*_health("k", range(0, 1)), *_health("l", range(0, 1)))) == []
